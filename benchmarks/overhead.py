"""Harness overhead: the sweep's step_s_median against a bare loop over the same step.

The harness (kernelscale.measure.run_steps) blocks and reads the clock around
every step; the bare loop dispatches N steps back to back and blocks once, so
XLA may overlap dispatch of one step with the end of the previous one. Both
run the same compiled executable on the same device-resident batch, in
alternating pairs; the figure is the median over pairs of
(harness median step - bare mean step) / bare mean step.

    python benchmarks/overhead.py                      # seed, SAME, k=5, batch 128, 5 pairs
    python benchmarks/overhead.py --kernel_size=3 --cpu_conv=ynnpack
"""
from __future__ import annotations

import argparse
import statistics
import time



def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--kernel_size', type=int, default=5)
  ap.add_argument('--padding', default='SAME', choices=('SAME', 'VALID'))
  ap.add_argument('--batch_size', type=int, default=128)
  ap.add_argument('--steps', type=int, default=20, help='timed steps per side of a pair')
  ap.add_argument('--pairs', type=int, default=5)
  ap.add_argument('--cpu_conv', default='auto', choices=('auto', 'ynnpack', 'eigen'))
  a = ap.parse_args()

  from kernelscale.measure import host  # before jax initialises
  backend = host.configure(a.cpu_conv)  # as run.py: conv path, and malloc=auto
  import jax  # pylint: disable=g-import-not-at-top
  from kernelscale.data import source  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import timing
  from kernelscale.net import models, train

  module = models.build('seed', a.kernel_size, a.padding, 'float32')
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), source.SYNTHETIC_SHAPE)
  batch = source.synthetic_batch(a.batch_size, 0)
  compiled = timing.compile_aot(train.train_step, (state, batch))['compiled']
  state, *_ = timing.run_steps(compiled, state, batch, warmup=3, steps=1)

  print(f'seed k={a.kernel_size} {a.padding} batch {a.batch_size} on '
        f'{jax.devices()[0].device_kind}, cpu conv path {backend["cpu_conv_path"]}, '
        f'malloc {backend["malloc_mode"]}; '
        f'{a.pairs} pairs x {a.steps} steps')
  diffs = []
  for i in range(a.pairs):
    # Harness: exactly what the sweep records.
    state, _, _, times, _ = timing.run_steps(compiled, state, batch, warmup=2, steps=a.steps)
    harness = timing.step_stats(times)['step_s_median']
    # Bare loop: same executable, no per-step blocking or clock.
    for _ in range(2):
      state, metrics = compiled(state, batch)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(a.steps):
      state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    bare = (time.perf_counter() - t0) / a.steps
    diffs.append((harness - bare) / bare)
    print(f'pair {i + 1}: harness median {harness * 1e3:.2f} ms, bare mean {bare * 1e3:.2f} ms, '
          f'difference {diffs[-1] * 100:+.2f}%')
  med = statistics.median(diffs)
  print(f'median difference over {a.pairs} pairs: {med * 100:+.2f}% '
        f'(target: within 3%) -> {"ok" if abs(med) <= 0.03 else "over target"}')


if __name__ == '__main__':
  main()
