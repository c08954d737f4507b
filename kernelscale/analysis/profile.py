"""Which profiled phase times to trust, and on which scale (records only, no jax).

A record's `phase_s` holds per-phase medians over its traced steps (outlier
steps dropped, measure/profiling.py), in traced-step seconds. Tracing slows
the steps it records (`trace_overhead` = traced / untraced median), so the
tables put phases on the untraced median's scale: phase × step_s_median /
trace_step_s_median. A point's phases are trusted only when the trace
attributes between MIN_ and MAX_TRACE_COVERAGE of its own steps' wall time.

Each conv phase is also timed alone (`conv_alone_s`, and under the profiler
`conv_alone_traced_s`), and `alone_vs_profiled` flags a scaled phase that
disagrees with it past ALONE_FLAG, with the reason the records show: one scale
factor for every phase, where the profiler slows some phases far more than
others (Eigen convolutions split into many short pool tasks: conv1's filter
gradient); a phase that ran beside another and was given half that time by the
per-thread split (`phase_beside`); or an unsteady alone timing.
"""
from __future__ import annotations

import math

from kernelscale.analysis.clauses import CONTENDED_SHARE

MIN_TRACE_COVERAGE, MAX_TRACE_COVERAGE = 0.8, 1.2
# A conv phase timed alone and its profiled time (scaled) disagree past this ratio.
ALONE_FLAG = 1.3
# A flagged phase shorter in the step than alone is put down to running beside
# other phases when at least this share of its running time did (the split then
# books about half of that time to it, on two threads).
BESIDE_SHARE = 0.5


def trusted_phases(rec: dict) -> dict | None:
  """phase_s when present and its trace_coverage (if recorded) is in range."""
  ph, cov = rec.get('phase_s'), rec.get('trace_coverage')
  if not ph or (cov is not None and not MIN_TRACE_COVERAGE <= cov <= MAX_TRACE_COVERAGE):
    return None
  return ph


def scale(rec: dict) -> float:
  """Untraced median / traced median (1 when either is missing)."""
  t, u = rec.get('trace_step_s_median'), rec.get('step_s_median')
  return u / t if t and u else 1.0


def scaled_phases(rec: dict) -> dict | None:
  """Trusted phases on the untraced median step's scale (s per step), else None.

  Per-phase medians need not sum to the median traced step; records with
  trace_overhead (per-step medians, issue 16) are therefore scaled so that they
  sum to trace_coverage × step_s_median: each phase keeps its median share of
  the traced step, and the untraced median is the one statistic of step time.
  """
  ph = trusted_phases(rec)
  if ph is None:
    return None
  ph = {k: v for k, v in ph.items() if v is not None}
  total, cov, step = sum(ph.values()), rec.get('trace_coverage'), rec.get('step_s_median')
  if 'trace_overhead' in rec and total > 0 and cov is not None and step:
    f = cov * step / total
  else:
    f = scale(rec)
  return {k: v * f for k, v in ph.items()}


def _within(r: float) -> bool:
  return 1 / ALONE_FLAG <= r <= ALONE_FLAG


def _far(a: float, b: float) -> bool:
  """Is factor a further from 1 than factor b (either way)?"""
  return abs(math.log(a)) >= abs(math.log(b))


def _reason(e: dict) -> str | None:
  """Why a flagged phase's profiled time and its time alone disagree, from what was measured.

  The ratio splits into factors: ratio = traced_ratio × alone_trace_overhead ×
  scale (profiled_s / traced_s, the one factor the table takes off every phase).
  'tracing': the profiler's part (alone_trace_overhead × scale) is the larger:
  the profiler slows this phase alone more or less than the whole step.
  'alone_unsteady': the same, but the phase ran faster alone under the profiler
  than without, by more than the scale moves it: the untraced alone figure is
  off. 'scale' (records without conv_alone_traced_s): the scale is the larger
  factor against unscaled_ratio. 'overlap': otherwise, shorter in the step, with
  at least BESIDE_SHARE of its running time beside another phase, whose time the
  per-thread split shares. 'contended': otherwise, shorter in the step, and other
  programs took CONTENDED_SHARE or more of the CPU while the phases were timed
  alone (conv_alone_other_cpu_share). 'unexplained': none of these.
  """
  if not e['flagged']:
    return None
  f, a = e['scale'], e['alone_trace_overhead']
  if e['traced_ratio'] is not None:
    if _far(a * f, e['traced_ratio']):
      return 'alone_unsteady' if a < 1 and _far(a, f) else 'tracing'
  elif e['unscaled_ratio'] is not None and _far(f, e['unscaled_ratio']):
    return 'scale'
  if e['ratio'] < 1 and (e['beside_share'] or 0) >= BESIDE_SHARE:
    return 'overlap'
  if e['ratio'] < 1 and (e['alone_other_cpu_share'] or 0) >= CONTENDED_SHARE:
    return 'contended'
  return 'unexplained'


