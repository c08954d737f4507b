"""What XLA actually emitted: parse the optimized HLO of the compiled step.

`parse(compiled.as_text())` reads the module into computations and
instructions (with their op_name metadata and stack frames); hlo_labels maps
them to layers and phases and says which implementation ran each convolution.
"""
from __future__ import annotations

import dataclasses
import re

CONV_PHASES = ('forward', 'backward_input', 'backward_filter')

_CALL_ATTR = re.compile(r'\b(?:calls|to_apply|body|condition)=%?([\w.\-]+)')
_CALL_LIST = re.compile(r'\b(?:branch_computations|called_computations|calls)=\{([^}]*)\}')
_OP_NAME = re.compile(r'op_name="((?:[^"\\]|\\.)*)"')
_FRAME = re.compile(r'stack_frame_id=(\d+)')
_TARGET = re.compile(r'custom_call_target="([^"]*)"')
_DIMS = re.compile(r'\[([\d,]*)\]')


@dataclasses.dataclass
class Instr:
  """One HLO instruction, as much of it as attribution needs."""
  name: str
  opcode: str
  shape: str
  operands: list[str]
  calls: list[str]
  op_name: str
  stack_frame_id: int | None
  attrs: str  # the raw text after the operand list (backend_config, window, ...)
  computation: str

  @property
  def dims(self) -> tuple[int, ...]:
    """Dimensions of the result (of its first element when it is a tuple)."""
    m = _DIMS.search(self.shape)
    return tuple(int(d) for d in m.group(1).split(',') if d) if m else ()

  @property
  def custom_call_target(self) -> str:
    m = _TARGET.search(self.attrs)
    return m.group(1) if m else ''


@dataclasses.dataclass
class Module:
  """A parsed HLO module."""
  name: str
  entry: str
  computations: dict[str, list[Instr]]
  instrs: dict[str, Instr]
  frame_files: dict[int, str]  # stack frame id -> source file of its innermost location

  def users(self) -> dict[str, list[str]]:
    """Instruction name -> names of instructions (same computation) that use it."""
    out: dict[str, list[str]] = {n: [] for n in self.instrs}
    for ins in self.instrs.values():
      for o in ins.operands:
        if o in out:
          out[o].append(ins.name)
    return out


def _match_paren(s: str, i: int) -> int:
  """Index just past the bracket closing the one at s[i]."""
  depth = 0
  pairs = {'(': ')', '{': '}', '[': ']'}
  close = pairs[s[i]]
  opener = s[i]
  in_str = False
  j = i
  while j < len(s):
    c = s[j]
    if in_str:
      if c == '\\':
        j += 1
      elif c == '"':
        in_str = False
    elif c == '"':
      in_str = True
    elif c == opener:
      depth += 1
    elif c == close:
      depth -= 1
      if depth == 0:
        return j + 1
    j += 1
  return len(s)


def _split_top(s: str) -> list[str]:
  """Splits on commas that are not inside brackets."""
  parts, depth, cur = [], 0, []
  for c in s:
    if c in '([{':
      depth += 1
    elif c in ')]}':
      depth -= 1
    if c == ',' and depth == 0:
      parts.append(''.join(cur))
      cur = []
    else:
      cur.append(c)
  if cur:
    parts.append(''.join(cur))
  return [p.strip() for p in parts if p.strip()]


def _parse_instr(line: str, computation: str) -> Instr | None:
  body = line.strip()
  if body.startswith('ROOT '):
    body = body[5:]
  if ' = ' not in body:
    return None
  name, rest = body.split(' = ', 1)
  name = name.strip().lstrip('%')
  if rest.startswith('('):
    end = _match_paren(rest, 0)
    shape, rest = rest[:end], rest[end:].lstrip()
  else:
    shape, _, rest = rest.partition(' ')
  paren = rest.find('(')
  if paren < 0:
    return None
  opcode = rest[:paren].strip()
  end = _match_paren(rest, paren)
  operand_text, attrs = rest[paren + 1:end - 1], rest[end:]
  operand_text = re.sub(r'/\*.*?\*/', '', operand_text)  # e.g. /*index=5*/
  operands = [p.split()[-1].lstrip('%') for p in _split_top(operand_text)]
  calls = [m.group(1) for m in _CALL_ATTR.finditer(attrs)]
  for m in _CALL_LIST.finditer(attrs):
    calls += [c.strip().lstrip('%') for c in m.group(1).split(',') if c.strip()]
  op = _OP_NAME.search(attrs)
  frame = _FRAME.search(attrs)
  return Instr(name, opcode, shape, operands, calls,
               op.group(1).replace('\\"', '"') if op else '',
               int(frame.group(1)) if frame else None, attrs, computation)


def _parse_frames(lines: list[str]) -> dict[int, str]:
  """Stack frame id -> file of its own location, from the module's frame tables."""
  section, files, locs, frames = None, {}, {}, {}
  for line in lines:
    s = line.strip()
    if s in ('FileNames', 'FunctionNames', 'FileLocations', 'StackFrames'):
      section = s
      continue
    m = re.match(r'(\d+)\s+(.*)$', s)
    if not m or section is None:
      if not s:
        continue
      section = None
      continue
    i, val = int(m.group(1)), m.group(2)
    if section == 'FileNames':
      files[i] = val.strip('"')
    elif section == 'FileLocations':
      f = re.search(r'file_name_id=(\d+)', val)
      locs[i] = int(f.group(1)) if f else None
    elif section == 'StackFrames':
      f = re.search(r'file_location_id=(\d+)', val)
      frames[i] = int(f.group(1)) if f else None
  return {i: files.get(locs.get(loc), '') for i, loc in frames.items()}


def parse(text: str) -> Module:
  """Parses the text of an HLO module (e.g. `compiled.as_text()`).

  Args:
    text: HLO module text, optimized or not.

  Returns:
    The Module: computations, instructions by name, stack-frame source files.
  """
  lines = text.splitlines()
  name = ''
  m = re.match(r'HloModule\s+([\w.\-]+)', text)
  if m:
    name = m.group(1)
  comps: dict[str, list[Instr]] = {}
  instrs: dict[str, Instr] = {}
  entry, current = '', None
  for line in lines:
    if current is None:
      s = line.strip()
      if s.endswith('{') and not line.startswith((' ', '\t')) and not s.startswith('HloModule'):
        head = s[len('ENTRY'):].strip() if s.startswith('ENTRY') else s
        current = re.match(r'%?([\w.\-]+)', head).group(1)
        comps[current] = []
        if s.startswith('ENTRY'):
          entry = current
      continue
    if line.strip() == '}':
      current = None
      continue
    ins = _parse_instr(line, current)
    if ins is not None:
      comps[current].append(ins)
      instrs[ins.name] = ins
  return Module(name, entry, comps, instrs, _parse_frames(lines))
