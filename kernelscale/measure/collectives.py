"""The collectives in an optimized HLO module: which, how many, how many bytes per step.

A data-parallel step (kernelscale/net/train.py's mesh) all-reduces its gradients:
XLA inserts the all-reduce (on GPU/TPU often as all-reduce-start/-done, or as a
reduce-scatter + all-gather pair). Their result bytes are what each device
exchanges per step, to be compared with grad_bytes = params x dtype size.
Jax-free: it reads text only.
"""
from __future__ import annotations

import re

from kernelscale.measure import hlo

# Opcodes counted; an async pair is counted once, at its -start.
COLLECTIVES = ('all-reduce', 'reduce-scatter', 'all-gather', 'all-to-all', 'collective-permute')
_ARRAY = re.compile(r'\b(pred|s8|u8|s16|u16|f16|bf16|s32|u32|f32|s64|u64|f64|c64|c128)'
                    r'\[([\d,]*)\]')
DTYPE_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 's16': 2, 'u16': 2, 'f16': 2, 'bf16': 2, 's32': 4,
               'u32': 4, 'f32': 4, 's64': 8, 'u64': 8, 'f64': 8, 'c64': 8, 'c128': 16}


def kind(opcode: str) -> str | None:
  """The collective an opcode starts or is ('all-reduce' for all-reduce-start); else None.

  A -done op is the same collective's wait: it is given the same kind.
  """
  base = opcode[:-6] if opcode.endswith('-start') else opcode[:-5] if opcode.endswith('-done') else opcode
  return base if base in COLLECTIVES else None


def shape_bytes(shape: str) -> int:
  """Bytes of an HLO shape, summed over a tuple's arrays (layouts ignored)."""
  total = 0
  for dt, dims in _ARRAY.findall(shape):
    n = 1
    for d in dims.split(','):
      if d:
        n *= int(d)
    total += n * DTYPE_BYTES[dt]
  return total


def _result_shape(ins: hlo.Instr, k: str) -> str:
  """The part of the shape that is the collective's result."""
  if ins.opcode.endswith('-start') and ins.shape.startswith('(') and k != 'all-reduce':
    # all-gather-start etc. return (operands, results[, context]): the result is the 2nd element.
    parts = hlo._split_top(ins.shape[1:-1])  # pylint: disable=protected-access
    return parts[1] if len(parts) > 1 else ins.shape
  return ins.shape


def collectives(text: str) -> dict:
  """Collective ops of an optimized HLO module and their bytes per step.

  Args:
    text: `compiled.as_text()`.

  Returns:
    {'collective_ops': {opcode: count} (empty: none), 'collective_bytes': result bytes
    summed over them (0 when there are none: a one-device step exchanges nothing)}.
  """
  module = hlo.parse(text)
  ops: dict[str, int] = {}
  total = 0
  for ins in module.instrs.values():
    k = kind(ins.opcode)
    if k is None or ins.opcode.endswith('-done'):
      continue
    ops[k] = ops.get(k, 0) + 1
    total += shape_bytes(_result_shape(ins, k))
  return {'collective_ops': dict(sorted(ops.items())), 'collective_bytes': total}
