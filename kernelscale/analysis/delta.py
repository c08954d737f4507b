"""Delta attribution: which phases grew the step time between consecutive kernel sizes.

Built from records alone (each record's `phase_s` and step times). For
every group of points that differ only in kernel size (same model, padding,
batch, dtype, platform, XLA flags) and every pair of consecutive kernel
sizes k_a -> k_b, the increase of the step time is split into the increase
of each traced phase, plus `unattributed`: the change in the time the trace
did not cover (dispatch, gaps), so that every column sums exactly.

The step time split is the traced window's (`trace_step_s_median`): the
phases were measured on those very steps, so on a busy machine a slow or fast
window does not show up as a phantom `unattributed` change. The change of the
timed median (`step_s_median`) is shown beside it; on a quiet machine the two
agree (docs/methods.md, traces).
"""
from __future__ import annotations

UNATTRIBUTED = 'unattributed'
_GROUP_KEYS = ('model', 'padding', 'batch_size', 'dtype', 'platform', 'xla_flags')


def deltas(recs: list[dict]) -> list[dict]:
  """Per-phase step-time increase between consecutive kernel sizes.

  Args:
    recs: records (any order); only status ok records with phase_s count.

  Returns:
    A list of {'group': {key: value}, 'k_from', 'k_to', 'step_delta_s'
    (traced window), 'timed_step_delta_s' (step_s_median),
    'phase_delta_s': {phase: s, ..., 'unattributed': s}} in sweep order.
  """
  groups: dict[tuple, dict[int, dict]] = {}
  for r in recs:
    if r.get('status') != 'ok' or not r.get('phase_s') or _window(r) is None:
      continue
    key = tuple(r.get(k) for k in _GROUP_KEYS)
    groups.setdefault(key, {})[r['kernel_size']] = r  # a re-run of k replaces it
  out = []
  for key, by_k in groups.items():
    ks = sorted(by_k)
    for a, b in zip(ks, ks[1:]):
      ra, rb = by_k[a], by_k[b]
      phases = sorted(set(ra['phase_s']) | set(rb['phase_s']))
      d = {p: rb['phase_s'].get(p, 0.0) - ra['phase_s'].get(p, 0.0) for p in phases}
      step = _window(rb) - _window(ra)
      d[UNATTRIBUTED] = step - sum(d.values())
      timed = (rb['step_s_median'] - ra['step_s_median']
               if rb.get('step_s_median') is not None and ra.get('step_s_median') is not None
               else None)
      out.append({'group': dict(zip(_GROUP_KEYS, key)), 'k_from': a, 'k_to': b,
                  'step_delta_s': step, 'timed_step_delta_s': timed, 'phase_delta_s': d})
  return out


def _window(r: dict) -> float | None:
  """Step time of the traced window (older records: the timed median)."""
  v = r.get('trace_step_s_median')
  return v if v is not None else r.get('step_s_median')
