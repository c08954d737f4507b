"""A point's trace with layer names: op_labels.json and trace.labelled.json.gz.

TensorBoard's trace viewer shows a CPU trace as XLA wrote it: raw HLO names
(`convolution.2`, `ynn_fusion.4`) on rows called `tf_XLAEigen/...`, and for an
op the CPU runtime completes asynchronously (Eigen convolutions) only its
short launch; the real end is a zero-width `end: <op>` event elsewhere.
`write(logdir, profile, labels)` puts two files beside the point's trace:

  op_labels.json          {HLO op: "layer/phase"}, from hlo_labels.op_labels
  trace.labelled.json.gz  Chrome-trace JSON (ui.perfetto.dev, chrome://tracing):
                          one slice per executed op spanning its real interval,
                          launch to its flow-linked `end:` event, named
                          `conv2/backward_input (convolution.2)`, on the row of
                          the thread that launched it, plus the `train` steps.

Slices on one row must nest: an asynchronous op still running when its
thread launches the next op goes to an extra row beside its thread's
(`<thread> (still running)`), so no slice is cut or dropped. Where the CPU
trace shows what each thread executes (its pool regions), a row
`<thread> (executes)` per thread holds those busy segments: the intervals
profiling.attribute splits into phase_s (a test checks it), so a wait never
looks like work.
"""
from __future__ import annotations

import collections
import gzip
import json
import os

from kernelscale.measure import attribution

LABELS_NAME = 'op_labels.json'
TRACE_NAME = 'trace.labelled.json.gz'
_DEVICE_PREFIXES = ('/device:GPU:', '/device:TPU:')


def op_intervals(profile, module_name: str | None = None) -> tuple[list[tuple], str | None]:
  """Every executed op of one program with its thread: the intervals profiling.attribute splits.

  Args:
    profile: a `jax.profiler.ProfileData`.
    module_name: keep only this HLO module's ops (e.g. 'jit_train_step'); None: all.

  Returns:
    ([(op, start_ns, end_ns, run_id or None, thread name)], plane name or None).
  """
  planes = list(profile.planes)
  device = [p for p in planes if p.name.startswith(_DEVICE_PREFIXES)]
  host = [p for p in planes if p.name == '/host:CPU']
  for plane in ([device[0]] if device else []) + host:
    done = {}
    for line in plane.lines:
      for ev in line.events:
        if ev.name.startswith('end: '):
          st = dict(ev.stats)
          if '_c' in st:
            done[(ev.name[5:], st['_c'])] = float(ev.start_ns + ev.duration_ns)
    out = []
    for line in plane.lines:
      ops_line = line.name == 'XLA Ops'
      for ev in line.events:
        st = dict(ev.stats)
        op = st.get('hlo_op') or (ev.name if ops_line else None)
        if not op:
          continue
        mod = st.get('hlo_module')
        if module_name and mod is not None and mod != module_name:
          continue
        end = float(ev.start_ns + ev.duration_ns)
        end = max(end, done.get((str(op), st.get('_p')), end))
        out.append((str(op), float(ev.start_ns), end, st.get('run_id'), line.name))
    if out:
      return out, plane.name
  return [], None


def _steps(profile) -> list[tuple[int, float, float, str]]:
  """(step_num, start_ns, end_ns, thread) of the StepTraceAnnotation events."""
  out = []
  for p in profile.planes:
    if p.name != '/host:CPU':
      continue
    for line in p.lines:
      for ev in line.events:
        st = dict(ev.stats)
        if 'step_num' in st:
          out.append((int(st['step_num']), float(ev.start_ns),
                      float(ev.start_ns + ev.duration_ns), line.name))
  return sorted(out)


def _rows(slices: list[dict]) -> None:
  """Sets each slice's 'row': its thread's, or an extra one where it would not nest."""
  by_thread = collections.defaultdict(list)
  for s in slices:
    by_thread[s['thread']].append(s)
  for thread, group in by_thread.items():
    group.sort(key=lambda s: (s['start'], -s['end']))
    stacks: list[list[float]] = []  # per row: ends of the open slices, innermost last
    for s in group:
      for n, stack in enumerate(stacks):
        while stack and stack[-1] <= s['start']:
          stack.pop()
        if not stack or s['end'] <= stack[-1]:
          stack.append(s['end'])
          s['row'] = thread if n == 0 else f'{thread} (still running {n})'
          break
      else:
        stacks.append([s['end']])
        n = len(stacks) - 1
        s['row'] = thread if n == 0 else f'{thread} (still running {n})'


