"""Experiment: the seed net's second conv, phase by phase, XLA against PyTorch eager.

For conv2 of the seed network (input B x 14 x 14 x 32, 64 filters, k x k, SAME,
stride 1, float32) this times, alternating jax and torch, each phase alone:
forward, backward-input (dL/dx) and backward-filter (dL/dW). It shows which
phase makes kernelscale's CPU step slower than torch's at large k.

Run (2-core CPU, about 1 min; --cpu_conv as run.py's config.cpu_conv, default auto):
    python benchmarks/peer_torch_phases.py --kernel_sizes=3,7,11
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys


from benchmarks import peer_torch  # pylint: disable=g-import-not-at-top,wrong-import-position

PHASES = ('forward', 'backward_input', 'backward_filter')


def _times(fn, steps: int) -> list[float]:
  """Seconds of `steps` calls of `fn`, each run to completion."""
  from kernelscale.measure import timing  # pylint: disable=g-import-not-at-top
  return timing.time_calls(fn, steps)


def phase_fns(kernel_size: int, batch_size: int, hw: int = 14, c_in: int = 32,
              c_out: int = 64) -> dict:
  """{(side, phase): zero-argument callable running that phase to completion}."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  k = kernel_size
  rng = np.random.default_rng(0)
  x = rng.standard_normal((batch_size, hw, hw, c_in), dtype=np.float32)
  w = rng.standard_normal((k, k, c_in, c_out), dtype=np.float32) * 0.05
  g = rng.standard_normal((batch_size, hw, hw, c_out), dtype=np.float32)

  def conv(x_BxHxWxC, w_KxKxCixCo):
    return jax.lax.conv_general_dilated(x_BxHxWxC, w_KxKxCixCo, (1, 1), 'SAME',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  jx, jw, jg = (jax.device_put(a) for a in (x, w, g))
  fwd = jax.jit(conv)
  bwd_in = jax.jit(lambda xx, ww, gg: jax.vjp(lambda a: conv(a, ww), xx)[1](gg)[0])
  bwd_w = jax.jit(lambda xx, ww, gg: jax.vjp(lambda b: conv(xx, b), ww)[1](gg)[0])

  tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
  tw = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
  tg = torch.from_numpy(g.transpose(0, 3, 1, 2).copy())
  f = torch.nn.functional
  return {
      ('jax', 'forward'): lambda: fwd(jx, jw).block_until_ready(),
      ('jax', 'backward_input'): lambda: bwd_in(jx, jw, jg).block_until_ready(),
      ('jax', 'backward_filter'): lambda: bwd_w(jx, jw, jg).block_until_ready(),
      ('torch', 'forward'): lambda: f.conv2d(tx, tw, padding='same'),
      ('torch', 'backward_input'): lambda: torch.nn.grad.conv2d_input(
          tx.shape, tw, tg, padding=k // 2),
      ('torch', 'backward_filter'): lambda: torch.nn.grad.conv2d_weight(
          tx, tw.shape, tg, padding=k // 2),
  }


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--kernel_sizes', default='3,7,11')
  p.add_argument('--batch_size', type=int, default=128)
  p.add_argument('--rounds', type=int, default=5)
  p.add_argument('--steps', type=int, default=3)
  p.add_argument('--cpu_conv', default='auto', choices=('auto', 'ynnpack', 'eigen'))
  a = p.parse_args()
  from kernelscale.measure import host  # pylint: disable=g-import-not-at-top  (no jax import)
  conv = host.configure(a.cpu_conv)  # as run.py: conv path, and malloc=auto
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    print(peer_torch.SKIP_MESSAGE)
    return 0
  torch.set_num_threads(peer_torch.host_threads())
  print(f'cpu_conv={a.cpu_conv} -> {conv["cpu_conv_path"]}, malloc {conv["malloc_mode"]}; torch {torch.__version__} '
        f'{torch.get_num_threads()} threads; conv2 ({a.batch_size}x14x14x32 -> 64), SAME; '
        f'{a.rounds} rounds x {a.steps} calls, alternating; median ms of round medians')
  print('| k | phase | GFLOP (dense) | jax ms | torch ms | jax/torch |')
  print('|---|---|---|---|---|---|')
  for k in [int(s) for s in a.kernel_sizes.split(',')]:
    fns = phase_fns(k, a.batch_size)
    for fn in fns.values():  # compile and warm
      fn()
      fn()
    for phase in PHASES:
      meds = {'jax': [], 'torch': []}
      for r in range(a.rounds):
        for side in (('jax', 'torch') if r % 2 == 0 else ('torch', 'jax')):
          meds[side].append(statistics.median(_times(fns[(side, phase)], a.steps)))
      j, t = statistics.median(meds['jax']), statistics.median(meds['torch'])
      gflop = 2 * a.batch_size * 14 * 14 * 32 * 64 * k * k / 1e9
      print(f'| {k} | {phase} | {gflop:.2f} | {j * 1e3:.1f} | {t * 1e3:.1f} | {j / t:.2f} |',
            flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
