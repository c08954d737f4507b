"""Analytic FLOPs of one train step, computed from shapes, per layer and phase.

Convention: 2 FLOPs per multiply-add. Only kernel taps that land on real input
(not on zero padding) are counted, which is also what XLA's cost analysis
does, so the two counts can be compared. Element-wise work (bias, ReLU,
pooling, loss, Adam) is counted at one FLOP per element operation; it is a
small share of the total for the seed network.

Phases: `forward`, `backward_input` (dL/dx), `backward_filter` (dL/dW) and
`optimizer`. The first conv layer has no `backward_input`: its input is the
data, which needs no gradient.
"""
from __future__ import annotations

from typing import Sequence

from kernelscale.net import shapes

# Adam per parameter: m (3), v (4), two bias corrections (2), eps add,
# divide, learning-rate scale, parameter add (4); the sqrt is a transcendental.
ADAM_FLOPS_PER_PARAM = 13


def valid_taps_1d(size: int, kernel: int, padding: str, stride: int = 1,
                  dilation: int = 1) -> int:
  """Sum over output positions of kernel taps that land inside the input."""
  span = (kernel - 1) * dilation + 1
  if padding == 'SAME':
    out = -(-size // stride)
    pad_total = max((out - 1) * stride + span - size, 0)
    pad_lo = pad_total // 2
  else:
    out = (size - span) // stride + 1
    pad_lo = 0
  total = 0
  for o in range(out):
    start = o * stride - pad_lo
    total += sum(1 for t in range(kernel) if 0 <= start + t * dilation < size)
  return total


def layer_flops(features: Sequence[int], kernel_size: int, padding: str,
                batch_size: int, input_hw: int = 28, channels: int = 1,
                hidden: int = 128, num_classes: int = 10,
                block: str = 'plain') -> dict[str, float]:
  """FLOPs of one train step as a flat {"layer/phase": flops} dict.

  Conv and dense entries hold the multiply-adds only; bias, activation and
  pooling work are their own entries so the matrix work can be read alone.
  Each convolution of a block (shapes.conv_ops: conv2a, conv2dw, ...) has its
  own entries; the ReLU and pool after a conv layer are under the layer's name.
  """
  B = batch_size
  out: dict[str, float] = {}
  for op in shapes.conv_ops(features, kernel_size, padding, input_hw, channels, block):
    (kh, kw), d = op.kernel, op.dilation
    taps = (valid_taps_1d(op.in_h, kh, padding, dilation=d) *
            valid_taps_1d(op.in_w, kw, padding, dilation=d))
    mac = 2.0 * B * taps * (op.c_in // op.groups) * op.c_out
    n_out = B * op.out_h * op.out_w * op.c_out
    out[f'{op.name}/forward'] = mac
    if not op.first:
      out[f'{op.name}/backward_input'] = mac
    out[f'{op.name}/backward_filter'] = mac
    out[f'{op.name}/bias'] = 2.0 * n_out  # add forward, reduce backward
    if op.relu_after:
      out[f'{op.name}/activation'] = 3.0 * n_out
  convs = shapes.conv_layers(features, kernel_size, padding, input_hw, channels)
  for layer in convs:
    n_out = B * layer.out_hw ** 2 * layer.c_out
    n_pool = B * layer.pooled_hw ** 2 * layer.c_out
    out[f'{layer.name}/activation'] = 3.0 * n_out  # max forward; compare+select backward
    # Forward: 3 comparisons per 2x2 window. Backward: route each window's
    # gradient to its maximum: 3 comparisons and one add per window.
    out[f'{layer.name}/pooling'] = 3.0 * n_pool + 4.0 * n_pool
  flat = convs[-1].pooled_hw ** 2 * convs[-1].c_out
  for name, (n_in, n_o) in (('dense1', (flat, hidden)), ('dense2', (hidden, num_classes))):
    mac = 2.0 * B * n_in * n_o
    out[f'{name}/forward'] = mac
    out[f'{name}/backward_input'] = mac
    out[f'{name}/backward_filter'] = mac
    out[f'{name}/bias'] = 2.0 * B * n_o
  out['dense1/activation'] = 3.0 * B * hidden
  # Softmax cross-entropy: max, subtract, exp-sum, log, pick (~5/logit) forward
  # and softmax minus one-hot, scaled (~3/logit) backward.
  out['loss/loss'] = 8.0 * B * num_classes
  out['optimizer/update'] = ADAM_FLOPS_PER_PARAM * param_count(
      features, kernel_size, padding, input_hw, channels, hidden, num_classes, block)
  return out


def param_count(features: Sequence[int], kernel_size: int, padding: str,
                input_hw: int = 28, channels: int = 1, hidden: int = 128,
                num_classes: int = 10, block: str = 'plain') -> int:
  """Number of trainable parameters, from shapes alone."""
  ops = shapes.conv_ops(features, kernel_size, padding, input_hw, channels, block)
  n = sum(op.kernel[0] * op.kernel[1] * (op.c_in // op.groups) * op.c_out + op.c_out
          for op in ops)
  convs = shapes.conv_layers(features, kernel_size, padding, input_hw, channels)
  flat = convs[-1].pooled_hw ** 2 * convs[-1].c_out
  return n + flat * hidden + hidden + hidden * num_classes + num_classes


def summarize(per_layer: dict[str, float]) -> dict[str, float]:
  """Totals: whole step, conv multiply-adds, and per phase."""
  conv = sum(v for k, v in per_layer.items()
             if k.startswith('conv') and k.split('/')[1] in
             ('forward', 'backward_input', 'backward_filter'))
  return {'analytic_flops': float(sum(per_layer.values())),
          'analytic_conv_flops': float(conv)}
