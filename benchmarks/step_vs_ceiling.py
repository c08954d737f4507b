"""Achieved train-step FLOP/s over the machine's measured matmul FLOP/s, per k.

For each kernel size the seed train step (SAME, batch 128, float32) is compiled
once and timed (warm, blocked, median); achieved = XLA's FLOP count / median
step. The ceiling is kernelscale.ceilings' float32 matmul FLOP/s (best of many
calls), measured before and after the steps; the larger is used, so a burst of
other load cannot flatter the ratio.

Two rows per k where they differ: `xla` (nn.Conv as written) and `auto`
(conv_algo=auto, kernelscale/net/convs.py). For `auto` two rates are printed:
executed (XLA's count of what ran: dft layers run fewer FLOPs) and
direct-equivalent (the xla step's FLOPs over the auto step's time: the rate a
direct convolution would need to be as fast). Only the executed rate is a
fraction of the machine's ceiling in the plain sense.

Where the xla step loses against the ceiling: a second table times each of its
conv layers' convolutions alone (forward, input gradient, filter gradient;
kernelscale.ceilings.conv_phases_alone) on the same conv path, and prints each
one's fraction of the ceiling and `bound`: the step's FLOPs over the sum of
those times, about the fraction the step would reach if everything but the
convolutions took no time. It is an estimate, not a strict bound: XLA overlaps
ops inside the step, so a step can come out slightly above it.

Where PyTorch is installed, a `torch` row times the same network and Adam step
in torch eager (benchmarks/peer_torch.py's step) right after kernelscale's,
against the same ceiling and the same FLOP count: what another stack reaches
on this hardware. Without torch that row is skipped with a note.

    python benchmarks/step_vs_ceiling.py                               # k=3,5,7,9,11
    python benchmarks/step_vs_ceiling.py --kernel_sizes=5,7 --cpu_conv=ynnpack
    python benchmarks/step_vs_ceiling.py --no_phases --no_torch        # the step rows only
"""
from __future__ import annotations

import argparse
import statistics
import sys


from kernelscale import cli  # pylint: disable=g-import-not-at-top


def _parse(argv):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--kernel_sizes', default='3,5,7,9,11',
                  help='comma-separated kernel sizes; default 3,5,7,9,11')
  ap.add_argument('--padding', default='SAME', choices=('SAME', 'VALID'))
  ap.add_argument('--batch_size', default='128')
  ap.add_argument('--steps', default='15', help='timed steps per row; default 15')
  ap.add_argument('--cpu_conv', default='auto', choices=('auto', 'ynnpack', 'eigen'))
  ap.add_argument('--no_phases', action='store_true',
                  help='skip timing the xla step\'s convolutions alone')
  ap.add_argument('--no_torch', action='store_true', help='skip the torch row')
  a = ap.parse_args(argv)
  a.kernel_sizes = cli.kernel_sizes(a.kernel_sizes)
  cli.at_least(a, ('batch_size', 'steps'))
  return a


