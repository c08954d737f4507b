"""The seed CNN family as shapes alone: no jax, so analysis and report can use it.

The seed network is Conv(32,k) -> ReLU -> MaxPool2 -> Conv(64,k) -> ReLU ->
MaxPool2 -> Flatten -> Dense(128) -> ReLU -> Dense(10). Each named model of
`MODEL_SPECS` is that network with other fields; `net.models` builds the flax
module from the same table, and `flops` counts from the ops described here.

Same receptive field, other designs (`BLOCKS`): every conv layer after the
first (the stem, which reads the image's 1-3 channels, stays k x k in every
design, as MobileNet's and ResNet's stems do) is replaced by a block that sees
the same k x k window of its input and gives the same output shape, mostly
with fewer multiply-adds:
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
from typing import Sequence

PADDINGS = ('SAME', 'VALID')
BLOCKS = ('plain', 'stacked', 'separable', 'spatial', 'dilated')
ODD_BLOCKS = ('stacked', 'dilated')  # need an odd k >= 3


# Every named model: its conv widths and its block design (BLOCKS).
MODEL_SPECS = {
    'seed': {'features': (32, 64), 'block': 'plain'},
    # The seed network with each conv layer after the first replaced by a
    # design of the same receptive field (experiments/receptive_field.py).
    **{f'seed_{b}': {'features': (32, 64), 'block': b} for b in BLOCKS if b != 'plain'},
}


class ShapeError(ValueError):
  """A kernel that does not fit the input: raised before any compile."""


def block_of(model: str) -> str:
  """The block design of a MODEL_SPECS entry ('plain' for the seed network)."""
  return MODEL_SPECS[model]['block']


def features_of(model: str | None) -> tuple[int, ...] | None:
  """The conv widths of a named model, or None for a model not defined here."""
  spec = MODEL_SPECS.get(model)
  return spec['features'] if spec is not None else None


def substituted(algos) -> bool:
  """True when any of the given per-layer conv algorithms is not nn.Conv's (`xla`)."""
  return any(a != 'xla' for a in algos)


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
