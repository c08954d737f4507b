"""results.jsonl: one flat JSON object per point, appended and flushed at once.

Every later stage (analysis, report) reads this file and nothing else.
"""
from __future__ import annotations

import json
import math
import os


def _clean(value):
  # JSON has no NaN/inf; a missing figure is null.
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def block(record: dict) -> str:
  """The record's design (models.BLOCKS); 'plain' for records written before designs existed."""
  return record.get('block') or 'plain'


def design(record: dict) -> str:
  """'' for the plain k x k network, else ' <block>' (models.BLOCKS): what tells designs apart."""
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