def main(argv=None) -> None:
  a = _parse(argv)
  from kernelscale.measure import host  # before jax initialises
  backend = host.configure(a.cpu_conv)  # as run.py: conv path, and malloc=auto
  import jax  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import ceilings, timing  # pylint: disable=g-import-not-at-top
  from kernelscale.data import source
  from kernelscale.net import models, shapes, train
  try:
    for k in a.kernel_sizes:
      models.build('seed', k, a.padding, 'float32')
  except shapes.ShapeError as e:
    cli.fail(f'--kernel_sizes: {e}')

  platform = jax.default_backend()
  torch_step, torch_device = None, {'cpu': 'cpu', 'gpu': 'cuda'}.get(platform)
  if not a.no_torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top
      from benchmarks import peer_torch  # pylint: disable=g-import-not-at-top
      torch_step = peer_torch.torch_train_step
    except ImportError:
      print('torch row skipped: PyTorch is not installed (it is not a kernelscale requirement)')
    except Exception as e:  # pylint: disable=broad-except  (a broken torch install)
      print(f'torch row skipped: importing PyTorch failed: {type(e).__name__}: {e}')
    if torch_step and a.padding != 'SAME':
      print('torch row skipped: the torch seed net is SAME-padded only')
      torch_step = None
    elif torch_step and (torch_device is None or
                         (torch_device == 'cuda' and not torch.cuda.is_available())):
      print(f'torch row skipped: jax runs on {platform}, and this torch cannot run there')
      torch_step = None
    elif torch_step and torch_device == 'cpu':
      torch.set_num_threads(peer_torch.host_threads())

  before = ceilings.measure_ceilings()['ceiling_flops_per_s']

  def one(module):
    state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), source.SYNTHETIC_SHAPE)
    batch = source.synthetic_batch(a.batch_size, 0)
    compiled = timing.compile_aot(train.train_step, (state, batch))['compiled']
    flops = timing.cost_analysis(compiled)[0]['xla_flops']
    state, _, _, times, _ = timing.run_steps(compiled, state, batch, 3, a.steps)
    return flops, timing.step_stats(times)['step_s_median']

  def torch_one(k):
    step, sync, _, _, _ = torch_step(k, source.synthetic_batch(a.batch_size, 0), torch_device)
    peer_torch.time_torch_steps(step, 2, sync)  # warm-up, as the jax rows get
    return float(statistics.median(peer_torch.time_torch_steps(step, a.steps, sync)))

  rows, phases, load = [], {}, {}
  for k in ks_progress(a.kernel_sizes):
    module = models.build('seed', k, a.padding, 'float32')
    with timing.other_cpu_load() as load[k]:
      flops, step = one(module)
      rows.append((k, 'xla', flops, step, flops))
      auto = models.build('seed', k, a.padding, 'float32', conv_algo='auto', platform=platform)
      if auto.conv_algos:
        algos = '+'.join(models.layer_algos(auto).values())
        rows.append((k, f'auto ({algos})', *one(auto), flops))
      if torch_step:
        rows.append((k, 'torch', flops, torch_one(k), flops))
    if not a.no_phases:
      phases[k] = (flops, step, ceilings.conv_phases_alone(module.features, k, a.padding,
                                                           a.batch_size))
  after = ceilings.measure_ceilings()['ceiling_flops_per_s']
  peak = max(before, after)
  dev = jax.devices()[0]
  print(f'{dev.platform} ({dev.device_kind}), conv path {backend["cpu_conv_path"] or "n/a"}, '
        f'malloc {backend["malloc_mode"]}, '
        f'seed {a.padding} batch {a.batch_size} float32; float32 matmul ceiling '
        f'{peak / 1e9:.1f} GFLOP/s (before {before / 1e9:.1f}, after {after / 1e9:.1f})')
  print(f'{"k":>3} {"conv algorithms":<16} {"step ms":>9} {"XLA GFLOP":>10} '
        f'{"achieved GFLOP/s":>17} {"of ceiling":>11} {"direct-equiv. of ceiling":>25}')
  def frac(flops, seconds):  # of the ceiling; cost_analysis can be missing on some backends
    return f'{flops / seconds / peak:.2f}' if flops else 'n/a'

  for k, algo, flops, step, direct in rows:
    equiv = frac(direct, step) if algo.startswith('auto') else '(same)'
    rate = f'{flops / step / 1e9:.1f}' if flops else 'n/a'
    gflop = f'{flops / 1e9:.3f}' if flops else 'n/a'
    print(f'{k:>3} {algo:<16} {step * 1e3:>9.2f} {gflop:>10} {rate:>17} '
          f'{frac(flops, step):>11} {equiv:>25}')
  print(other_load_line(load))
  if torch_step:
    print('torch: the same network and Adam step in PyTorch eager, timed after kernelscale\'s '
          'rows at each k (not alternated; benchmarks/peer_torch.py alternates), with the same '
          'XLA FLOP count.')
  if phases:
    print()
    print('The xla step\'s convolutions timed alone (lax.conv on the same conv path): ms and '
          'fraction of the ceiling per phase; bound = step FLOPs / (sum of the phases alone) / '
          'ceiling.')
    for k, (flops, step, ph) in phases.items():
      alone = sum(p['seconds'] for p in ph)
      parts = '  '.join(
          f'{p["layer"]} {p["phase"].replace("backward_", "")} {p["seconds"] * 1e3:.1f} ms '
          f'({frac(p["xla_flops"], p["seconds"])})' for p in ph)
      print(f'{k:>3}  {parts}  | alone {alone * 1e3:.1f} ms of the {step * 1e3:.1f} ms step, '
            f'bound {frac(flops, alone)}')


def other_load_line(load: dict) -> str:
  """One line: the share of the CPU other processes took while each k's rows were timed."""
  from kernelscale.analysis import claims  # pylint: disable=g-import-not-at-top
  got = {k: v['other_cpu_share'] for k, v in load.items() if v['other_cpu_share'] is not None}
  if not got:
    return 'other load: not measured (no /proc/stat, or windows too short for its counters)'
  line = ('other load (share of the CPU other processes took while each k\'s rows were built and '
          'timed): ') + ', '.join(
      f'k={k} {v:.0%}' for k, v in got.items())
  hot = [k for k, v in got.items() if v >= claims.CONTENDED_SHARE]
  if hot:
    line += (f'. WARNING: at k={",".join(map(str, hot))} other processes took '
             f'{claims.CONTENDED_SHARE:.0%} or more: those rows are slowed; rerun on a quiet machine')
  return line


def ks_progress(ks):
  """The kernel sizes, with a progress line on stderr as each starts."""
  for i, k in enumerate(ks):
    print(f'[{i + 1}/{len(ks)}] k={k}', file=sys.stderr, flush=True)
    yield k


if __name__ == '__main__':
  main()
