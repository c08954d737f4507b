"""The seed CNN family and the shape checks that run before anything compiles.

The seed network is Conv(32,k) -> ReLU -> MaxPool2 -> Conv(64,k) -> ReLU ->
MaxPool2 -> Flatten -> Dense(128) -> ReLU -> Dense(10). Variants are named
entries of `MODELS`; each is the same `ConvNet` with other fields.

Same receptive field, other designs (`ConvNet.block`, `BLOCKS`): every conv
layer after the first (the stem, which reads the image's 1-3 channels, stays
k x k in every design, as MobileNet's and ResNet's stems do) is replaced by a
block that sees the same k x k window of its input and gives the same output
shape, mostly with fewer multiply-adds (flops.layer_flops counts them):
  plain      one k x k conv (the seed network)
  stacked    (k-1)/2 3x3 convs, ReLU between them (VGG); odd k from 3 to 53
  separable  a depthwise k x k conv, then a 1x1 conv, nothing between (Xception;
             MobileNet puts a normalisation and a ReLU there)
  spatial    a k x 1 conv, then a 1 x k conv (Inception v3)
  dilated    one 3x3 conv with dilation (k-1)/2: the same span, 9 taps
             (DeepLab's atrous conv); odd k >= 3. It samples the window
             sparsely: same extent, not the same dense field.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kernelscale.net import convs


PADDINGS = ('SAME', 'VALID')
BLOCKS = ('plain', 'stacked', 'separable', 'spatial', 'dilated')
ODD_BLOCKS = ('stacked', 'dilated')  # need an odd k >= 3
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
  NHWC's flattening. `block` (BLOCKS) replaces every conv layer after the
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
        ops = layer_ops(f'conv{i + 1}', x.shape[1], x.shape[-1], f, k, self.padding,
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


MODELS = {
    'seed': functools.partial(ConvNet, features=(32, 64)),
    # The seed network with each conv layer after the first replaced by a
    # design of the same receptive field (experiments/receptive_field.py).
    **{f'seed_{b}': functools.partial(ConvNet, features=(32, 64), block=b)
       for b in BLOCKS if b != 'plain'},
}


def block_of(model: str) -> str:
  """The block design of a MODELS entry ('plain' for the seed network)."""
  return MODELS[model].keywords.get('block', 'plain')


@dataclasses.dataclass(frozen=True)
class ConvOp:
  """One convolution of the network: what ConvNet builds and flops.layer_flops counts."""
  name: str          # flax module name: conv1, conv2a, conv2dw, ...
  in_h: int
  in_w: int
  out_h: int
  out_w: int
  c_in: int
  c_out: int
  kernel: tuple[int, int]   # (kh, kw)
  dilation: int = 1
  groups: int = 1           # feature groups: c_in for a depthwise conv
  first: bool = False       # reads the data: no backward_input
  relu_after: bool = False  # a ReLU inside the block follows it


def same_as_plain(block: str, kernel_size: int) -> bool:
  """True where the design is one k x k conv itself (stacked and dilated at k=3)."""
  return block == 'plain' or (block in ODD_BLOCKS and kernel_size == 3)


def layer_ops(name: str, hw: int, c: int, f: int, kernel_size: int, padding: str,
              block: str = 'plain', first: bool = False) -> list[ConvOp]:
  """The convolutions of one conv layer (input hw x hw x c, f outputs) in a design of BLOCKS."""
  k = kernel_size
  check_block(block, k)
  side = lambda n, span: n if padding == 'SAME' else n - span + 1  # noqa: E731
  out = side(hw, k)
  if block == 'plain':
    return [ConvOp(name, hw, hw, out, out, c, f, (k, k), first=first)]
  if block == 'stacked':
    n = (k - 1) // 2
    return [ConvOp(f'{name}{chr(ord("a") + j)}', side(hw, 2 * j + 1), side(hw, 2 * j + 1),
                   side(hw, 2 * j + 3), side(hw, 2 * j + 3), c if j == 0 else f, f, (3, 3),
                   relu_after=j < n - 1) for j in range(n)]
  if block == 'separable':
    return [ConvOp(f'{name}dw', hw, hw, out, out, c, c, (k, k), groups=c),
            ConvOp(f'{name}pw', out, out, out, out, c, f, (1, 1))]
  if block == 'spatial':
    return [ConvOp(f'{name}v', hw, hw, out, hw, c, f, (k, 1)),
            ConvOp(f'{name}h', out, hw, out, out, f, f, (1, k))]
  return [ConvOp(name, hw, hw, out, out, c, f, (3, 3), dilation=(k - 1) // 2)]  # dilated


def apply_ops(x, ops: Sequence[ConvOp], padding: str, dtype):
  """Runs layer_ops' convolutions with nn.Conv (inside a compact module)."""
  for op in ops:
    x = nn.Conv(op.c_out, op.kernel, padding=padding, kernel_dilation=(op.dilation,) * 2,
                feature_group_count=op.groups, dtype=dtype, name=op.name)(x)
    if op.relu_after:
      x = nn.relu(x)
  return x


def conv_ops(features: Sequence[int], kernel_size: int, padding: str, input_hw: int,
             channels: int, block: str = 'plain') -> list[ConvOp]:
  """Every convolution of the network, in order (the first layer stays k x k)."""
  check_block(block, kernel_size)
  return [op for i, l in enumerate(conv_layers(features, kernel_size, padding, input_hw,
                                               channels))
          for op in layer_ops(l.name, l.in_hw, l.c_in, l.c_out, kernel_size, padding,
                              'plain' if i == 0 else block, first=i == 0)]


def check_algo(model: str, conv_algo: str) -> None:
  """Raises ValueError (naming conv_algo) when conv_algo is not xla for a design of BLOCKS."""
  block = block_of(model)
  if block != 'plain' and conv_algo != 'xla':
    raise ValueError(f'conv_algo: {conv_algo!r} applies to plain k x k convs only; model '
                     f'{model!r} uses the {block} block (use conv_algo=xla)')


def check_block(block: str, kernel_size: int) -> None:
  """Raises ValueError (ShapeError for a kernel size) when the block cannot give k x k."""
  if block not in BLOCKS:
    raise ValueError(f'block: unknown block {block!r}; known: {BLOCKS}')
  if block in ODD_BLOCKS and (kernel_size < 3 or kernel_size % 2 == 0):
    raise ShapeError(f'kernel_size={kernel_size}: the {block} block builds a k x k receptive '
                     f'field from 3x3 convs, so k must be odd and >= 3')
  if block == 'stacked' and kernel_size > 53:
    raise ShapeError(f'kernel_size={kernel_size}: the stacked block names its convs a..z, so '
                     'it stacks at most 26 (k <= 53)')


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
  check_block(module.block, kernel_size)
  check_algo(model, conv_algo)
  layers = conv_layers(module.features, kernel_size, padding, input_hw, channels)
  algos = choose_algos(layers, kernel_size, dtype, conv_algo,
                     platform or jax.default_backend())
  if convs.substituted(algos):
    module = module.clone(conv_algos=algos)
  return module
