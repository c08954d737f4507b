"""kernelscale's compiled train step against the same step in PyTorch eager.

Both sides train the seed network (Conv(32,k) -> ReLU -> MaxPool2 -> Conv(64,k)
-> ReLU -> MaxPool2 -> Flatten -> Dense(128) -> ReLU -> Dense(10), 28x28x1,
SAME padding, stride 1, float32) with Adam (lr 1e-3) on softmax cross-entropy,
on the same device and the same batch. The kernelscale step is built the way
the sweep builds it (models.build, train.create_state, source.synthetic_batch,
timing.compile_aot, timing.run_steps); the torch step is plain eager code.

The two alternate inside one process, round by round (the order flips every
round), so that load from other processes hits both alike. Per round each side
runs one untimed step, then `--steps` timed steps; a round's figure is the
median of its steps. Printed per k: the median over rounds of each side's step
time, and the median over rounds of the paired ratio kernelscale / torch.

kernelscale's side is timed as written (`nn.Conv`) and with conv_algo=auto where they differ.

Run (2-core CPU, about 4 min for the default k=3..11):
    python benchmarks/peer_torch.py                       # cpu_conv=auto, as run.py runs
    python benchmarks/peer_torch.py --cpu_conv=ynnpack    # jaxlib's out-of-the-box conv path
    python benchmarks/peer_torch.py --cpu_conv=eigen      # XLA's Eigen conv path
    python benchmarks/peer_torch.py --kernel_sizes=3,7 --rounds=3 --steps=3
    python benchmarks/peer_torch.py --kernel_sizes=9,11 --algos=xla/dft,dft/dft   # check auto's rule

torch is not a kernelscale requirement: without it this prints a skip line and
exits 0. XLA_FLAGS must be set before jax initialises, so jax (and kernelscale)
are imported only after the flags are parsed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Callable


from kernelscale import cli  # pylint: disable=g-import-not-at-top

SKIP_MESSAGE = ('skip: PyTorch is not installed; benchmarks/peer_torch.py compares against '
                'PyTorch eager and needs it (pip install torch; it is not a kernelscale '
                'requirement)')


def host_threads() -> int:
  """Cores this process may run on (what XLA's CPU pool is sized from)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def conv_impls(compiled, platform: str) -> str:
  """The distinct conv implementations in a compiled step, e.g. 'Eigen (XLA CPU convolution)'."""
  from kernelscale.measure import hlo_labels  # pylint: disable=g-import-not-at-top
  impls = hlo_labels.conv_impl_of(compiled.as_text(), platform)
  return ' + '.join(sorted(set(impls.values()))) or 'none found'


def torch_seed_net(torch, kernel_size: int, features=(32, 64), hidden: int = 128,
                   num_classes: int = 10, input_hw: int = 28, channels: int = 1):
  """The seed network in torch.nn, NCHW, 'same' padding, stride 1, float32."""
  nn = torch.nn
  layers, c, hw = [], channels, input_hw
  for f in features:
    layers += [nn.Conv2d(c, f, kernel_size, stride=1, padding='same'), nn.ReLU(),
               nn.MaxPool2d(2, 2)]
    c, hw = f, hw // 2
  layers += [nn.Flatten(), nn.Linear(c * hw * hw, hidden), nn.ReLU(),
             nn.Linear(hidden, num_classes)]
  return nn.Sequential(*layers)


def torch_train_step(kernel_size: int, batch: dict, device: str = 'cpu',
                     learning_rate: float = 1e-3, seed: int = 0):
  """The seed network's Adam train step in torch eager, on kernelscale's batch.

  Returns:
    (step, sync, metrics, params, output_shape): `step()` runs one train step
    (forward, softmax cross-entropy, backward, Adam) and fills `metrics` with
    its loss and accuracy; `sync()` waits for the device (a no-op on CPU);
    params is torch's parameter count; output_shape its logits' shape.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  # The same shapes and the same examples, in torch's own NCHW layout.
  torch.manual_seed(seed)
  dev = torch.device(device)
  net = torch_seed_net(torch, kernel_size).to(dev)
  opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
  x = torch.from_numpy(np.asarray(batch['image']).transpose(0, 3, 1, 2).copy()).to(dev)
  y = torch.from_numpy(np.asarray(batch['label']).astype(np.int64)).to(dev)
  params = sum(p.numel() for p in net.parameters())
  with torch.no_grad():
    out_shape = tuple(net(x).shape)
  metrics = {}

  def step():
    opt.zero_grad(set_to_none=True)
    logits = net(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    opt.step()
    # kernelscale's step also returns accuracy; keep the work alike.
    metrics['loss'] = loss.detach()
    metrics['accuracy'] = (logits.detach().argmax(-1) == y).float().mean()

  # CUDA runs asynchronously: a step is done only when the stream is drained.
  sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
  return step, sync, metrics, params, out_shape


_med = lambda xs: float(statistics.median(xs))  # noqa: E731


def time_torch_steps(step: Callable, steps: int, sync: Callable) -> list[float]:
  """One untimed step, then `steps` steps each timed to completion on the device."""
  step()
  sync()
  from kernelscale.measure import timing  # pylint: disable=g-import-not-at-top

  def call():
    step()
    sync()
  return timing.time_calls(call, steps)


class _JaxSide:
  """One compiled kernelscale step with its own (donated, rebound) train state."""

  def __init__(self, module, learning_rate: float, seed: int, batch: dict):
    import jax  # pylint: disable=g-import-not-at-top
    from kernelscale.data import source  # pylint: disable=g-import-not-at-top
    from kernelscale.measure import timing
    from kernelscale.net import train
    self.module, self.batch = module, batch
    # Exactly the sweep's construction of one point.
    self.state = train.create_state(module, learning_rate, jax.random.PRNGKey(seed),
                                    source.SYNTHETIC_SHAPE)
    self.params = int(sum(x.size for x in jax.tree_util.tree_leaves(self.state.params)))
    comp = timing.compile_aot(train.train_step, (self.state, batch))
    self.compiled, self.compile_s = comp['compiled'], comp['compile_s']
    self.out_shape = tuple(jax.eval_shape(lambda p, im: module.apply({'params': p}, im),
                                          self.state.params, batch['image']).shape)
    self.first_step_s = None

  def run(self, steps: int, warmup: int = 0) -> list[float]:
    from kernelscale.measure import timing  # pylint: disable=g-import-not-at-top
    # The donated state is consumed by each call: always rebind it.
    self.state, self.metrics, first, times, _ = timing.run_steps(
        self.compiled, self.state, self.batch, warmup, steps)
    if self.first_step_s is None:
      self.first_step_s = first
    return times


def compare_one(kernel_size: int, batch_size: int, rounds: int, steps: int,
                device: str = 'cpu', warmup: int = 2, learning_rate: float = 1e-3,
                seed: int = 0, variants: dict | None = None) -> dict:
  """Times kernelscale's compiled step and torch eager's, alternating, for one k.

  Args:
    kernel_size: the conv kernel size k (SAME padding).
    batch_size: examples per step, the same on both sides.
    rounds: rounds; the order of the sides rotates each round (with two sides:
      kernelscale first, then torch first, ...).
    steps: timed steps per side per round (after one untimed step).
    device: 'cpu' or 'cuda'; jax's default device must be of the same kind.
    warmup: untimed steps per side before the first round.
    learning_rate: Adam's learning rate on both sides.
    seed: seeds the batch (shared) and both initialisations.
    variants: optional {name: flax module} of other jax models with the seed
      net's shapes (experiments, e.g. another max-pool formulation), timed in
      the same rotation with kernelscale's train step.

  Returns:
    A dict with the per-round medians of each side (`jax_round_s`, `torch_round_s`),
    their medians (`jax_step_s`, `torch_step_s`), the median paired ratio
    (`ratio`, kernelscale / torch, with `ratio_min`/`ratio_max` over rounds),
    the fastest single step of each side and their ratio (`jax_best_s`,
    `torch_best_s`, `best_ratio`), `params`, `compile_s`, the conv implementations (`conv_impl`),
    and per variant {'step_s', 'ratio' (variant / torch), 'vs_kernelscale',
    'best_s', 'best_ratio', 'ratio_min', 'ratio_max', 'loss'} under `variants`.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from kernelscale.data import source  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import timing
  from kernelscale.net import models

  want = {'cpu': 'cpu', 'cuda': 'gpu'}[device]
  have = jax.devices()[0].platform
  if have != want:
    raise ValueError(f'--device: {device} asked, but jax runs on {have}; '
                     'set JAX_PLATFORMS to match')

  batch = source.synthetic_batch(batch_size, seed)
  jax_sides = {'jax': _JaxSide(models.build('seed', kernel_size, 'SAME', 'float32'),
                               learning_rate, seed, batch)}
  for name, module in (variants or {}).items():
    jax_sides[name] = _JaxSide(module, learning_rate, seed, batch)
  ks = jax_sides['jax']

  torch_step, sync, metrics, torch_params, torch_out = torch_train_step(
      kernel_size, batch, device, learning_rate, seed)
  for name, side in jax_sides.items():
    if side.params != torch_params:
      raise AssertionError(f'k={kernel_size}: torch net has {torch_params} parameters, '
                           f'{name} {side.params}; the nets differ')
    if side.out_shape != torch_out:
      raise AssertionError(f'k={kernel_size}: output shapes differ: torch {torch_out}, '
                           f'{name} {side.out_shape}')

  for side in jax_sides.values():
    side.run(0, warmup)
  time_torch_steps(torch_step, warmup, sync)

  runners = {name: side.run for name, side in jax_sides.items()}
  runners['torch'] = lambda n: time_torch_steps(torch_step, n, sync)
  names = list(runners)
  per_round = {name: [] for name in names}
  best = {name: float('inf') for name in names}
  with timing.other_cpu_load() as load:
    for r in range(rounds):
      order = names[r % len(names):] + names[:r % len(names)]
      for name in order:
        times = runners[name](steps)
        per_round[name].append(_med(times))
        best[name] = min(best[name], min(times))
  ratios = [j / t for j, t in zip(per_round['jax'], per_round['torch'])]
  out_variants = {}
  for name in jax_sides:
    if name != 'jax':
      vr = [v / t for v, t in zip(per_round[name], per_round['torch'])]
      out_variants[name] = {
          'step_s': _med(per_round[name]),
          'ratio': _med(vr), 'ratio_min': min(vr), 'ratio_max': max(vr),
          'vs_kernelscale': _med([v / j for v, j in zip(per_round[name], per_round['jax'])]),
          'best_s': best[name], 'best_ratio': best[name] / best['torch'],
          'loss': float(jax_sides[name].metrics['loss'])}
  return {'kernel_size': kernel_size, 'batch_size': batch_size, 'device': device,
          'rounds': rounds, 'steps': steps, 'params': ks.params,
          'output_shape': list(ks.out_shape), 'compile_s': ks.compile_s,
          'jax_first_step_s': ks.first_step_s, 'jax_round_s': per_round['jax'],
          'torch_round_s': per_round['torch'], 'jax_step_s': _med(per_round['jax']),
          'torch_step_s': _med(per_round['torch']), 'ratio': _med(ratios),
          'ratio_min': min(ratios), 'ratio_max': max(ratios),
          # Other processes only ever slow a step down: the fastest steps are
          # the least disturbed view of each side.
          'jax_best_s': best['jax'], 'torch_best_s': best['torch'],
          'best_ratio': best['jax'] / best['torch'],
          'conv_impl': conv_impls(ks.compiled, jax.devices()[0].platform),
          'jax_loss': float(ks.metrics['loss']), 'torch_loss': float(metrics['loss']),
          # Share of the machine's CPU other processes took during the rounds
          # (None without /proc/stat): torch's threads suffer most from it.
          'other_cpu_share': load['other_cpu_share'],
          'variants': out_variants}


def auto_variant(kernel_size: int, platform: str) -> dict:
  """{'auto': module} when conv_algo=auto runs other algorithms than nn.Conv at this k, else {}."""
  from kernelscale.net import models  # pylint: disable=g-import-not-at-top
  module = models.build('seed', kernel_size, 'SAME', 'float32', conv_algo='auto',
                        platform=platform)
  return {'auto': module} if module.conv_algos else {}


def compare(kernel_sizes, batch_size: int, rounds: int, steps: int, device: str = 'cpu',
            warmup: int = 2, log: Callable[[str], None] = print,
            algos: tuple[tuple[str, ...], ...] = ()) -> list[dict]:
  """`compare_one` for every k, logging one line per k as it finishes.

  kernelscale's step is timed as written (`nn.Conv`, conv_algo=xla) and, where
  conv_algo=auto picks other algorithms at that k, with those too, in the same
  rotation as torch's. Each entry of `algos` (one algorithm per conv layer,
  e.g. ('dft', 'dft')) is timed in the same rotation too, as variant 'conv1/conv2'.

  Returns:
    The per-k result dicts, in order.
  """
  from kernelscale.net import models  # pylint: disable=g-import-not-at-top
  platform = {'cpu': 'cpu', 'cuda': 'gpu'}[device]
  out = []
  for k in kernel_sizes:
    variants = auto_variant(k, platform)
    auto_algos = (models.layer_algos(variants['auto']) if variants else
                  {'conv1': 'xla', 'conv2': 'xla'})
    plain = models.build('seed', k, 'SAME', 'float32')
    for combo in algos:
      variants['/'.join(combo)] = plain.clone(conv_algos=combo)
    res = compare_one(k, batch_size, rounds, steps, device, warmup, variants=variants)
    res['auto_algos'] = auto_algos
    for name, v in res['variants'].items():
      if name != 'auto':
        log(f'    k={k} {name}: {v["step_s"] * 1e3:.1f} ms, ratio {v["ratio"]:.2f} '
            f'({v["ratio_min"]:.2f}-{v["ratio_max"]:.2f}), vs nn.Conv {v["vs_kernelscale"]:.2f}')
    log(_line(res))
    out.append(res)
  return out


def fastest(r: dict) -> tuple[str, float, float]:
  """(which, step_s, ratio to torch) of kernelscale's faster step: 'xla' or 'auto'."""
  a = r['variants'].get('auto')
  if a and a['step_s'] < r['jax_step_s']:
    return 'auto', a['step_s'], a['ratio']
  return 'xla', r['jax_step_s'], r['ratio']


def _algos(r: dict) -> str:
  return '+'.join(r['auto_algos'][f'conv{i}'] for i in (1, 2))


def _line(r: dict) -> str:
  a = r['variants'].get('auto')
  auto = (f'   auto ({_algos(r)}) {a["step_s"] * 1e3:.1f} ms, ratio {a["ratio"]:.2f}' if a
          else '   auto = xla at this k')
  return (f'k={r["kernel_size"]:<3} kernelscale xla {r["jax_step_s"] * 1e3:8.1f} ms   '
          f'torch {r["torch_step_s"] * 1e3:8.1f} ms   ratio {r["ratio"]:.2f} '
          f'(rounds {r["ratio_min"]:.2f}-{r["ratio_max"]:.2f}; fastest steps '
          f'{r["jax_best_s"] * 1e3:.1f} / {r["torch_best_s"] * 1e3:.1f} ms = '
          f'{r["best_ratio"]:.2f}){auto}{_load(r)}')


def _load(r: dict) -> str:
  """'   other load 3%', with a warning from claims.CONTENDED_SHARE; '' when not measured."""
  from kernelscale.analysis import claims  # pylint: disable=g-import-not-at-top
  share = r.get('other_cpu_share')
  if share is None:
    return ''
  warn = (' (CONTENDED: other processes may have slowed these rounds, torch\'s threads most; '
          'rerun on a quiet machine)' if share >= claims.CONTENDED_SHARE else '')
  return f'   other load {share:.0%}{warn}'


def _parse(argv):
  p = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--kernel_sizes', default='3,5,7,9,11',
                 help='comma-separated kernel sizes k (SAME padding); default 3,5,7,9,11')
  p.add_argument('--batch_size', default='128', help='examples per step; default 128')
  p.add_argument('--rounds', default='5',
                 help='paired rounds per k (order flips each round); default 5')
  p.add_argument('--steps', default='5', help='timed steps per side per round; default 5')
  p.add_argument('--warmup', default='2', help='untimed steps per side before round 1; default 2')
  p.add_argument('--device', default=None,
                 help='cpu or cuda; default cuda when torch sees a GPU, else cpu')
  p.add_argument('--cpu_conv', default='auto',
                 help='XLA CPU convolution path, as config.cpu_conv: auto (default; what '
                      'run.py picks), ynnpack (jaxlib out of the box; "default" is the same) '
                      'or eigen')
  p.add_argument('--malloc', default='auto',
                 help='host malloc, as config.malloc: auto (default; what run.py sets: retain '
                      'on glibc), retain or system (the C library\'s defaults, what jax and '
                      'torch get out of the box); one setting for the whole process, so both '
                      'sides run under it')
  p.add_argument('--algos', default='',
                 help='extra algorithm combinations to time, comma-separated conv1/conv2 '
                      'pairs of xla|taps|dft|rows, e.g. rows/dft,dft/dft (to check conv_algo=auto\'s '
                      'rule in whole steps); default none')
  p.add_argument('--xla_flags', default='',
                 help='extra XLA_FLAGS, appended to any inherited XLA_FLAGS before jax starts')
  a = p.parse_args(argv)
  ks = tuple(cli.kernel_sizes(a.kernel_sizes))
  cli.at_least(a, ('batch_size', 'rounds', 'steps'))
  cli.at_least(a, ('warmup',), low=0)
  a.kernel_sizes = ks
  from kernelscale.net import convs  # pylint: disable=g-import-not-at-top  (jax's backend not started)
  combos = []
  for item in (s.strip() for s in a.algos.split(',') if s.strip()):
    parts = tuple(item.split('/'))
    if len(parts) != 2 or any(x not in convs.ALGOS for x in parts):
      cli.fail(f'--algos: {item!r} is not conv1/conv2 with each of {", ".join(convs.ALGOS)} '
            '(e.g. rows/dft)')
    combos.append(parts)
  a.algos = tuple(combos)
  if a.device not in (None, 'cpu', 'cuda'):
    cli.fail(f'--device: {a.device!r}; use cpu or cuda')
  from kernelscale.measure import host  # pylint: disable=g-import-not-at-top  (no jax import)
  a.cpu_conv = {'default': 'ynnpack'}.get(a.cpu_conv, a.cpu_conv)
  if a.cpu_conv not in host.CPU_CONV_CHOICES:
    cli.fail(f'--cpu_conv: {a.cpu_conv!r}; use one of {", ".join(host.CPU_CONV_CHOICES)}')
  if a.malloc not in host.MALLOC_CHOICES:
    cli.fail(f'--malloc: {a.malloc!r}; use one of {", ".join(host.MALLOC_CHOICES)}')
  return a


