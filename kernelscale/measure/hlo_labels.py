"""Each optimized-HLO instruction -> "layer/phase", and which implementation ran each conv.

`op_labels(module)` maps every instruction of a parsed module (hlo.parse; the
names a profiler trace reports as `hlo_op`) to a label; `conv_impl(module,
labels, platform)` says which implementation runs each convolution.

Labels (the keys of a record's `phase_s`):
  conv<N>/forward, conv<N>/backward_input, conv<N>/backward_filter
      the convolutions; the first conv has no backward_input, its input is
      the data. A layer's bias belongs to it: bias add -> forward, bias
      gradient -> backward_filter (dL/dparams).
  conv<N>/backward                  the whole backward of a conv layer run by
      convs._dft_whbc (conv_algo=auto), whose input and filter gradients
      share their stages; its forward is conv<N>/forward.
  dense/forward, dense/backward     the matmuls and their bias work.
  pooling/forward, pooling/backward max-pool and its gradient (on CPU XLA
      rewrites select-and-scatter into an argmax reduce-window + scatter).
  activation/forward, activation/backward   ReLU and its mask.
  loss/all                          softmax cross-entropy, forward and back.
  optimizer/update                  Adam (ops whose source is optax/flax.training).
  other/all                         anything else with metadata (accuracy, step).
  mixed/<a>+<b>                     a fusion holding two matrix ops of
      different labels (e.g. two convs fused); never split by guesswork.

How a fusion is labelled: every instruction inside it (recursively through
called computations) gives evidence from its opcode and its `op_name`
metadata (`jit(train_step)/transpose(jvp(ConvNet))/conv2/...`; `transpose(`
marks the backward pass). The strongest evidence wins, in this order:
convolution > dot > pooling > activation > loss > optimizer > layer bias >
other. So a conv fusion with a bias+ReLU epilogue is the conv's, and a
bias-add+ReLU fusion is activation. Two different convs/dots in one fusion
give `mixed/...`.

Instructions with no metadata (layout copies, iotas, broadcasts of zeros)
inherit the label of the ops they feed when those agree, else of the ops
that feed them, else `other/all`: a transpose that only prepares a conv's
operand is part of that conv's cost on this backend.
"""
from __future__ import annotations

import re

from kernelscale import records
from kernelscale.measure import collectives
from kernelscale.measure.hlo import Instr, Module, parse

_DIM_LABELS = re.compile(r'dim_labels=([\w]+_[\w]+->[\w]+)')
_LAYER = re.compile(r'/(conv\d+[a-z]*|dense\d+)/')  # conv2a, conv2dw: shapes.conv_ops
_PARAM_KERNEL = re.compile(r"\[\\?'(conv\d+[a-z]*)\\?'\]\[\\?'kernel\\?'\]")
_MATRIX_TARGETS = ('__cublas$gemm', '__cublas$lt$matmul')


def conv_kernels(module: Module) -> dict[str, tuple[int, ...]]:
  """Conv layer -> kernel dims, from the entry parameters' metadata (state.params['convN']['kernel'])."""
  out = {}
  for ins in module.computations.get(module.entry, []):
    if ins.opcode == 'parameter':
      m = _PARAM_KERNEL.search(ins.op_name) or re.search(r'params__(conv\d+[a-z]*)____kernel', ins.name)
      if m:
        out[m.group(1)] = ins.dims
  return dict(sorted(out.items()))


def _inner(module: Module, ins: Instr, seen=None) -> list[Instr]:
  """The instruction and everything in the computations it calls, recursively."""
  seen = set() if seen is None else seen
  out = [ins]
  for c in ins.calls:
    if c in seen or c not in module.computations:
      continue
    seen.add(c)
    for sub in module.computations[c]:
      out += _inner(module, sub, seen)
  return out


def _is_conv(ins: Instr) -> bool:
  return ins.opcode == 'convolution' or (
      ins.opcode == 'custom-call' and ins.custom_call_target.startswith('__cudnn$conv'))


def _is_dot(ins: Instr) -> bool:
  return ins.opcode == 'dot' or (
      ins.opcode == 'custom-call' and ins.custom_call_target in _MATRIX_TARGETS)


def _operand_dims(module: Module, ins: Instr) -> list[tuple[int, ...]]:
  return [module.instrs[o].dims for o in ins.operands if o in module.instrs]


def _group_count(ins: Instr) -> int:
  """The larger of a convolution's feature_group_count and batch_group_count (1: none)."""
  return max([int(g) for g in re.findall(r'(?:feature|batch)_group_count=(\d+)', ins.attrs)]
             or [1])


