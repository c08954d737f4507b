"""Bounded profiler traces and per-phase attribution of step time.

`trace_steps` runs a few already-warm steps under `jax.profiler.trace`, each
wrapped in `StepTraceAnnotation`, writing `<logdir>/plugins/profile/<run>/
*.xplane.pb` (TensorBoard's Profile tab reads it). `attribute` reads the trace
back with `jax.profiler.ProfileData` and gives seconds per step per
"layer/phase", using `hlo_labels.op_labels` of the compiled step's optimized HLO.

How op time is attributed (docs/methods.md, traces):
the trace has one interval per executed HLO op (stat `hlo_op`), from its
start to its end or, for ops the CPU runtime completes asynchronously (Eigen
convolutions run on the Eigen pool: the op event is only the launch), to its
flow-linked "end: <op>" event. On CPU the
thunk executor runs independent ops at once on several threads, so their
intervals overlap and their summed durations exceed the step (1.3-1.8x here).
We therefore split time, not sum it: the step's op intervals are cut into
elementary segments, and a segment where n ops are running gives dt/n to each.
The attributed total is then the union of busy time (never more than the
step's wall time), and each op's share is the wall time it accounted for.
On GPU/TPU a stream runs one op at a time, where this reduces to the plain
sum. Gaps between ops (dispatch, Python, idle threads) are not attributed.

On the CPU host plane, when the trace carries the Eigen pool's
`ThreadpoolListener` regions, time is attributed by what each thread actually
executes (`thread_split`): a thread is busy with an op while that op's own
event runs on it, and with an op's pool tasks while a region that the op
scheduled (the region's `_c` flow id is the `_p` of a `Record` made inside the
op, or inside a region the op scheduled) runs on it. An async op's launch-to-
`end:` span is then no longer counted as busy: an op whose completion waits
behind another op's work (e.g. a small dot waiting while a slow conv loop holds
the pool) gets only the time its threads ran it. Each elementary segment of
wall time is shared equally by the threads busy in it.

Per traced step (its StepTraceAnnotation window): phases and the attributed
time. `summarize_steps` drops outlier steps (wall time over OUTLIER_FACTOR x
the traced median), takes per-phase medians over the rest, and gives
`trace_coverage` = the median of attributed / the step's own wall time, and
`trace_overhead` = traced median / untraced median.
"""
from __future__ import annotations

import collections
import glob
import os
import shlex
import sys
import time
from typing import Any, Callable

import jax
import numpy as np

from kernelscale.measure import hlo, hlo_labels, trace_export
# The time split itself (pure Python): re-exported, as tests and benchmarks use them here.
from kernelscale.measure.attribution import (  # pylint: disable=unused-import
    OUTLIER_FACTOR, UNOWNED, _thread_segments, beside_time, split_time, summarize_steps,
    thread_split)


STEP_NAME = 'train'
# The phase of an op the labels do not name.
OTHER = 'other/all'

HLO_NAME = 'optimized_hlo.txt'
_DEVICE_PREFIXES = ('/device:GPU:', '/device:TPU:')


def profile_options():
  """The profiler options of every trace here (and of the conv phases timed alone under it).

  The Python tracer made the first traced step ~20x slower (measured on CPU)
  and adds nothing per-op; host TraceMes (StepTraceAnnotation, XLA ops) and
  the HLO protos TensorBoard's op views use stay on.
  """
  options = jax.profiler.ProfileOptions()
  options.python_tracer_level = 0
  return options


