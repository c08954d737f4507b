"""Which profiled phase times to trust, and on which scale (records only, no jax).

A record's `phase_s` holds per-phase medians over its traced steps (outlier
steps dropped, measure/profiling.py), in traced-step seconds. Tracing slows
the steps it records (`trace_overhead` = traced / untraced median), so the
tables put phases on the untraced median's scale: phase × step_s_median /
trace_step_s_median. A point's phases are trusted only when the trace
attributes between MIN_ and MAX_TRACE_COVERAGE of its own steps' wall time.
"""
from __future__ import annotations

MIN_TRACE_COVERAGE, MAX_TRACE_COVERAGE = 0.8, 1.2
# A conv phase timed alone and its profiled time (scaled) disagree past this ratio.
ALONE_FLAG = 1.3


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


def alone_vs_profiled(rec: dict) -> list[dict]:
  """Each conv phase timed alone (record field conv_alone_s) against its scaled profiled time.

  Returns:
    [{phase, alone_s, profiled_s, ratio (profiled / alone), flagged (ratio
    outside 1/ALONE_FLAG..ALONE_FLAG)}]; [] without both.
  """
  alone, ph = rec.get('conv_alone_s') or {}, scaled_phases(rec) or {}
  out = []
  for k, a in sorted(alone.items()):
    p = ph.get(k)
    if not a or p is None:
      continue
    r = p / a
    out.append({'phase': k, 'alone_s': a, 'profiled_s': p, 'ratio': r,
                'flagged': not 1 / ALONE_FLAG <= r <= ALONE_FLAG})
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
    conv_backward_share (of the scaled phases), alone (alone_vs_profiled),
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
        'largest_phase': max(ph, key=ph.get) if ph else None,
        'alone': alone, 'alone_flagged': [a['phase'] for a in alone if a['flagged']]})
  return out
