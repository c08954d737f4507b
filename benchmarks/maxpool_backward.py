"""The 2x2 max-pool's gradient alone, at the seed network's shapes.

Cross-checks the profiler attribution: on CPU the trace puts ~100+ ms per
step (batch 128) under pooling/backward, independent of the kernel size. This
times the pool and its VJP by themselves (jit, warm, blocked, median of N).

    python benchmarks/maxpool_backward.py                 # batch 128
    python benchmarks/maxpool_backward.py --batch_size=32
"""
from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _pool(x):
  return nn.max_pool(x, (2, 2), strides=(2, 2), padding='VALID')


def _pool_vjp(x, g):
  return jax.vjp(_pool, x)[1](g)[0]


def _median_s(fn, args, steps: int) -> float:
  for _ in range(3):
    jax.block_until_ready(fn(*args))
  ts = []
  for _ in range(steps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    ts.append(time.perf_counter() - t0)
  return float(np.median(ts))


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--batch_size', type=int, default=128)
  ap.add_argument('--steps', type=int, default=15)
  a = ap.parse_args()
  print(f'{jax.devices()[0].device_kind}, batch {a.batch_size}, median of {a.steps}')
  total_f = total_b = 0.0
  # The seed net's two pools: after conv1 (28x28x32) and conv2 (14x14x64).
  for hw, c in ((28, 32), (14, 64)):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((a.batch_size, hw, hw, c), dtype=np.float32))
    g = jnp.ones((a.batch_size, hw // 2, hw // 2, c), jnp.float32)
    fwd = jax.jit(_pool).lower(x).compile()
    bwd = jax.jit(_pool_vjp).lower(x, g).compile()
    f, b = _median_s(fwd, (x,), a.steps), _median_s(bwd, (x, g), a.steps)
    total_f, total_b = total_f + f, total_b + b
    print(f'pool on {hw}x{hw}x{c}: forward {f * 1e3:.2f} ms, backward (VJP) {b * 1e3:.2f} ms')
  print(f'both pools: forward {total_f * 1e3:.2f} ms, backward {total_b * 1e3:.2f} ms '
        f'({total_b / total_f:.0f}x the forward)')


if __name__ == '__main__':
  main()