def trace_steps(step: Callable, state: Any, batch: dict, steps: int, logdir: str):
  """Runs `steps` warm steps under the profiler, one StepTraceAnnotation each.

  Args:
    step: the compiled step, (state, batch) -> (state, metrics).
    state: train state (donated by `step`; the returned one must be used).
    batch: the batch.
    steps: how many steps to trace (>= 1).
    logdir: the point's trace folder, e.g. <workdir>/tensorboard/<point>.

  Returns:
    (state, metrics, seconds of each traced step, path of the .xplane.pb or None).
  """
  os.makedirs(logdir, exist_ok=True)
  before = set(glob.glob(os.path.join(logdir, 'plugins', 'profile', '*', '*.xplane.pb')))
  times, metrics = [], None
  options = profile_options()
  # Drop jax's cached programs (parameter init, eager ops, the optimizer timing) so that
  # the trace's program list (Op Profile) holds the train step, not ~80 init programs.
  jax.clear_caches()
  with jax.profiler.trace(logdir, profiler_options=options):
    for i in range(steps):
      with jax.profiler.StepTraceAnnotation(STEP_NAME, step_num=i):
        t0 = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t0)
  new = sorted(set(glob.glob(os.path.join(logdir, 'plugins', 'profile', '*', '*.xplane.pb')))
               - before, key=os.path.getmtime)
  return state, metrics, times, (new[-1] if new else None)


def _stats(ev) -> dict:
  return dict(ev.stats)


def op_events(profile, module_name: str | None = None):
  """HLO-op intervals of one program, from the device planes if any, else the host.

  Args:
    profile: a `jax.profiler.ProfileData`.
    module_name: keep only ops of this HLO module (e.g. 'jit_train_step');
      None keeps all.

  Returns:
    (events, plane name, note): events as (op name, start_ns, end_ns, run id
    or None); note is None or why there are no events.
  """
  planes = list(profile.planes)
  device = [p for p in planes if p.name.startswith(_DEVICE_PREFIXES)]
  host = [p for p in planes if p.name == '/host:CPU']
  for group in ([device[0]] if device else []) + host:
    # An op the CPU runtime runs asynchronously (Eigen convolutions, large
    # copies) has a short launch event; its completion is a separate
    # "end: <op>" event linked by the producer/consumer flow id (stats _p/_c).
    done = {}
    for line in group.lines:
      for ev in line.events:
        if ev.name.startswith('end: '):
          st = _stats(ev)
          if '_c' in st:
            done[(ev.name[5:], st['_c'])] = float(ev.start_ns + ev.duration_ns)
    out = []
    for line in group.lines:
      ops_line = line.name == 'XLA Ops'  # TPU/GPU derived line: event name is the op
      for ev in line.events:
        st = _stats(ev)
        op = st.get('hlo_op') or (ev.name if ops_line else None)
        if not op:
          continue
        mod = st.get('hlo_module')
        if module_name and mod is not None and mod != module_name:
          continue
        end = float(ev.start_ns + ev.duration_ns)
        end = max(end, done.get((str(op), st.get('_p')), end))
        out.append((str(op), float(ev.start_ns), end, st.get('run_id')))
    if out:
      return out, group.name, None
  names = ', '.join(p.name for p in planes) or 'none'
  return [], None, f'trace has no per-op (hlo_op) events on any plane (planes: {names})'


def step_windows(profile) -> list[tuple[float, float]]:
  """(start_ns, end_ns) of the StepTraceAnnotation events on the host, in step order."""
  out = []
  for p in profile.planes:
    if p.name != '/host:CPU':
      continue
    for line in p.lines:
      for ev in line.events:
        if ev.name == STEP_NAME and 'step_num' in _stats(ev):
          out.append((int(_stats(ev)['step_num']), float(ev.start_ns),
                      float(ev.start_ns + ev.duration_ns)))
  return [(s, e) for _, s, e in sorted(out)]


def step_annotations(profile) -> list[float]:
  """Durations (s) of the StepTraceAnnotation events on the host, in step order."""
  return [(e - s) * 1e-9 for s, e in step_windows(profile)]


