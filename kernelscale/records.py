"""results.jsonl: one flat JSON object per point, appended and flushed at once.

Every later stage (analysis, report) reads this file and nothing else; what
they need to know about a record (which points are usable, what tells two
points apart, which convolutions ran as XLA's unoptimized loop) is defined
here, once. Fields: docs/records.md.
"""
from __future__ import annotations

import json
import math
import os
from typing import Sequence

# Fields that, when they differ between records, make separate fit groups.
GROUP_FIELDS = ('model', 'batch_size', 'dtype', 'xla_flags', 'data', 'cpu_conv', 'conv_algo',
                'variant', 'features')
CEILINGS_FILE = 'ceilings.json'  # beside results.jsonl: measure.ceilings' cache per device
# What hlo_labels.conv_impl writes for a convolution XLA:CPU runs as its own loop.
UNOPTIMIZED_CPU_CONV = 'XLA CPU unoptimized loop'


def _clean(value):
  # JSON has no NaN/inf; a missing figure is null.
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def block(record: dict) -> str:
  """The record's design (shapes.BLOCKS); 'plain' for records written before designs existed."""
  return record.get('block') or 'plain'


def design(record: dict) -> str:
  """'' for the plain k x k network, else ' <block>' (shapes.BLOCKS): what tells designs apart."""
  return '' if block(record) == 'plain' else f' {block(record)}'


def point_label(record: dict) -> str:
  """'SAME k=5', or 'SAME k=5 dilated' for a design: how notes and plots name a point."""
  return f'{record.get("padding")} k={record.get("kernel_size")}{design(record)}'


def append(path: str, record: dict) -> None:
  """Appends one record as a line and fsyncs, so an interrupted sweep keeps it."""
  line = json.dumps({k: _clean(v) for k, v in record.items()}, sort_keys=False)
  with open(path, 'a', encoding='utf-8') as f:
    f.write(line + '\n')
    f.flush()
    os.fsync(f.fileno())


def load(path: str) -> list[dict]:
  """Reads every record of a results.jsonl file.

  Raises:
    FileNotFoundError: when the file does not exist.
    ValueError: naming the line that is not valid JSON.
  """
  out = []
  with open(path, encoding='utf-8') as f:
    for i, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise ValueError(f'{path}:{i}: not a JSON record ({e.msg})') from None
  return out


def ok_records(recs: Sequence[dict]) -> list[dict]:
  """Records with status ok and a positive median step time."""
  return [r for r in recs if r.get('status') == 'ok' and (r.get('step_s_median') or 0) > 0]


def point_key(r: dict, fields: Sequence[str] = GROUP_FIELDS) -> list:
  """What tells one point of a run from another: padding, k and the fit-group fields."""
  return [r.get('padding'), r.get('kernel_size')] + [str(r.get(f)) for f in fields]


def unoptimized_convs(rec: dict) -> list[str]:
  """The convolutions (layer/phase labels) XLA:CPU ran as its own unoptimized loop, sorted.

  From the record's `conv_impl` (read from its optimized HLO); empty when every
  convolution went to a conv library, or when nothing says.
  """
  return sorted(label for label, impl in (rec.get('conv_impl') or {}).items()
                if isinstance(impl, str) and UNOPTIMIZED_CPU_CONV in impl)


def device_key(platform: str, device_kind: str) -> str:
  """The ceilings' key for one kind of device, e.g. 'cpu/cpu' or 'gpu/NVIDIA H100'."""
  return f'{platform}/{device_kind}'


def load_ceilings(workdir: str) -> dict:
  """Every cached ceiling entry in <workdir>/ceilings.json ({} when none)."""
  path = os.path.join(workdir, CEILINGS_FILE)
  if not os.path.exists(path):
    return {}
  with open(path, encoding='utf-8') as f:
    return json.load(f)