def _grouped_layers(module: Module) -> set[str]:
  """Conv layers (op_name scope) with a grouped convolution: depthwise ones."""
  out = set()
  for ins in module.instrs.values():
    if _is_conv(ins) and _group_count(ins) > 1:
      m = _LAYER.search(ins.op_name)
      if m:
        out.add(m.group(1))
  return out


def _conv_label(module: Module, ins: Instr, kernels: dict[str, tuple[int, ...]]) -> str:
  """convN/<phase> of one convolution, from its shapes, the cuDNN target and op_name."""
  backward = 'transpose(' in ins.op_name
  m = _LAYER.search(ins.op_name)
  named = m.group(1) if m and m.group(1).startswith('conv') else None
  target = ins.custom_call_target
  cands = [named] if named in kernels else list(kernels)
  out = ins.dims
  phase = layer = None
  if 'BackwardFilter' in target:
    phase = 'backward_filter'
  elif 'BackwardInput' in target:
    phase = 'backward_input'
  elif 'Forward' in target:
    phase = 'forward'
  # A filter gradient has the kernel's shape (in some layout). A depthwise
  # kernel [k, k, 1, C]'s gradient may be computed densely, as [k, k, C, C]
  # (XLA:CPU does: C times the depthwise conv's work).
  # Where two layers' kernels have one shape (conv1 and a depthwise conv2dw,
  # both [k, k, 1, 32]), an exact-shape gradient goes to the plain layer.
  grouped_layers = _grouped_layers(module)
  exact = sorted((l for l in cands if sorted(out) == sorted(kernels[l])),
                 key=lambda l: l in grouped_layers)
  dense = [l for l in cands if l in grouped_layers and kernels[l][-2] == 1
           and sorted(out) == sorted(kernels[l][:-2] + (kernels[l][-1],) * 2)]
  if phase in (None, 'backward_filter') and (exact or dense):
    layer, phase = (exact or dense)[0], 'backward_filter'
  grouped = _group_count(ins) > 1
  if layer is None and grouped and named in kernels:
    # A grouped (depthwise) conv: forward and input gradient both have c_out
    # output features, so only the op name tells them apart.
    layer = named
  elif layer is None:
    # Forward and backward-input both read the kernel; the output's feature
    # count tells them apart (c_out forward, c_in backward).
    ops = _operand_dims(module, ins)
    dl = _DIM_LABELS.search(ins.attrs)
    out_f = None
    if dl and out:
      f = dl.group(1).split('->')[1].find('f')
      out_f = out[f] if 0 <= f < len(out) else None
    for l in cands:
      kd = kernels[l]
      if any(sorted(d) == sorted(kd) for d in ops[1:2] or ops):
        layer = l
        if phase is None:
          c_in, c_out = kd[-2], kd[-1]
          if out_f == c_out and c_out != c_in:
            phase = 'forward'
          elif out_f == c_in and c_out != c_in:
            phase = 'backward_input'
        break
  layer = layer or named or 'conv?'
  if phase is None:
    phase = 'backward_input' if backward else 'forward'
  return f'{layer}/{phase}'


# Evidence strength: lower wins.
# Opcodes that, inside a conv layer's scope, do the layer's main work when the
# layer runs a non-`xla` algorithm of kernelscale.convs (dft's matmuls, taps'
# multiply-adds).
_ALGO_OPS = ('dot', 'multiply')
_RANK = {'conv': 0, 'dense': 1, 'pooling': 2, 'activation': 3, 'loss': 4,
         'optimizer': 5, 'bias': 6, 'other': 7}
_POOL_NAMES = ('reduce_window_max', 'select_and_scatter', 'max_pool', 'reduce_window')
_POOL_OPS = ('reduce-window', 'select-and-scatter', 'scatter')
_OPTIMIZER_FILES = ('/optax/', '/flax/training/')