def attribute(profile, module: hlo.Module, labels: dict[str, str], steps: int) -> dict:
  """Seconds per step per "layer/phase" from a trace of `steps` steps.

  Args:
    profile: a `jax.profiler.ProfileData` of the traced window.
    module: the parsed optimized HLO of the traced program.
    labels: `hlo_labels.op_labels(module)`.
    steps: steps in the window (used when events carry no run id).

  Returns:
    {'phase_s': {label: s/step} (per-label median over the steps) or None,
     'attributed_s': their sum or None, 'summed_s': plain sum of op durations
     per step or None, 'plane': plane used, 'steps_seen': int, 'method':
     'threads' (per-thread busy time) or 'overlap split', 'per_step': [{label:
     s}] per traced step or None, 'step_wall_s': each step's annotation (s)
     or None, 'beside_steps': per traced step, `beside_time` by label (only
     with 'threads'; else None), 'notes': [...]}
  """
  events, plane, note = op_events(profile, module.name or None)
  if not events:
    return {'phase_s': None, 'attributed_s': None, 'summed_s': None, 'plane': None,
            'steps_seen': 0, 'method': None, 'per_step': None, 'step_wall_s': None,
            'beside_steps': None, 'notes': [note]}
  notes = []
  windows = step_windows(profile) if plane == '/host:CPU' else []
  group = next(p for p in profile.planes if p.name == plane)
  segments = _thread_segments(group, module.name or None) if windows else None
  per_op_steps: list[dict[str, float]] = []
  beside_steps = None
  if segments is not None:
    method = 'threads'
    beside_steps = []
    for s, e in windows:
      per_op_steps.append({op: t * 1e-9 for op, t in thread_split(segments, s, e).items()})
      beside_steps.append(beside_time(segments, s, e, lambda op: labels.get(op, OTHER)))
  else:
    method = 'overlap split'
    by_run: dict = collections.defaultdict(list)
    for op, s, e, run in events:
      by_run[run].append((op, s, e))
    if None in by_run:  # without run ids, the whole window is one group
      total = {op: t * 1e-9 / steps for op, t in split_time(by_run[None]).items()}
      per_op_steps = [total] * steps
    else:
      for _, group_ev in sorted(by_run.items(), key=lambda kv: min(s for _, s, _ in kv[1])):
        per_op_steps.append({op: t * 1e-9 for op, t in split_time(group_ev).items()})
  n = len(per_op_steps)
  unknown = sorted({op for d in per_op_steps for op in d if op not in labels and op != UNOWNED})
  if unknown:
    notes.append(f'{len(unknown)} traced ops not in the HLO, counted as other/all: '
                 f'{", ".join(unknown[:5])}')
  per_step = []
  for d in per_op_steps:
    ph: dict[str, float] = collections.defaultdict(float)
    for op, t in d.items():
      ph[labels.get(op, OTHER)] += t
    per_step.append(dict(ph))
  names = sorted({k for d in per_step for k in d})
  phase = {k: float(np.median([d.get(k, 0.0) for d in per_step])) for k in names}
  summed = sum(e - s for _, s, e, _ in events) * 1e-9 / n
  wall = [(e - s) * 1e-9 for s, e in windows] if len(windows) == n else None
  return {'phase_s': phase, 'attributed_s': sum(phase.values()), 'summed_s': summed,
          'plane': plane, 'steps_seen': n, 'method': method, 'per_step': per_step,
          'step_wall_s': wall, 'beside_steps': beside_steps, 'notes': notes}


