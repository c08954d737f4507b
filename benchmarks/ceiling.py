"""Achieved train-step FLOP/s over the machine's measured matmul FLOP/s, per k.

For each kernel size the seed train step (SAME, batch 128, float32) is compiled
once and timed (warm, blocked, median); achieved = XLA's FLOP count / median
step. The ceiling is kernelscale.ceilings' float32 matmul FLOP/s (best of many
calls), measured before and after the steps; the larger is used, so a burst of
other load cannot flatter the ratio.

Two rows per k where they differ: `xla` (nn.Conv as written) and `auto`
(conv_algo=auto, kernelscale/convs.py). For `auto` two rates are printed:
executed (XLA's count of what ran: dft layers run fewer FLOPs) and
direct-equivalent (the xla step's FLOPs over the auto step's time: the rate a
direct convolution would need to be as fast). Only the executed rate is a
fraction of the machine's ceiling in the plain sense.

    python benchmarks/ceiling.py                               # k=3,5,7,9,11
    python benchmarks/ceiling.py --kernel_sizes=5,7 --cpu_conv=ynnpack
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--kernel_sizes', default='3,5,7,9,11')
  ap.add_argument('--padding', default='SAME', choices=('SAME', 'VALID'))
  ap.add_argument('--batch_size', type=int, default=128)
  ap.add_argument('--steps', type=int, default=15)
  ap.add_argument('--cpu_conv', default='auto', choices=('auto', 'ynnpack', 'eigen'))
  a = ap.parse_args()
  ks = [int(k) for k in a.kernel_sizes.split(',')]

  from kernelscale import device  # before jax initialises
  backend = device.configure(a.cpu_conv)  # as run.py: conv path, and malloc=auto
  import jax  # pylint: disable=g-import-not-at-top
  from kernelscale import ceilings, data, measure, models, train  # pylint: disable=g-import-not-at-top

  before = ceilings.measure_ceilings()['ceiling_flops_per_s']
  platform = jax.default_backend()

  def one(module):
    state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), data.SYNTHETIC_SHAPE)
    batch = data.synthetic_batch(a.batch_size, 0)
    compiled = measure.compile_aot(train.train_step, (state, batch))['compiled']
    flops = measure.cost_analysis(compiled)[0]['xla_flops']
    state, _, _, times, _ = measure.run_steps(compiled, state, batch, 3, a.steps)
    return flops, measure.step_stats(times)['step_s_median']

  rows = []
  for k in ks:
    flops, step = one(models.build('seed', k, a.padding, 'float32'))
    rows.append((k, 'xla', flops, step, flops))
    auto = models.build('seed', k, a.padding, 'float32', conv_algo='auto', platform=platform)
    if auto.conv_algos:
      algos = '+'.join(models.layer_algos(auto).values())
      rows.append((k, f'auto ({algos})', *one(auto), flops))
  after = ceilings.measure_ceilings()['ceiling_flops_per_s']
  peak = max(before, after)
  dev = jax.devices()[0]
  print(f'{dev.platform} ({dev.device_kind}), conv path {backend["cpu_conv_path"] or "n/a"}, '
        f'malloc {backend["malloc_mode"]}, '
        f'seed {a.padding} batch {a.batch_size} float32; float32 matmul ceiling '
        f'{peak / 1e9:.1f} GFLOP/s (before {before / 1e9:.1f}, after {after / 1e9:.1f})')
  print(f'{"k":>3} {"conv algorithms":<16} {"step ms":>9} {"XLA GFLOP":>10} '
        f'{"achieved GFLOP/s":>17} {"of ceiling":>11} {"direct-equiv. of ceiling":>25}')
  for k, algo, flops, step, direct in rows:
    got = flops / step
    equiv = f'{direct / step / peak:>25.2f}' if algo != 'xla' else f'{"(same)":>25}'
    print(f'{k:>3} {algo:<16} {step * 1e3:>9.2f} {flops / 1e9:>10.3f} {got / 1e9:>17.1f} '
          f'{got / peak:>11.2f} {equiv}')


if __name__ == '__main__':
  main()