def main(argv=None) -> int:
  args = _parse(sys.argv[1:] if argv is None else argv)
  from kernelscale.measure import host as ks_device  # pylint: disable=g-import-not-at-top
  try:
    mem = ks_device.configure_malloc(args.malloc)  # before torch and jax allocate
  except ks_device.DeviceConfigError as e:
    cli.fail(str(e).replace('config.malloc', '--malloc'))
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    print(SKIP_MESSAGE)
    return 0
  device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
  if device == 'cuda' and not torch.cuda.is_available():
    cli.fail('--device: cuda asked, but this torch build sees no CUDA device')
  # Set before jax is imported: both take effect only at backend start.
  if args.xla_flags:
    os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {args.xla_flags}'.strip()
  conv = ks_device.configure_cpu_conv(args.cpu_conv) if device == 'cpu' else None
  os.environ.setdefault('JAX_PLATFORMS', 'cpu' if device == 'cpu' else 'cuda')
  threads = host_threads()
  # torch defaults to the physical cores; XLA sizes its pool from the usable ones.
  torch.set_num_threads(threads)

  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_enable_compilation_cache', False)
  print(f'device: {device} (jax: {jax.devices()[0].device_kind}); torch {torch.__version__}, '
        f'jax {jax.__version__}')
  print(f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}' + (
      f'; cpu_conv={conv["cpu_conv"]} -> {conv["cpu_conv_path"]} ({conv["cpu_conv_reason"]})'
      if conv else ''))
  print(f'malloc: {mem["malloc_mode"]} ({mem["malloc_reason"]}), for both sides')
  print(f'threads: torch {torch.get_num_threads()} (intra-op), '
        f'{torch.get_num_interop_threads()} (inter-op); XLA uses its own pool sized from '
        f'the {threads} usable cores')
  print(f'batch {args.batch_size}, SAME, float32, Adam lr 1e-3; per k: {args.warmup} warm-up '
        f'steps per side, then {args.rounds} rounds x {args.steps} timed steps per side, '
        f'alternating; figures are medians over rounds of each round\'s median step')
  try:
    results = compare(args.kernel_sizes, args.batch_size, args.rounds, args.steps, device,
                      args.warmup, algos=args.algos)
  except ValueError as e:
    cli.fail(str(e))
  print()
  print('| k | xla (nn.Conv) ms | auto ms (conv1+conv2) | torch ms | xla/torch (rounds min-max) '
        '| auto/torch (rounds min-max) | kernelscale\'s best/torch | xla conv implementation (compiled HLO) |')
  print('|---|---|---|---|---|---|---|---|')
  for r in results:
    a = r['variants'].get('auto')
    auto_ms = f'{a["step_s"] * 1e3:.1f} ({_algos(r)})' if a else f'= xla ({_algos(r)})'
    auto_ratio = f'{a["ratio"]:.2f} ({a["ratio_min"]:.2f}-{a["ratio_max"]:.2f})' if a else '—'
    print(f'| {r["kernel_size"]} | {r["jax_step_s"] * 1e3:.1f} | {auto_ms} '
          f'| {r["torch_step_s"] * 1e3:.1f} '
          f'| {r["ratio"]:.2f} ({r["ratio_min"]:.2f}-{r["ratio_max"]:.2f}) | {auto_ratio} '
          f'| {fastest(r)[2]:.2f} | {r["conv_impl"]} |')
  print()
  print('auto: conv_algo=auto, the same network computed with the algorithm per layer that '
        'kernelscale/net/convs.py picks (taps, rows, dft or xla); xla: nn.Conv as written.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
