"""The seed CNN family and the shape checks that run before anything compiles.

The seed network is Conv(32,k) -> ReLU -> MaxPool2 -> Conv(64,k) -> ReLU ->
MaxPool2 -> Flatten -> Dense(128) -> ReLU -> Dense(10). Variants are named
entries of `MODELS`; each is the same `ConvNet` with other fields.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kernelscale import convs

PADDINGS = ('SAME', 'VALID')
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}


class ShapeError(ValueError):
  """A kernel that does not fit the input: raised before any compile."""


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
  slower in whole steps (WORKSPACE.md, session 5).
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
  NHWC's flattening.
  """
  features: Sequence[int] = (32, 64)
  kernel_size: int = 3
  padding: str = 'SAME'
  hidden: int = 128
  num_classes: int = 10
  dtype: jnp.dtype = jnp.float32
  conv_algos: tuple[str, ...] | None = None

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
        x = nn.Conv(f, (k, k), strides=(1, 1), padding=self.padding,
                    dtype=self.dtype, name=f'conv{i + 1}')(x)
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


MODELS = {
    'seed': functools.partial(ConvNet, features=(32, 64)),
}


@dataclasses.dataclass(frozen=True)
class ConvLayer:
  """Static shape of one conv layer of the network for one input size."""
  name: str
  in_hw: int
  c_in: int
  c_out: int
  out_hw: int
  pooled_hw: int


def _walk(features, kernel_size, padding, input_hw, channels):
  """(layers, None) when every layer fits, else (layers so far, failing layer info)."""
  layers = []
  hw, c = input_hw, channels
  for i, f in enumerate(features):
    name = f'conv{i + 1}'
    out = hw if padding == 'SAME' else hw - kernel_size + 1
    if out // 2 < 1:  # the 2x2 pool after the conv needs at least 2x2
      return layers, (name, hw, max(out, 0))
    layers.append(ConvLayer(name, hw, c, f, out, out // 2))
    hw, c = out // 2, f
  return layers, None


def largest_kernel(features: Sequence[int], padding: str, input_hw: int,
                   channels: int = 1, limit: int = 512) -> int | None:
  """Largest k for which every layer of the network has a non-empty output."""
  best = None
  for k in range(1, limit + 1):
    if _walk(features, k, padding, input_hw, channels)[1] is None:
      best = k
    elif padding == 'VALID':
      break  # VALID outputs only shrink as k grows
  return best


def conv_layers(features: Sequence[int], kernel_size: int, padding: str,
                input_hw: int, channels: int) -> list[ConvLayer]:
  """Walks the conv blocks, checking each layer's output is non-empty.

  Raises:
    ShapeError: naming the layer, the input size it got and the largest
      kernel that fits the network, when a layer's output (after its 2x2
      pool) would be empty.
  """
  layers, bad = _walk(features, kernel_size, padding, input_hw, channels)
  if bad is not None:
    name, hw, out = bad
    largest = largest_kernel(features, padding, input_hw, channels)
    fits = (f'the largest kernel that fits this network with {padding} padding on '
            f'{input_hw}x{input_hw} input is {largest}' if largest else 'no kernel fits')
    raise ShapeError(
        f'kernel_size={kernel_size} does not fit layer {name}: its input is {hw}x{hw}, '
        f'{padding} padding leaves {out}x{out}, and the 2x2 max-pool after it needs at '
        f'least 2x2; {fits}')
  return layers


def layer_algos(module: ConvNet) -> dict[str, str]:
  """{'conv1': algorithm, ...} of a built module (what a record stores)."""
  algos = module.conv_algos or tuple('xla' for _ in module.features)
  return {f'conv{i + 1}': a for i, a in enumerate(algos)}


def choose_algos(layers: Sequence[ConvLayer], kernel_size: int, dtype: str, conv_algo: str,
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
  layers = conv_layers(module.features, kernel_size, padding, input_hw, channels)
  algos = choose_algos(layers, kernel_size, dtype, conv_algo,
                     platform or jax.default_backend())
  if convs.substituted(algos):
    module = module.clone(conv_algos=algos)
  return module
