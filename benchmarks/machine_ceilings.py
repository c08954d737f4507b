"""Prints this device's ceilings, and why the bandwidth copy donates its input.

    python benchmarks/machine_ceilings.py            # a few seconds on a 2-core CPU

Prints the float32 / bfloat16 matmul FLOP/s and the copy bandwidth that the
roofline uses (kernelscale.ceilings.measure_ceilings), then the same copy
without donation (a fresh output buffer per call) and numpy's in-place add on
the same array size, side by side.
"""


import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from kernelscale.measure import ceilings, timing


def _best(fn, repeats=20):
  s = timing.summary(timing.time_calls(fn, repeats))
  return s['min'], s['median']


def main():
  c = ceilings.measure_ceilings()
  print(f'device {c["device_key"]}')
  print(f'float32 matmul {c["matmul_n"]}^2: best {c["ceiling_flops_per_s"] / 1e9:.1f} GFLOP/s, '
        f'median {c["ceiling_flops_per_s_median"] / 1e9:.1f}')
  bf = c['ceiling_bf16_flops_per_s']
  print(f'bfloat16 matmul {c["bf16_matmul_n"]}^2: '
        + (f'{bf / 1e9:.1f} GFLOP/s' if bf else 'not measured'))
  print(f'copy x = x + 1, donated, {c["copy_bytes_per_call"] / 2**20:.0f} MiB moved per call: '
        f'best {c["ceiling_bytes_per_s"] / 1e9:.1f} GB/s, '
        f'median {c["ceiling_bytes_per_s_median"] / 1e9:.1f}')
  n = c['copy_elements']
  x = jnp.zeros((n,), jnp.float32)
  f = jax.jit(lambda v: v + 1.0).lower(x).compile()
  jax.block_until_ready(f(x))
  best, med = _best(lambda: jax.block_until_ready(f(x)))
  print(f'copy y = x + 1, NOT donated (new output buffer each call): best {8 * n / best / 1e9:.1f} '
        f'GB/s, median {8 * n / med / 1e9:.1f}')
  a = np.zeros(n, np.float32)
  b = np.empty_like(a)
  best, med = _best(lambda: np.add(a, 1, out=b))
  print(f'numpy np.add(a, 1, out=b) into a preallocated array: best {8 * n / best / 1e9:.1f} GB/s, '
        f'median {8 * n / med / 1e9:.1f}')


if __name__ == '__main__':
  main()