def _busy_slices(profile, labels: dict[str, str], module_name: str | None) -> list[dict]:
  """What each host thread executed, per op (attribution's per-thread segments); [] without."""
  plane = next(p for p in profile.planes if p.name == '/host:CPU')
  segments = attribution._thread_segments(plane, module_name)  # pylint: disable=protected-access
  if segments is None:
    return []
  names = [line.name for line in plane.lines]
  return [{'name': f'{labels.get(op, "other/all")} ({op})', 'cat': 'busy', 'start': s, 'end': e,
           'thread': f'{names[li]} (executes)',
           'args': {'hlo_op': op, 'label': labels.get(op, 'other/all')}}
          for li, segs in enumerate(segments) for op, s, e in segs]


def chrome_trace(profile, labels: dict[str, str], module_name: str | None = None) -> dict:
  """The labelled trace as a Chrome-trace JSON object (times in microseconds from the first event).

  Args:
    profile: a `jax.profiler.ProfileData`.
    labels: {HLO op: "layer/phase"}; an op not in it is labelled other/all.
    module_name: the traced program's HLO module name; None keeps every op.

  Returns:
    {'traceEvents': [...], 'displayTimeUnit': 'ms', 'otherData': {...}}.
  """
  ops, plane = op_intervals(profile, module_name)
  slices = [{'name': f'{labels.get(op, "other/all")} ({op})', 'cat': 'op', 'start': s, 'end': e,
             'thread': thread, 'args': {'hlo_op': op, 'label': labels.get(op, 'other/all'),
                                        'run_id': run}}
            for op, s, e, run, thread in ops]
  slices += _busy_slices(profile, labels, module_name) if plane == '/host:CPU' else []
  slices += [{'name': f'train step {n}', 'cat': 'step', 'start': s, 'end': e,
              'thread': thread, 'args': {'step_num': n}} for n, s, e, thread in _steps(profile)]
  _rows(slices)
  t0 = min((s['start'] for s in slices), default=0.0)
  # Rows in a stable order: the step row first, then each thread beside its extra rows.
  rows = sorted({s['row'] for s in slices}, key=lambda r: (not any(
      s['cat'] == 'step' and s['row'] == r for s in slices), r))
  tid = {r: i + 1 for i, r in enumerate(rows)}
  events = [{'name': 'process_name', 'ph': 'M', 'pid': 1,
             'args': {'name': f'{module_name or "XLA"} on {plane or "?"} (labelled)'}}]
  for r, i in tid.items():
    events.append({'name': 'thread_name', 'ph': 'M', 'pid': 1, 'tid': i, 'args': {'name': r}})
    events.append({'name': 'thread_sort_index', 'ph': 'M', 'pid': 1, 'tid': i,
                   'args': {'sort_index': i}})
  for s in sorted(slices, key=lambda s: (s['start'], -s['end'])):
    events.append({'name': s['name'], 'cat': s['cat'], 'ph': 'X', 'pid': 1, 'tid': tid[s['row']],
                   'ts': (s['start'] - t0) / 1e3, 'dur': (s['end'] - s['start']) / 1e3,
                   'args': s['args']})
  return {'traceEvents': events, 'displayTimeUnit': 'ms',
          'otherData': {'source': 'kernelscale.measure.trace_export', 'plane': plane,
                        'hlo_module': module_name}}


def write(logdir: str, profile, labels: dict[str, str], module_name: str | None = None) -> list[str]:
  """Writes op_labels.json and trace.labelled.json.gz into `logdir`; returns notes (why not).

  Best effort: a failure is a note, never an exception (the point's other
  measurements stand).
  """
  try:
    with open(os.path.join(logdir, LABELS_NAME), 'w', encoding='utf-8') as f:
      json.dump(dict(sorted(labels.items())), f, indent=1)
    trace = chrome_trace(profile, labels, module_name)
    with gzip.open(os.path.join(logdir, TRACE_NAME), 'wt', encoding='utf-8') as f:
      json.dump(trace, f, separators=(',', ':'))
  except Exception as e:  # pylint: disable=broad-except
    return [f'labelled trace not written ({type(e).__name__}: {e})']
  return []