def _evidence(module: Module, ins: Instr, kernels) -> tuple[int, str] | None:
  """(rank, label) that one instruction gives on its own, or None."""
  if _is_conv(ins):
    return _RANK['conv'], _conv_label(module, ins, kernels)
  s = ins.op_name
  if not s:
    return None
  back = 'transpose(' in s
  layer = _LAYER.search(s)
  if _is_dot(ins) and layer and layer.group(1).startswith('dense'):
    return _RANK['dense'], 'dense/backward' if back else 'dense/forward'
  model = 'ConvNet' in s or layer is not None
  if model and not layer and (ins.opcode in _POOL_OPS or any(p in s for p in _POOL_NAMES)):
    return _RANK['pooling'], 'pooling/backward' if back else 'pooling/forward'
  if model and not layer and ('relu' in s or s.endswith('/select_n') or s.endswith('/max')):
    return _RANK['activation'], 'activation/backward' if back else 'activation/forward'
  if layer:
    name = layer.group(1)
    if name.startswith('dense'):
      return _RANK['bias'], 'dense/backward' if back else 'dense/forward'
    if ins.opcode in _ALGO_OPS:
      # A conv layer computed without a convolution op (convs._dft_whbc's
      # matmuls, convs.taps_conv's multiply-adds, or a 1x1 conv such as the
      # separable design's conv2pw, whose gradients XLA rewrites as dots). dft's
      # backward computes the input and filter gradients from shared stages, and a
      # dot does not say which gradient it is: one phase, `<conv>/backward`.
      return _RANK['conv'], f'{name}/backward' if back else f'{name}/forward'
    last = s.rsplit('/', 1)[-1]
    if back and last == 'reduce_sum':
      return _RANK['bias'], f'{name}/backward_filter'
    if not back and last == 'add':
      return _RANK['bias'], f'{name}/forward'
    return None  # kernel flips, layout copies around a conv: inherit from neighbours
  if model:
    return None  # reshapes, comparisons inside pooling regions, ...
  if 'jvp(' in s or 'softmax' in s or 'take_along_axis' in s:
    return _RANK['loss'], 'loss/all'
  src = module.frame_files.get(ins.stack_frame_id, '')
  if any(f in src for f in _OPTIMIZER_FILES):
    return _RANK['optimizer'], 'optimizer/update'
  return _RANK['other'], 'other/all'


def _own_label(module: Module, ins: Instr, kernels) -> str | None:
  """Label from the instruction and what it calls; None when nothing says."""
  kind = collectives.kind(ins.opcode)
  if kind is not None:  # a data-parallel step's gradient exchange (kernelscale/net/train.py)
    return f'comm/{kind}'
  ev = []
  inner = _inner(module, ins)
  for sub in inner:
    if sub is ins and ins.calls and ins.opcode == 'fusion':
      continue  # a fusion's own metadata repeats one inner op's
    e = _evidence(module, sub, kernels)
    if e is not None:
      ev.append(e)
  names = [s.op_name for s in inner if s.op_name]
  if (any(s.opcode in _POOL_OPS for s in inner) and any('ConvNet' in n for n in names)
      and not any(_LAYER.search(n) for n in names)):
    # e.g. the argmax reduce-window of a pooling gradient: only its region's
    # comparison carries metadata (ConvNet scope, no layer).
    back = any('transpose(' in n for n in names)
    ev.append((_RANK['pooling'], 'pooling/backward' if back else 'pooling/forward'))
  if not ev:
    return None
  best = min(r for r, _ in ev)
  top = sorted({l for r, l in ev if r == best})
  if len(top) == 1:
    return top[0]
  if best <= _RANK['dense']:
    return 'mixed/' + '+'.join(t.replace('/', '.') for t in top)
  # Same class, both directions (e.g. a ReLU mask recomputed in the backward
  # fusion): the backward op is what the fusion exists for.
  back = [t for t in top if 'backward' in t]
  return back[0] if len(back) == 1 else 'mixed/' + '+'.join(t.replace('/', '.') for t in top)


def op_labels(module: Module, kernels: dict[str, tuple[int, ...]] | None = None) -> dict[str, str]:
  """Every instruction outside fused computations -> "layer/phase".

  Args:
    module: from `parse`.
    kernels: conv layer -> kernel dims; default from the entry parameters.

  Returns:
    {instruction name: label}; see the module docstring for the labels.
  """
  kernels = conv_kernels(module) if kernels is None else kernels
  called = {c for ins in module.instrs.values() for c in ins.calls}
  # Programs run the entry and the non-fused computations it calls (while
  # bodies, ...); fused computations' instructions never appear in traces.
  top = [ins for comp, lst in module.computations.items()
         if comp == module.entry or comp not in called for ins in lst]
  top += [ins for comp, lst in module.computations.items() if comp != module.entry and comp in called
          and any(i.opcode in ('while', 'conditional', 'call') and comp in i.calls
                  for i in module.instrs.values()) for ins in lst]
  # Parameters and constants run no code; they neither get nor give labels.
  labels = {ins.name: _own_label(module, ins, kernels) for ins in top
            if ins.opcode not in ('parameter', 'constant')}
  users = module.users()
  for _ in range(len(labels)):
    changed = False
    for name, lab in labels.items():
      if lab is not None:
        continue
      ins = module.instrs[name]
      for group in ([u for u in users.get(name, []) if u in labels], [o for o in ins.operands if o in labels]):
        got = {labels[g] for g in group if labels[g] is not None}
        if len(got) == 1:
          labels[name] = got.pop()
          changed = True
          break
    if not changed:
      break
  return {k: (v or 'other/all') for k, v in labels.items()}