def alone_vs_profiled(rec: dict) -> list[dict]:
  """Each conv phase timed alone (record field conv_alone_s) against its scaled profiled time.

  Returns:
    [{phase, alone_s, profiled_s, ratio (profiled / alone), flagged (ratio
    outside 1/ALONE_FLAG..ALONE_FLAG), and what explains a flag: traced_s (the
    traced step's phase, unscaled), scale (profiled_s / traced_s), unscaled_ratio (traced_s / alone_s),
    alone_traced_s (timed alone under the profiler; None in records without
    conv_alone_traced_s), traced_ratio (traced_s / alone_traced_s),
    alone_trace_overhead (alone_traced_s / alone_s), step_trace_overhead,
    beside_share and beside_with (record field phase_beside), alone_other_cpu_share,
    reason (`_reason`; None when not flagged)}]; [] without both.
  """
  alone, ph = rec.get('conv_alone_s') or {}, scaled_phases(rec) or {}
  raw = trusted_phases(rec) or {}
  traced_alone = rec.get('conv_alone_traced_s') or {}
  beside = rec.get('phase_beside') or {}
  out = []
  for k, a in sorted(alone.items()):
    p = ph.get(k)
    if not a or p is None:
      continue
    r = p / a
    t, ta = raw.get(k), traced_alone.get(k)
    e = {'phase': k, 'alone_s': a, 'profiled_s': p, 'ratio': r, 'flagged': not _within(r),
         'traced_s': t, 'scale': p / t if t else None, 'unscaled_ratio': t / a if t else None,
         'alone_traced_s': ta, 'traced_ratio': t / ta if t and ta else None,
         'alone_trace_overhead': ta / a if ta else None,
         'step_trace_overhead': rec.get('trace_overhead'),
         'beside_share': (beside.get(k) or {}).get('share'),
         'beside_with': (beside.get(k) or {}).get('with'),
         'alone_other_cpu_share': rec.get('conv_alone_other_cpu_share')}
    e['reason'] = _reason(e)
    out.append(e)
  return out


def _backward_share(ph: dict) -> float | None:
  conv = {k: v for k, v in ph.items() if k.startswith('conv')}
  total = sum(ph.values())
  back = sum(v for k, v in conv.items() if '/backward' in k)
  return back / total if total else None


def summary(ok: list[dict]) -> list[dict]:
  """analysis.json's `profile`: per profiled point, how far its trace is trusted and its phases.

  Returns:
    One dict per ok record with phase_s: point, padding, k, trace_coverage,
    trace_overhead, trace_dropped_steps, trace_steps_used, trusted, phase_s_scaled
    (s per untraced median step; None when not trusted), conv_share and
    conv_backward_share (of the scaled phases), non_conv_s and conv_s (s per step outside and
    inside the conv layers), alone (alone_vs_profiled),
    alone_flagged (phases whose ratio is past ALONE_FLAG).
  """
  out = []
  for r in ok:
    if not r.get('phase_s'):
      continue
    ph = scaled_phases(r)
    total = sum(ph.values()) if ph else 0
    alone = alone_vs_profiled(r)
    out.append({
        'point': r.get('point'), 'padding': r.get('padding'), 'k': r.get('kernel_size'),
        'trace_coverage': r.get('trace_coverage'), 'trace_overhead': r.get('trace_overhead'),
        'trace_dropped_steps': r.get('trace_dropped_steps'),
        'trace_steps_used': r.get('trace_steps_used'), 'trusted': ph is not None,
        'phase_s_scaled': ph,
        'conv_share': (sum(v for k, v in ph.items() if k.startswith('conv')) / total
                       if ph and total else None),
        'conv_backward_share': _backward_share(ph) if ph else None,
        # What the step spends outside the convolutions (dense, pools, ReLU, loss, Adam, other):
        # set beside the line fit's fixed part in the plain answer.
        'non_conv_s': sum(v for k, v in ph.items() if not k.startswith('conv')) if ph else None,
        'conv_s': sum(v for k, v in ph.items() if k.startswith('conv')) if ph else None,
        'largest_phase': max(ph, key=ph.get) if ph else None,
        'alone': alone, 'alone_flagged': [a['phase'] for a in alone if a['flagged']]})
  return out
