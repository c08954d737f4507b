"""Splitting a step's wall time between ops: by what each thread executes, or by overlap.

Pure Python on a `jax.profiler.ProfileData` plane's lines (no jax import);
measure/profiling.py reads the trace and calls these. The rules are in
profiling.py's docstring and docs/methods.md ("Traces and per-phase attribution").
"""
from __future__ import annotations

import bisect
import collections

import numpy as np

# A traced step slower than this times the median traced step is dropped from
# the medians (e.g. the first traced step paying for the profiler's start).
OUTLIER_FACTOR = 1.5
_REGION_START, _REGION_STOP, _RECORD = ('ThreadpoolListener::StartRegion',
                                        'ThreadpoolListener::StopRegion',
                                        'ThreadpoolListener::Record')
UNOWNED = '(pool task of no op)'


def _stats(ev) -> dict:
  return dict(ev.stats)


def split_time(intervals: list[tuple[str, float, float]]) -> dict[str, float]:
  """Wall time of overlapping intervals, each segment shared equally by the ops running.

  Args:
    intervals: (key, start, end).

  Returns:
    {key: time}; the values sum to the union of the intervals.
  """
  points = []
  for i, (_, s, e) in enumerate(intervals):
    if e > s:
      points.append((s, 1, i))
      points.append((e, -1, i))
  points.sort()
  out: dict[str, float] = collections.defaultdict(float)
  active: set[int] = set()
  last = None
  for t, kind, i in points:
    if active and last is not None and t > last:
      share = (t - last) / len(active)
      for j in active:
        out[intervals[j][0]] += share
    if kind == 1:
      active.add(i)
    else:
      active.discard(i)
    last = t
  return dict(out)


def _thread_segments(plane, module_name: str | None):
  """Per thread (line): non-overlapping (owner op, start_ns, end_ns) of what it executes.

  Returns None when the plane has no pool regions (then `split_time` is used).
  """
  lines = []
  records = {}  # flow id -> (line index, time)
  any_region = False
  for li, line in enumerate(plane.lines):
    ops, regions, waits, open_region = [], [], [], None
    for ev in sorted(line.events, key=lambda e: e.start_ns):
      st = _stats(ev)
      if ev.name == _REGION_START:
        if open_region is not None:
          regions.append((*open_region, float(ev.start_ns)))
        open_region = (st.get('_c'), float(ev.start_ns))
      elif ev.name == _REGION_STOP:
        if open_region is not None:
          regions.append((*open_region, float(ev.start_ns)))
        open_region = None
      elif ev.name == _RECORD and '_p' in st:
        records[st['_p']] = (li, float(ev.start_ns))
      elif 'wait' in ev.name.lower() and not st.get('hlo_op'):
        # e.g. "ThunkExecutor::Execute (wait for completion)": the client thread's
        # region spans the whole program while it only waits for the others.
        waits.append((float(ev.start_ns), float(ev.start_ns + ev.duration_ns)))
      elif st.get('hlo_op') and not (module_name and st.get('hlo_module') not in (None, module_name)):
        ops.append((str(st['hlo_op']), float(ev.start_ns), float(ev.start_ns + ev.duration_ns)))
    any_region = any_region or bool(regions)
    ops.sort(key=lambda o: o[1])
    lines.append((ops, regions, waits))
  if not any_region:
    return None
  owner_of: dict = {}

  starts = [([o[1] for o in ops], [r[1] for r in regions]) for ops, regions, _ in lines]

  def innermost(items, item_starts, t):
    # Ops on one thread nest shallowly: the last few that start before t suffice.
    i = bisect.bisect_right(item_starts, t)
    for j in range(i - 1, max(i - 9, -1), -1):
      if items[j][1] <= t <= items[j][2]:
        return items[j]
    return None

  def owner_at(li: int, t: float, depth: int = 0):
    ops, regions, _ = lines[li]
    op = innermost(ops, starts[li][0], t)
    if op is not None:
      return op[0]
    reg = innermost(regions, starts[li][1], t)
    return region_owner(reg[0], depth + 1) if reg else None

  def region_owner(c, depth: int = 0):
    if c in owner_of:
      return owner_of[c]
    owner_of[c] = None  # guards against a cycle
    if c in records and depth < 200:
      owner_of[c] = owner_at(*records[c], depth)
    return owner_of[c]

  out = []
  for ops, regions, waits in lines:
    # Priority: an op's own event, then a wait (idle), then a pool region.
    marks = ([(s, e, 2, op) for op, s, e in ops] + [(s, e, 1, None) for s, e in waits]
             + [(s, e, 0, c) for c, s, e in regions])
    bounds = sorted({t for s, e, _, _ in marks for t in (s, e)})
    marks.sort()
    segs, j, active = [], 0, []
    for a, b in zip(bounds, bounds[1:]):
      while j < len(marks) and marks[j][0] <= a:
        active.append(marks[j])
        j += 1
      active = [m for m in active if m[1] > a]
      if not active:
        continue
      # An op's own event wins over the region it runs in; the innermost wins.
      top = max(active, key=lambda m: (m[2], m[0]))
      if top[2] == 1:
        continue
      who = top[3] if top[2] == 2 else (region_owner(top[3]) or UNOWNED)
      if segs and segs[-1][0] == who and segs[-1][2] == a:
        segs[-1] = (who, segs[-1][1], b)
      else:
        segs.append((who, a, b))
    out.append(segs)
  return out