def _impl(module: Module, ins: Instr, conv: Instr, platform: str) -> str:
  """Implementation of one convolution `conv`, found at top-level instruction `ins`."""
  cfg = ins.attrs
  if '__ynn_fusion' in cfg:
    return 'YNNPACK fusion'
  if '__xnn_fusion' in cfg:
    return 'XNNPACK fusion'
  target = conv.custom_call_target
  if target.startswith('__cudnn$'):
    algo = re.search(r'"algo_id":"?(\d+)', conv.attrs)
    return f'cuDNN {target}' + (f' algo {algo.group(1)}' if algo else '')
  if '__cudnn$fusion' in cfg:
    return 'cuDNN fusion'
  if ins.opcode == 'fusion':
    kind = re.search(r'kind=(k\w+)', cfg)
    return f'XLA convolution fusion ({kind.group(1) if kind else "?"})'
  if platform == 'cpu' and ins.opcode == 'convolution':
    why = _not_eigen(conv)
    return f'{records.UNOPTIMIZED_CPU_CONV} ({why})' if why else 'Eigen (XLA CPU convolution)'
  return f'XLA {ins.opcode}'


def _not_eigen(conv: Instr) -> str | None:
  """Why XLA:CPU will not hand this convolution to Eigen (None: it will, as far as HLO shows).

  XLA:CPU's test (PotentiallyImplementedAsEigenConvolution) wants f16 or f32,
  1 to 3 spatial dimensions, no window reversal, the input and output as
  [batch, spatial..., feature] and the kernel as [spatial..., in, out],
  spatial dimensions in order; anything else is emitted as XLA's own
  unoptimized convolution loop. (Its buffer-alignment condition does not show
  in the HLO text.)
  """
  why = []
  dtype = conv.shape.split('[', 1)[0].strip().lstrip('(')
  if dtype and dtype not in ('f16', 'f32'):
    why.append(f'element type {dtype}')
  window = re.search(r'window=\{([^}]*)\}', conv.attrs)
  if window and re.search(r'rhs_reversal=[\dx]*1', window.group(1)):
    why.append('kernel reversed in the window')
  m = re.search(r'dim_labels=(\w+)_(\w+)->(\w+)', conv.attrs)
  if m:
    lhs, rhs, out = m.groups()
    n = len(lhs) - 2
    spatial = ''.join(str(i) for i in range(n))
    if not 1 <= n <= 3:
      why.append(f'{n} spatial dimensions')
    elif (lhs, rhs, out) != (f'b{spatial}f', f'{spatial}io', f'b{spatial}f'):
      why.append(f'dimensions {lhs}_{rhs}->{out}, not b{spatial}f_{spatial}io->b{spatial}f')
  return '; '.join(why) or None


def conv_impl_of(text: str, platform: str) -> dict[str, str]:
  """conv_impl of an optimized-HLO text (compiled.as_text()), labels included."""
  module = parse(text)
  return conv_impl(module, op_labels(module), platform)


def conv_impl(module: Module, labels: dict[str, str], platform: str) -> dict[str, str]:
  """"convN/phase" -> implementation string for every convolution in the program.

  CPU: "YNNPACK fusion", "XNNPACK fusion", "Eigen (XLA CPU convolution)" or
  "XLA CPU unoptimized loop (why)" where XLA:CPU will not call Eigen;
  GPU: "cuDNN __cudnn$conv... algo N" (algorithm where the HLO shows one);
  TPU: "XLA convolution fusion (kOutput)" and the like.
  """
  out: dict[str, set[str]] = {}
  for name, lab in labels.items():
    ins = module.instrs[name]
    convs = [s for s in _inner(module, ins) if _is_conv(s)]
    for c in convs:
      out.setdefault(lab, set()).add(_impl(module, ins, c, platform))
  return {k: ' + '.join(sorted(v)) for k, v in sorted(out.items())}
