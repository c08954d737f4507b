"""The 2x2 max-pool's gradient alone, at the seed network's shapes: two forms.

Cross-checks the profiler attribution: on CPU the trace put ~100+ ms per step
(batch 128) under pooling/backward with flax's nn.max_pool (lax.reduce_window,
whose gradient XLA lowers to select-and-scatter), independent of the kernel
size. This times that form and kernelscale's reshape+max form
(models.max_pool_2x2, what the seed network uses) side by side, each pool and
its VJP by itself (jit, warm, blocked, median of N), after a ReLU as in the net.

    python benchmarks/maxpool_backward.py                 # batch 128
    python benchmarks/maxpool_backward.py --batch_size=32
    python benchmarks/maxpool_backward.py --shapes=22x32,5x64   # seed VALID k=7's pools
"""
from __future__ import annotations

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kernelscale.measure import timing
from kernelscale.net import models

FORMS = {
    'reduce_window (nn.max_pool)': lambda x: nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2)),
    'reshape+max (models.max_pool_2x2)': lambda x: models.max_pool_2x2(nn.relu(x)),
}


def _median_s(fn, args, steps: int) -> float:
  for _ in range(3):
    jax.block_until_ready(fn(*args))
  return timing.summary(timing.time_calls(lambda: jax.block_until_ready(fn(*args)), steps))['median']


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--batch_size', type=int, default=128)
  ap.add_argument('--steps', type=int, default=15)
  ap.add_argument('--shapes', default='28x32,14x64',
                  help='pool inputs as HWxC, comma-separated (default: the seed net SAME pools)')
  a = ap.parse_args()
  print(f'{jax.devices()[0].device_kind}, batch {a.batch_size}, median of {a.steps}')
  rng = np.random.default_rng(0)
  try:
    shapes = tuple(tuple(int(v) for v in s.split('x')) for s in a.shapes.split(','))
  except ValueError:
    ap.error(f'--shapes: {a.shapes!r} is not a list like 28x32,14x64')
  xs = [jnp.asarray(rng.standard_normal((a.batch_size, hw, hw, c), dtype=np.float32))
        for hw, c in shapes]
  gs = [jnp.asarray(rng.standard_normal((a.batch_size, hw // 2, hw // 2, c), dtype=np.float32))
        for hw, c in shapes]
  grads = {}
  for name, pool in FORMS.items():
    total_f = total_b = 0.0
    for x, g, (hw, c) in zip(xs, gs, shapes):
      fwd = jax.jit(pool).lower(x).compile()
      bwd = jax.jit(lambda x, g, pool=pool: jax.vjp(pool, x)[1](g)[0]).lower(x, g).compile()
      f, b = _median_s(fwd, (x,), a.steps), _median_s(bwd, (x, g), a.steps)
      grads.setdefault(name, []).append(bwd(x, g))
      total_f, total_b = total_f + f, total_b + b
      print(f'{name}: pool on {hw}x{hw}x{c}: forward {f * 1e3:.2f} ms, '
            f'backward (VJP) {b * 1e3:.2f} ms')
    print(f'{name}: both pools forward {total_f * 1e3:.2f} ms, backward {total_b * 1e3:.2f} ms')
  a_, b_ = grads.values()
  diff = max(float(jnp.abs(u - v).max()) for u, v in zip(a_, b_))
  print(f'largest gradient difference between the forms (through the ReLU): {diff}')


if __name__ == '__main__':
  main()
