"""Experiment: where the CPU train step loses to PyTorch, and a cheaper max-pool gradient.

The gradient of `nn.max_pool` (a reduce_window max) is a select_and_scatter.
XLA's CPU backend (jaxlib 0.10.2) expands it: one s32 iota array per input
dimension (four arrays of the pooled input's full size), a variadic
reduce_window over the values and the four index arrays to find each window's
argmax, then a scatter of the gradient to those indices; little of that is
vectorised or fused. A 2x2/stride-2 pool over an even input is the same
function as reshape -> max over the two window axes, whose gradient is an
elementwise compare/select. Where a window holds ties the gradient is split
between them instead of going to one element, but here the pool follows a
ReLU, so ties are (almost always) zeros whose ReLU gradient is zero anyway:
the gradients agree (tests/maxpool_grad_test.py checks it).

Per k this prints the iota / reduce-window / scatter instructions in each
compiled step, then times kernelscale's step, the same step with the reshape
pool, and torch eager, in rotation (benchmarks/peer_torch.py's compare_one).

Run (2-core CPU, about 2 min; the Eigen conv path unless --cpu_conv=default):
    python benchmarks/maxpool_grad.py --kernel_sizes=3,5,7,9,11

Nothing here changes kernelscale/: the variant is defined in this file.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from benchmarks import peer_torch  # pylint: disable=g-import-not-at-top,wrong-import-position


def reshape_pool_net(kernel_size: int):
  """kernelscale's seed net with each 2x2 max-pool written as reshape + max."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from kernelscale import models  # pylint: disable=g-import-not-at-top

  def max_pool_2x2(x_BxHxWxC):
    b, h, w, c = x_BxHxWxC.shape
    return x_BxHxWxC.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

  class ReshapePoolNet(models.ConvNet):
    """Same layers and names as ConvNet; only the pool's formulation differs."""

    @nn.compact
    def __call__(self, x_BxHxWxC):
      x = x_BxHxWxC.astype(self.dtype)
      k = self.kernel_size
      for i, f in enumerate(self.features):
        x = nn.Conv(f, (k, k), padding=self.padding, dtype=self.dtype, name=f'conv{i + 1}')(x)
        x = max_pool_2x2(nn.relu(x))
      x = x.reshape((x.shape[0], -1))
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name='dense1')(x))
      return nn.Dense(self.num_classes, dtype=self.dtype, name='dense2')(x).astype('float32')

  models.build('seed', kernel_size, 'SAME', 'float32')  # the same shape checks
  return ReshapePoolNet(features=(32, 64), kernel_size=kernel_size, padding='SAME')


def pool_op_counts(module, batch_size: int) -> dict:
  """Counts iota, reduce-window and scatter instructions in the compiled train step.

  These are what XLA's CPU backend emits for a max-pool gradient (the CE
  gradient adds one scatter of its own). Compiles the step once, the sweep's way.

  Returns:
    {'iota': n, 'reduce-window': n, 'scatter': n}.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from kernelscale import data, measure, train  # pylint: disable=g-import-not-at-top
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), data.SYNTHETIC_SHAPE)
  batch = data.synthetic_batch(batch_size, 0)
  text = measure.compile_aot(train.train_step, (state, batch))['compiled'].as_text()
  counts = collections.Counter(re.findall(r'= \S+ (iota|reduce-window|scatter)\(', text))
  return {op: counts.get(op, 0) for op in ('iota', 'reduce-window', 'scatter')}


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--kernel_sizes', default='3,5,7,9,11')
  p.add_argument('--batch_size', type=int, default=128)
  p.add_argument('--rounds', type=int, default=5)
  p.add_argument('--steps', type=int, default=5)
  p.add_argument('--cpu_conv', default='eigen', choices=('default', 'eigen'))
  a = p.parse_args()
  ks = [int(s) for s in a.kernel_sizes.split(',')]
  os.environ['XLA_FLAGS'] = peer_torch.xla_flags_for(a.cpu_conv, '',
                                                     os.environ.get('XLA_FLAGS', ''))
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  print(f'XLA_FLAGS={os.environ["XLA_FLAGS"]!r}, batch {a.batch_size}, SAME, float32')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    print(peer_torch.SKIP_MESSAGE)
    return 0
  torch.set_num_threads(peer_torch.host_threads())
  from kernelscale import models  # pylint: disable=g-import-not-at-top
  # The pool ops do not depend on k: count them once, at the first k.
  base = pool_op_counts(models.build('seed', ks[0], 'SAME', 'float32'), a.batch_size)
  var = pool_op_counts(reshape_pool_net(ks[0]), a.batch_size)
  print(f'HLO instructions at k={ks[0]}: kernelscale {base}; reshape-pool {var}')
  print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; {a.rounds} rounds x '
        f'{a.steps} steps per side, rotating; medians over rounds')
  print('| k | kernelscale ms | reshape-pool ms | torch ms | kernelscale/torch | '
        'reshape-pool/torch | reshape-pool/kernelscale | fastest ks / rp / torch ms | '
        'loss ks / rp |')
  print('|---|---|---|---|---|---|---|---|---|')
  for k in ks:
    r = peer_torch.compare_one(k, a.batch_size, a.rounds, a.steps, 'cpu',
                               variants={'reshape_pool': reshape_pool_net(k)})
    v = r['variants']['reshape_pool']
    print(f'| {k} | {r["jax_step_s"] * 1e3:.1f} | {v["step_s"] * 1e3:.1f} | '
          f'{r["torch_step_s"] * 1e3:.1f} | {r["ratio"]:.2f} | {v["ratio"]:.2f} | '
          f'{v["vs_kernelscale"]:.2f} | {r["jax_best_s"] * 1e3:.1f} / {v["best_s"] * 1e3:.1f} / '
          f'{r["torch_best_s"] * 1e3:.1f} | {r["jax_loss"]:.4f} / {v["loss"]:.4f} |', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
