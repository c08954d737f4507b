"""results.jsonl: one flat JSON object per point, appended whole and fsynced at once.

Every later stage (analysis, report) reads this file and nothing else; what
they need to know about a record (which points are usable, what tells two
points apart, which convolutions ran as XLA's unoptimized loop) is defined
here, once. Fields: docs/records.md.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Sequence

# Fields that, when they differ between records, make separate fit groups.
GROUP_FIELDS = ('model', 'batch_size', 'dtype', 'xla_flags', 'data', 'cpu_conv', 'conv_algo',
                'variant', 'n_devices', 'batch_scaling', 'features')
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


class WriteError(OSError):
  """A record could not be written whole (e.g. disk full); the file was cut back to its last line."""


_write = os.write  # the one call that writes a record's bytes; tests patch it to fill the disk


def append(path: str, record: dict) -> None:
  """Appends one record as one whole line and fsyncs, so an interrupted sweep keeps it.

  The line is written with one write call on a file opened O_APPEND; when any
  part of it fails (ENOSPC, EIO), the file is truncated back to where it was,
  so a reader never sees a torn line from this writer.

  Raises:
    WriteError: one line naming the file and the cause; the file is as before.
  """
  data = (json.dumps({k: _clean(v) for k, v in record.items()}, sort_keys=False)
          + '\n').encode('utf-8')
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    start = os.fstat(fd).st_size
    try:
      done = 0
      while done < len(data):
        done += _write(fd, data[done:])
      os.fsync(fd)
    except OSError as e:
      try:
        os.ftruncate(fd, start)
      except OSError:
        pass
      raise WriteError(e.errno, f'{path}: could not write a record ({e.strerror or e}); the file '
                       'keeps its earlier records whole') from None
  finally:
    os.close(fd)


def record_key(r: dict) -> tuple:
  """What makes two records the same point of a sweep (the point's name and its fit group)."""
  return (r.get('point'), *point_key(r),
          *(str(r.get(f)) for f in ('features', 'devices', 'repeat', 'precision', 'round')))


def load(path: str, warn=None) -> list[dict]:
  """Reads every record of a results.jsonl file.

  A last line that is not whole (a run killed mid-write by an older writer, a
  copy cut short) is left out, and `warn` (default: stderr) is told its number.
  Of records with the same point from one run (a point re-run by --resume),
  the last is kept.

  Raises:
    FileNotFoundError: when the file does not exist.
    ValueError: naming the line that is not a JSON record (other than a torn
      last line), or two lines holding the same point from different runs.
  """
  out, lines = [], []
  with open(path, encoding='utf-8', errors='replace') as f:
    text = f.read()
  raw = text.split('\n')
  last = max((i for i, line in enumerate(raw) if line.strip()), default=-1)
  for i, line in enumerate(raw):
    line = line.strip()
    if not line:
      continue
    try:
      rec = json.loads(line)
      if not isinstance(rec, dict):
        raise json.JSONDecodeError('not an object', line, 0)
    except json.JSONDecodeError as e:
      if i == last:
        (warn or _stderr)(f'{path}:{i + 1}: torn last line left out ({e.msg}); the '
                          f'{len(out)} record(s) before it are used')
        break
      raise ValueError(f'{path}:{i + 1}: not a JSON record ({e.msg})') from None
    bad = _garbled(rec)
    if bad:
      raise ValueError(f'{path}:{i + 1}: {bad}')
    out.append(rec)
    lines.append(i + 1)
  return _one_per_point(out, lines, path)


_NUMBER_SUFFIXES = ('_s', '_bytes', 'flops', '_per_s', '_share', '_fraction', '_median', '_p10',
                    '_p90', '_min')


def _garbled(rec: dict) -> str | None:
  """Why a record cannot be one of ours (a field of the wrong kind), else None."""
  if rec.get('status', 'ok') not in ('ok', 'failed', 'skipped'):
    return f'status {rec.get("status")!r} is not ok, failed or skipped'
  k = rec.get('kernel_size')
  if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
    return f'kernel_size {k!r} is not an integer >= 1'
  for key, v in rec.items():
    # A figure is a number, null, a {name: number} dict or a list of numbers (trace_step_s).
    items = v if isinstance(v, list) else [v]
    if key.endswith(_NUMBER_SUFFIXES) and any(isinstance(x, (str, bool, list))
                                              for x in items):
      return f'{key} {v!r} is not a number'
  return None


def _stderr(msg: str) -> None:
  print(f'note: {msg}', file=sys.stderr)


def _one_per_point(recs: list[dict], lines: list[int], path: str) -> list[dict]:
  """Refuses one point from two runs; within a run keeps the point's last record."""
  seen: dict = {}
  for i, r in enumerate(recs):
    rid = r.get('run_id')
    if rid is None:
      continue
    key = json.dumps(record_key(r), default=str)
    if key in seen and recs[seen[key]].get('run_id') != rid:
      j = seen[key]
      raise ValueError(f'{path}:{lines[i]}: point {r.get("point")!r} is also on line {lines[j]} '
                       f'from another run (run_id {recs[j].get("run_id")} and {rid}); two runs '
                       'were mixed in one file: keep one run per workdir')
    seen[key] = i
  last = {json.dumps(record_key(r), default=str): i for i, r in enumerate(recs)
          if r.get('run_id') is not None}
  return [r for i, r in enumerate(recs)
          if r.get('run_id') is None or last[json.dumps(record_key(r), default=str)] == i]


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
  """Every cached ceiling entry in <workdir>/ceilings.json ({} when none, or corrupt)."""
  path = os.path.join(workdir, CEILINGS_FILE)
  if not os.path.exists(path):
    return {}
  try:
    with open(path, encoding='utf-8') as f:
      cache = json.load(f)
  except (OSError, ValueError) as e:
    _stderr(f'{path} cannot be read ({e}); the ceilings are measured again')
    return {}
  return cache if isinstance(cache, dict) else {}
