"""The seed CNN family as flax modules, built from `shapes`' table.

`shapes` holds what can be known without jax (named models, designs, layer
shapes, the ops of each design); this module turns it into `ConvNet`, whose
layer names (`conv1`, `conv2a`, ..., `dense1`) let optimized-HLO op names map
back to layers.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kernelscale.net import convs, shapes


DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}


_WINDOW_ORDER = {True: ((0, 0), (0, 1), (1, 0), (1, 1)),   # x6 axis 1 is the window row
                 False: ((0, 0), (1, 0), (0, 1), (1, 1))}  # x6 axis 1 is its column (WHBC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _pool_windows(x6, row_major: bool):
  """max over axes 1 and 3 of x6 [P, 2, Q, 2, ...]: the 2x2 windows of a max-pool."""
  return x6.max(axis=(1, 3))


def _pool_windows_fwd(x6, row_major):
  # Which element of each window is its first maximum in NHWC row-major
  # window order, as a small integer: nn.max_pool's gradient (select-and-
  # scatter with >=) sends all of a window's gradient there, also where maxima
  # tie. Found here, in the forward pass, from the same read of x6 as the max:
  # the gradient then never reads x6, so XLA has no reason to recompute x6's
  # producer (a fused conv) inside it.
  y = x6.max(axis=(1, 3))
  first = jnp.full(y.shape, len(_WINDOW_ORDER[row_major]), jnp.int8)
  for code, (a, b) in reversed(list(enumerate(_WINDOW_ORDER[row_major]))):
    first = jnp.where(x6[:, a, :, b] == y, jnp.int8(code), first)
  return y, first


def _pool_windows_bwd(row_major, first, g):
  # Each element of x6 gets its window's gradient where it is that window's
  # first maximum: one broadcast compare over x6's shape.
  codes = np.zeros((1, 2, 1, 2) + (1,) * (g.ndim - 2), np.int8)
  for code, (a, b) in enumerate(_WINDOW_ORDER[row_major]):
    codes[0, a, 0, b] = code
  first6, g6 = jnp.expand_dims(first, (1, 3)), jnp.expand_dims(g, (1, 3))
  return (jnp.where(first6 == codes, g6, jnp.zeros((), g.dtype)),)


_pool_windows.defvjp(_pool_windows_fwd, _pool_windows_bwd)


def max_pool_2x2(x, layout: str = 'NHWC'):
  """2x2 max-pool, stride 2, VALID: nn.max_pool(x, (2, 2), (2, 2))'s values and gradient.

  `x` is NHWC, or [W, H, B, C] with layout='WHBC' (convs.LAYOUTS).

  Written as a reshape and a max over the two window axes instead of
  lax.reduce_window, with its own gradient: like reduce_window's, it sends
  each window's gradient to the window's first maximum (also where maxima
  tie, as in regions of constant input), as one element-wise loop. (One
  difference: a window holding a NaN has no element equal to its max, so its
  gradient is dropped where reduce_window's picks an element.)
  Why: on CPU, XLA lowers reduce_window's gradient to a select-and-scatter
  that measured ~10x slower than this form's (benchmarks/maxpool_backward.py)
  and was the largest single phase of the seed step at k=3; and jax's own
  gradient of a max (which splits ties and divides by their count) measured
  slower in whole steps (docs/methods.md; docs/journal/).
  """
  with jax.named_scope('max_pool'):  # keeps the HLO op names attributable
    if layout == 'WHBC':
      W, H, B, C = x.shape
      x = x[:W // 2 * 2, :H // 2 * 2]  # VALID: drop an odd last column/row
      return _pool_windows(x.reshape(W // 2, 2, H // 2, 2, B, C), False)
    if layout != 'NHWC':
      raise ValueError(f'layout {layout!r}; known: {convs.LAYOUTS}')
    B, H, W, C = x.shape
    x = x[:, :H // 2 * 2, :W // 2 * 2, :]  # VALID: drop an odd last row/column
    y = _pool_windows(x.reshape(B * (H // 2), 2, W // 2, 2, C), True)
    return y.reshape(B, H // 2, W // 2, C)


class AlgoConv(nn.Module):
  """`nn.Conv` (stride 1, no dilation) computed by one of `convs.ALGOS`.

  The same parameters (`kernel` k x k x C x O with nn.Conv's lecun-normal
  init, `bias` zeros) and the same function as nn.Conv; only how XLA is asked
  to compute it differs. Activations come and go in the algorithm's own
  layout, `convs.LAYOUT[algo]` (channels last in every layout).
  """
  features: int
  kernel_size: int
  padding: str
  algo: str
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
    y = convs.conv_native(self.algo, x.astype(self.dtype), kernel.astype(self.dtype),
                          self.padding)
    return y + bias.astype(self.dtype)


class ConvNet(nn.Module):
  """Conv blocks (conv -> ReLU -> 2x2 max-pool) then a dense classifier.

  Layer names are fixed (`conv1`, `conv2`, ..., `dense1`, `dense2`) so that
  optimized-HLO op names map back to layers. `conv_algos` names each conv
  layer's algorithm (`convs.ALGOS`); None runs flax's nn.Conv everywhere.
  Between conv blocks the activations stay in the layout of the algorithm
  that made them (`convs.LAYOUT`: dft and gemm work in [W, H, B, C]), so
  neighbouring layers of the same layout need no transpose; they return to
  NHWC before the dense classifier, whose parameters are nn.Dense's on
  NHWC's flattening. `block` (shapes.BLOCKS) replaces every conv layer after the
  first by a design with the same receptive field; its convs are named
  `layer_ops` names (conv2a, conv2b, ... / conv2dw, conv2pw / conv2v, conv2h).
  """
  features: Sequence[int] = (32, 64)
  kernel_size: int = 3
  padding: str = 'SAME'
  hidden: int = 128
  num_classes: int = 10
  dtype: jnp.dtype = jnp.float32
  conv_algos: tuple[str, ...] | None = None
  block: str = 'plain'

  @nn.compact
  def __call__(self, x_BxHxWxC):
    x = x_BxHxWxC.astype(self.dtype)
    k = self.kernel_size
    layout = 'NHWC'
    for i, f in enumerate(self.features):
      algo = self.conv_algos[i] if self.conv_algos else 'xla'
      x = convs.to_layout(x, layout, convs.layout(algo))
      layout = convs.layout(algo)
      if algo == 'xla':
        ops = shapes.layer_ops(f'conv{i + 1}', x.shape[1], x.shape[-1], f, k, self.padding,
                        'plain' if i == 0 else self.block, first=i == 0)
        x = apply_ops(x, ops, self.padding, self.dtype)
      else:
        x = AlgoConv(f, k, self.padding, algo, self.dtype, name=f'conv{i + 1}')(x)
      x = nn.relu(x)
      x = max_pool_2x2(x, layout)
    x = convs.to_layout(x, layout, 'NHWC')
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(self.hidden, dtype=self.dtype, name='dense1')(x)
    x = nn.relu(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype, name='dense2')(x)
    return x.astype(jnp.float32)


MODELS = {name: functools.partial(ConvNet, features=spec['features'], block=spec['block'])
          for name, spec in shapes.MODEL_SPECS.items()}


def apply_ops(x, ops: Sequence[shapes.ConvOp], padding: str, dtype):
  """Runs layer_ops' convolutions with nn.Conv (inside a compact module)."""
  for op in ops:
    x = nn.Conv(op.c_out, op.kernel, padding=padding, kernel_dilation=(op.dilation,) * 2,
                feature_group_count=op.groups, dtype=dtype, name=op.name)(x)
    if op.relu_after:
      x = nn.relu(x)
  return x


def layer_algos(module: ConvNet) -> dict[str, str]:
  """{'conv1': algorithm, ...} of a built module (what a record stores)."""
  algos = module.conv_algos or tuple('xla' for _ in module.features)
  return {f'conv{i + 1}': a for i, a in enumerate(algos)}


def choose_algos(layers: Sequence[shapes.ConvLayer], kernel_size: int, dtype: str, conv_algo: str,
               platform: str) -> tuple[str, ...]:
  """Each conv layer's algorithm for the config field `conv_algo` (xla | auto)."""
  if conv_algo not in convs.CONV_ALGOS:
    raise ValueError(f'conv_algo: {conv_algo!r}; expected one of {list(convs.CONV_ALGOS)}')
  if conv_algo == 'xla':
    return tuple('xla' for _ in layers)
  return tuple(convs.choose(platform, layer.c_in, kernel_size, dtype) for layer in layers)


def build(model: str, kernel_size: int, padding: str, dtype: str,
          input_hw: int = 28, channels: int = 1, conv_algo: str = 'xla',
          platform: str | None = None) -> ConvNet:
  """Returns the Flax module for one point after checking that it fits.

  `conv_algo='auto'` picks each conv layer's algorithm for `platform` ('cpu',
  'gpu', 'tpu'; None: jax's default backend).
  """
  if model not in MODELS:
    raise ValueError(f'model: unknown model {model!r}; known: {sorted(MODELS)}')
  module = MODELS[model](kernel_size=kernel_size, padding=padding, dtype=DTYPES[dtype])
  shapes.check_block(module.block, kernel_size)
  shapes.check_algo(model, conv_algo)
  layers = shapes.conv_layers(module.features, kernel_size, padding, input_hw, channels)
  algos = choose_algos(layers, kernel_size, dtype, conv_algo,
                     platform or jax.default_backend())
  if shapes.substituted(algos):
    module = module.clone(conv_algos=algos)
  return module