def _intervals(segments, start: float, end: float, key=lambda who: who):
  """Sweeps the threads' segments in [start, end]: yields (ns, [key of what each busy thread
  runs]) for every stretch in which at least one thread is busy."""
  pts = []
  for li, segs in enumerate(segments):
    for who, s, e in segs:
      s, e = max(s, start), min(e, end)
      if e > s:
        pts.append((s, 1, li, key(who)))
        pts.append((e, -1, li, key(who)))
  pts.sort(key=lambda p: (p[0], p[1]))
  active: dict[int, str] = {}
  last = None
  for t, kind, li, k in pts:
    if active and last is not None and t > last:
      yield t - last, list(active.values())
    if kind == 1:
      active[li] = k
    elif active.get(li) == k:
      del active[li]
    last = t


def thread_split(segments, start: float, end: float) -> dict[str, float]:
  """Wall time in [start, end] per op, each segment shared by the threads busy in it.

  Args:
    segments: `_thread_segments`' per-thread lists.
    start, end: the window (ns).

  Returns:
    {op: ns}; the values sum to the time at least one thread was busy.
  """
  out: dict[str, float] = collections.defaultdict(float)
  for dt, running in _intervals(segments, start, end):
    for w in running:
      out[w] += dt / len(running)
  return dict(out)


def beside_time(segments, start: float, end: float, key=lambda who: who) -> dict:
  """How much of each key's running time another thread spent on a different key.

  Args:
    segments: `_thread_segments`' per-thread lists.
    start, end: the window (ns).
    key: maps an op to what is compared (profiling passes its layer/phase label).

  Returns:
    {key: (ns some thread ran it, ns of those while another thread ran a
    different key, {that other key: ns})}. `thread_split` gives such shared
    time half to each (two threads), so a phase that runs mostly beside
    another gets about half its running time.
  """
  wall: dict = collections.defaultdict(float)
  beside: dict = collections.defaultdict(float)
  partner: dict = collections.defaultdict(lambda: collections.defaultdict(float))
  for dt, active in _intervals(segments, start, end, key):
    running = set(active)
    for k2 in running:
      wall[k2] += dt
      for other in running - {k2}:
        partner[k2][other] += dt
      if len(running) > 1:
        beside[k2] += dt
  return {k2: (wall[k2], beside[k2], dict(partner[k2])) for k2 in wall}


def beside_summary(beside_steps: list[dict]) -> dict:
  """{key: {'share': time beside another key / running time, 'with': the key most beside it}}.

  Pooled over the given steps (`beside_time`'s dicts); keys that never ran are left out.
  """
  wall: dict = collections.defaultdict(float)
  beside: dict = collections.defaultdict(float)
  partner: dict = collections.defaultdict(lambda: collections.defaultdict(float))
  for step in beside_steps:
    for k, (w, b, others) in step.items():
      wall[k] += w
      beside[k] += b
      for o, t in others.items():
        partner[k][o] += t
  return {k: {'share': beside[k] / wall[k],
              'with': max(partner[k], key=partner[k].get) if partner[k] else None}
          for k in sorted(wall) if wall[k] > 0}


def summarize_steps(per_step: list[dict], wall_s: list[float],
                    step_s_median: float | None, beside_steps: list[dict] | None = None) -> dict:
  """Medians over the traced steps that are not outliers.

  Args:
    per_step: {label: s} attributed per traced step.
    wall_s: each traced step's own wall time (its annotation).
    step_s_median: the untraced median step, for trace_overhead.
    beside_steps: per traced step, `beside_time` by label (None: not measured).

  Returns:
    {'phase_s' (per-label medians), 'trace_coverage' (median of attributed /
    own wall), 'trace_step_s_median', 'trace_overhead', 'trace_dropped_steps'
    (indices), 'trace_steps_used', 'trace_step_s' (every traced step's wall),
    'phase_beside' (`beside_summary` over the kept steps; None without beside_steps)}.
  """
  med = float(np.median(wall_s))
  keep = [i for i, w in enumerate(wall_s) if w <= OUTLIER_FACTOR * med]
  labels = sorted({k for i in keep for k in per_step[i]})
  phase = {k: float(np.median([per_step[i].get(k, 0.0) for i in keep])) for k in labels}
  cov = float(np.median([sum(per_step[i].values()) / wall_s[i] for i in keep]))
  kept_med = float(np.median([wall_s[i] for i in keep]))
  return {'phase_s': phase, 'trace_coverage': cov, 'trace_step_s_median': kept_med,
          'trace_overhead': kept_med / step_s_median if step_s_median else None,
          'trace_dropped_steps': [i for i in range(len(wall_s)) if i not in keep],
          'trace_steps_used': len(keep), 'trace_step_s': [float(w) for w in wall_s],
          'phase_beside': (beside_summary([beside_steps[i] for i in keep])
                           if beside_steps is not None else None)}