def profile_point(step: Callable, state: Any, batch: dict, compiled_text: str,
                  platform: str, steps: int, logdir: str, workdir: str,
                  step_s_median: float | None):
  """Traces a window of steps and returns the record fields for it.

  Args:
    step: the compiled step (already warm).
    state, batch: its inputs; state is donated.
    compiled_text: `compiled.as_text()`, the optimized HLO.
    platform: 'cpu', 'gpu' or 'tpu'.
    steps: steps to trace.
    logdir: where this point's trace goes.
    workdir: the run's output folder (trace_dir is recorded relative to it).
    step_s_median: the untraced median step, for trace_coverage.

  Returns:
    (state, fields, notes): fields holds phase_s (per-phase medians over the
    kept traced steps), trace_coverage (median attributed / own wall time),
    conv_impl, trace_dir, profile_steps, trace_step_s_median (kept steps),
    trace_op_sum_s, trace_method, trace_overhead (traced / untraced median),
    trace_dropped_steps, trace_steps_used, trace_step_s, phase_beside (per phase:
    the share of its running time another thread spent on a different phase,
    and which phase most; per-thread attribution only).
  """
  module = hlo.parse(compiled_text)
  labels = hlo_labels.op_labels(module)
  os.makedirs(logdir, exist_ok=True)
  # Kept beside the trace so that attribution can be redone from files alone.
  with open(os.path.join(logdir, HLO_NAME), 'w', encoding='utf-8') as f:
    f.write(compiled_text)
  fields = {'conv_impl': hlo_labels.conv_impl(module, labels, platform) or None,
            'trace_dir': os.path.relpath(logdir, workdir), 'profile_steps': steps,
            'phase_s': None, 'trace_coverage': None, 'trace_step_s_median': None,
            'trace_op_sum_s': None, 'trace_method': None, 'trace_overhead': None,
            'trace_dropped_steps': None, 'trace_steps_used': None, 'trace_step_s': None,
            'phase_beside': None}
  notes = []
  try:
    state, _, times, path = trace_steps(step, state, batch, steps, logdir)
  except Exception as e:  # pylint: disable=broad-except
    # A profiler that cannot start (e.g. another session is active) must not
    # lose the point's other measurements.
    notes.append(f'profiling failed ({type(e).__name__}: {e}); phase_s and trace_coverage '
                 'are null')
    return state, fields, notes
  fields['trace_step_s_median'] = float(np.median(times))
  if path is None:
    notes.append('profiler wrote no .xplane.pb; phase_s and trace_coverage are null')
    return state, fields, notes
  try:
    profile = jax.profiler.ProfileData.from_file(path)
  except Exception as e:  # pylint: disable=broad-except
    notes.append(f'could not read {os.path.basename(path)} ({type(e).__name__}: {e}); '
                 'phase_s and trace_coverage are null')
    return state, fields, notes
  att = attribute(profile, module, labels, steps)
  notes += att['notes']
  notes += trace_export.write(logdir, profile, labels, module.name or None)  # layer-named trace
  if att['phase_s'] is not None:
    fields['trace_op_sum_s'] = att['summed_s']
    fields['trace_method'] = att['method']
    # Each traced step against its own wall time (its annotation, else the timer).
    wall = att['step_wall_s'] or (times if len(times) == att['steps_seen'] else None)
    if wall:
      summ = summarize_steps(att['per_step'], wall, step_s_median, att['beside_steps'])
      fields.update(summ)
      if summ['trace_dropped_steps']:
        notes.append(f'traced step(s) {summ["trace_dropped_steps"]} dropped from the profile '
                     f'medians: wall time over {OUTLIER_FACTOR}x the median traced step '
                     f'({", ".join(f"{w * 1e3:.1f}" for w in summ["trace_step_s"])} ms)')
    else:
      fields['phase_s'] = att['phase_s']
      if step_s_median:
        fields['trace_coverage'] = att['attributed_s'] / step_s_median
  return state, fields, notes


def tensorboard_command(workdir: str) -> str | None:
  """The command that opens this run's traces in TensorBoard, or None without traces.

  Uses the tensorboard next to the running Python (the venv's) when there is one.
  """
  logdir = os.path.abspath(os.path.join(workdir, 'tensorboard'))
  if not glob.glob(os.path.join(logdir, '*', 'plugins', 'profile', '*', '*.xplane.pb')):
    return None
  exe = os.path.join(os.path.dirname(sys.executable), 'tensorboard')
  exe = exe if os.path.exists(exe) else 'tensorboard'
  return f'{exe} --logdir {shlex.quote(logdir)}'
