"""The seed train step under glibc's default malloc and under config.malloc=retain.

XLA:CPU takes each step's scratch buffer (45-76 MiB for the seed network at
batch 128) from malloc. glibc serves blocks above its mmap threshold (at most
32 MiB) with a fresh mmap and unmaps them on free, so every step faults the
whole buffer in again, page by page. `config.malloc=retain` (run.py's default
on glibc: kernelscale/measure/host.py) keeps freed memory for reuse instead.

The setting is per process and cannot be undone, so each mode runs in its own
child process; the modes alternate, round by round, and each child times every
k (SAME, batch 128, float32, conv_algo as given) with jit-compiled, donated
train steps. Prints per k the median step and minor page faults per step under
each mode, and the speed-up. Linux with glibc only.

    python benchmarks/malloc.py                         # k=3,5,7,9,11, xla and auto, ~3-4 min
    python benchmarks/malloc.py --kernel_sizes=3,7 --conv_algos=auto --rounds=2

A full run (the defaults for k, conv_algos, batch size and steps, >= 2 rounds)
caches its median speed-up in ~/.cache/kernelscale/malloc.json, keyed by CPU
model, cores and jaxlib version; run.py's results.md then quotes it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


from kernelscale import cli  # pylint: disable=g-import-not-at-top

MODES = ('system', 'retain')
DEFAULT_KS, DEFAULT_ALGOS = [3, 5, 7, 9, 11], ['xla', 'auto']


def _child(a) -> None:
  """Times every (k, conv_algo) under this process's malloc mode; one JSON line each."""
  from kernelscale.measure import host
  host.configure(a.cpu_conv, a.malloc)
  import jax  # pylint: disable=g-import-not-at-top
  from kernelscale.data import source  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import timing
  from kernelscale.net import models, train
  hw, _, c = source.SYNTHETIC_SHAPE
  batch = source.synthetic_batch(a.batch_size, 0)
  for k in a.kernel_sizes:
    for algo in a.conv_algos:
      module = models.build('seed', k, 'SAME', 'float32', hw, c, conv_algo=algo)
      state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), source.SYNTHETIC_SHAPE)
      compiled = timing.compile_aot(train.train_step, (state, batch))['compiled']
      _, _, _, times, faults = timing.run_steps(compiled, state, batch, 3, a.steps)
      print(json.dumps({'k': k, 'conv_algo': algo, 'step_s': statistics.median(times),
                        'faults': faults, 'malloc_mode': host.malloc_mode(),
                        'cpu_conv_path': host.conv_path(os.environ.get('XLA_FLAGS', ''))}),
            flush=True)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--kernel_sizes', default=','.join(map(str, DEFAULT_KS)),
                  help='comma-separated k; SAME padding')
  ap.add_argument('--conv_algos', default=','.join(DEFAULT_ALGOS),
                  help='comma-separated values of config.conv_algo to time; default xla,auto')
  ap.add_argument('--batch_size', default='128')
  ap.add_argument('--rounds', default='3', help='alternating rounds (2 processes each)')
  ap.add_argument('--steps', default='10', help='timed steps per point per process')
  ap.add_argument('--cpu_conv', default='auto', choices=('auto', 'ynnpack', 'eigen'))
  ap.add_argument('--malloc', choices=MODES, help=argparse.SUPPRESS)  # set in child processes
  a = ap.parse_args()
  a.kernel_sizes = cli.kernel_sizes(a.kernel_sizes)
  from kernelscale.net import convs  # pylint: disable=g-import-not-at-top  (no jax import)
  from kernelscale.measure import host
  given = a.conv_algos
  a.conv_algos = [s.strip() for s in given.split(',') if s.strip()]
  if (not a.conv_algos or any(s not in convs.CONV_ALGOS for s in a.conv_algos)
      or len(set(a.conv_algos)) != len(a.conv_algos)):
    cli.fail(f'--conv_algos: {given!r}; give distinct values of {", ".join(convs.CONV_ALGOS)}')
  cli.at_least(a, ('batch_size', 'rounds', 'steps'))
  if a.malloc:
    _child(a)
    return
  if host._glibc() is None:  # pylint: disable=protected-access
    cli.fail('needs glibc (Linux): config.malloc=retain is a glibc setting')

  # One conv path for both modes: cpu_conv=auto is settled here, as run.py settles it
  # under its default malloc (retain on glibc), not by each child under its own mode.
  path = host.resolve_cpu_conv(a.cpu_conv, 'retain')['cpu_conv_path']
  base = [sys.executable, os.path.abspath(__file__),
          f'--kernel_sizes={",".join(map(str, a.kernel_sizes))}',
          f'--conv_algos={",".join(a.conv_algos)}', f'--batch_size={a.batch_size}',
          f'--steps={a.steps}', f'--cpu_conv={path}']
  print(f'seed net, SAME, batch {a.batch_size}, float32, cpu_conv={a.cpu_conv} -> {path} '
        'in both modes; '
        f'{a.rounds} rounds, each one process per malloc mode (order alternates), '
        f'{a.steps} timed steps per point per process')
  runs = {}  # (k, algo, mode) -> [(step_s, faults)]
  for r in range(a.rounds):
    for mode in (MODES if r % 2 == 0 else MODES[::-1]):
      print(f'round {r + 1}/{a.rounds}: malloc={mode} ...', flush=True)
      p = subprocess.run(base + [f'--malloc={mode}'], capture_output=True, text=True)
      if p.returncode:
        tail = '\n'.join(p.stderr.strip().splitlines()[-5:])
        cli.fail(f'the malloc={mode} child failed (exit {p.returncode}):\n{tail}')
      for line in p.stdout.splitlines():
        if line.startswith('{'):
          d = json.loads(line)
          if d['cpu_conv_path'] != path:
            cli.fail(f'the malloc={mode} child ran cpu_conv {d["cpu_conv_path"]}, not {path}')
          runs.setdefault((d['k'], d['conv_algo'], mode), []).append((d['step_s'], d['faults']))
  print()
  rows = []
  print('| k | conv_algo | system ms | retain ms | system/retain (rounds min-max) '
        '| faults/step system | retain |')
  print('|---|---|---|---|---|---|---|')
  for k in a.kernel_sizes:
    for algo in a.conv_algos:
      sy, re_ = runs[(k, algo, 'system')], runs[(k, algo, 'retain')]
      ratios = [s[0] / t[0] for s, t in zip(sy, re_)]
      rows.append({'k': k, 'conv_algo': algo, 'ratio': statistics.median(ratios)})
      ms = lambda v: statistics.median(x[0] for x in v) * 1e3
      fl = lambda v: statistics.median(x[1] for x in v if x[1] is not None)
      print(f'| {k} | {algo} | {ms(sy):.1f} | {ms(re_):.1f} | {statistics.median(ratios):.2f} '
            f'({min(ratios):.2f}-{max(ratios):.2f}) | {fl(sy):,.0f} | {fl(re_):,.0f} |')
  print('\nsystem: glibc\'s defaults (what jax gets out of the box); retain: config.malloc=auto '
        'on glibc. Ratios pair the processes of one round.')
  overall = statistics.median(r['ratio'] for r in rows)
  print(f'median speed-up of retain over glibc\'s defaults: {overall:.2f}x')
  full = (a.kernel_sizes == DEFAULT_KS and a.conv_algos == DEFAULT_ALGOS and a.batch_size == 128
          and a.steps >= 10 and a.rounds >= 2)
  if full:
    path = host.record_malloc_measurement(overall, {'rows': rows, 'rounds': a.rounds,
                                                      'cpu_conv': a.cpu_conv})
    print(f'cached for the reports of run.py on this machine: {path}')
  else:
    print('not cached: results.md quotes only full runs (default k, conv_algos, batch size '
          'and steps, >= 2 rounds)')


if __name__ == '__main__':
  main()
