"""Achieved train-step FLOP/s over the machine's measured matmul FLOP/s, per k.

For each kernel size the seed train step (SAME, batch 128, float32) is compiled
once and timed (warm, blocked, median); achieved = XLA's FLOP count / median
step. The ceiling is kernelscale.ceilings' float32 matmul FLOP/s (best of many
calls), measured before and after the steps; the larger is used, so a burst of
other load cannot flatter the ratio.

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
  backend = device.configure_cpu_conv(a.cpu_conv)
  import jax  # pylint: disable=g-import-not-at-top
  from kernelscale import ceilings, data, measure, models, train  # pylint: disable=g-import-not-at-top

  before = ceilings.measure_ceilings()['ceiling_flops_per_s']
  rows = []
  for k in ks:
    module = models.build('seed', k, a.padding, 'float32')
    state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), data.SYNTHETIC_SHAPE)
    batch = data.synthetic_batch(a.batch_size, 0)
    compiled = measure.compile_aot(train.train_step, (state, batch))['compiled']
    flops = measure.cost_analysis(compiled)[0]['xla_flops']
    state, _, _, times = measure.run_steps(compiled, state, batch, 3, a.steps)
    rows.append((k, flops, measure.step_stats(times)['step_s_median']))
  after = ceilings.measure_ceilings()['ceiling_flops_per_s']
  peak = max(before, after)
  dev = jax.devices()[0]
  print(f'{dev.platform} ({dev.device_kind}), conv path {backend["cpu_conv_path"] or "n/a"}, '
        f'seed {a.padding} batch {a.batch_size} float32; float32 matmul ceiling '
        f'{peak / 1e9:.1f} GFLOP/s (before {before / 1e9:.1f}, after {after / 1e9:.1f})')
  print(f'{"k":>3} {"step ms":>9} {"XLA GFLOP":>10} {"achieved GFLOP/s":>17} {"of ceiling":>11}')
  for k, flops, step in rows:
    got = flops / step
    print(f'{k:>3} {step * 1e3:>9.2f} {flops / 1e9:>10.3f} {got / 1e9:>17.1f} {got / peak:>11.2f}')


if __name__ == '__main__':
  main()
