"""Delta attribution: which phases grew the step time between consecutive kernel sizes.

Built from records alone (each record's `phase_s` and step times). For
every group of points that differ only in kernel size (same model, padding,
batch, dtype, platform, XLA flags) and every pair of consecutive kernel
sizes k_a -> k_b, the increase of the step time is split into the increase
of each traced phase, plus `unattributed`: the change in the time the trace
did not cover (dispatch, gaps), so that every column sums exactly.

Only trusted points count (trace_coverage in range, analysis/profile.py),
and one statistic: each phase is its median over the kept traced steps, put on
the untraced median step's scale (profile.scaled_phases), and the step change
is the change of `step_s_median`. `unattributed` is then the change of the
time the trace did not cover on that scale.
"""
from __future__ import annotations

from kernelscale.analysis import profile

UNATTRIBUTED = 'unattributed'
_GROUP_KEYS = ('model', 'padding', 'batch_size', 'dtype', 'platform', 'xla_flags')


def deltas(recs: list[dict]) -> list[dict]:
  """Per-phase step-time increase between consecutive kernel sizes.

  Args:
    recs: records (any order); only status ok records with trusted phase_s count.

  Returns:
    A list of {'group': {key: value}, 'k_from', 'k_to', 'step_delta_s'
    (change of step_s_median), 'timed_step_delta_s' (the same, kept for readers),
    'phase_delta_s': {phase: s, ..., 'unattributed': s}} in sweep order.
  """
  groups: dict[tuple, dict[int, dict]] = {}
  for r in recs:
    if (r.get('status') != 'ok' or r.get('step_s_median') is None
        or profile.scaled_phases(r) is None):
      continue
    key = tuple(r.get(k) for k in _GROUP_KEYS)
    groups.setdefault(key, {})[r['kernel_size']] = r  # a re-run of k replaces it
  out = []
  for key, by_k in groups.items():
    ks = sorted(by_k)
    for a, b in zip(ks, ks[1:]):
      pa, pb = profile.scaled_phases(by_k[a]), profile.scaled_phases(by_k[b])
      phases = sorted(set(pa) | set(pb))
      d = {p: pb.get(p, 0.0) - pa.get(p, 0.0) for p in phases}
      step = by_k[b]['step_s_median'] - by_k[a]['step_s_median']
      d[UNATTRIBUTED] = step - sum(d.values())
      out.append({'group': dict(zip(_GROUP_KEYS, key)), 'k_from': a, 'k_to': b,
                  'step_delta_s': step, 'timed_step_delta_s': step, 'phase_delta_s': d})
  return out
