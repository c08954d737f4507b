"""Repeats (config.repeats): one record per point from its re-timings, and bootstrap intervals.

A run with repeats holds each point several times (record field `repeat`),
timed in interleaved order. `collapse` merges them into one record per point
whose step_s_median is the median of the repeats' medians (step_s_repeats keeps
them all). `bootstrap` resamples each point's repeats with replacement, takes
the median, and refits the step-time exponent in k and the line step = a + b·FLOPs:
its spread is the confidence interval of those fits.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from kernelscale import records
from kernelscale.analysis import fits

N_BOOT = 1000
_RESCALED = ('achieved_flops_per_s', 'epoch_s')
# The fields a merged record holds other values in than its first repeat's record.
RESCALED_FIELDS = ('step_s_median', 'other_cpu_share') + _RESCALED


def collapse(ok: Sequence[dict]) -> list[dict]:
  """One record per point (records.point_key): repeats merged; order of first appearance."""
  by: dict[tuple, list[dict]] = {}
  for r in ok:
    by.setdefault(tuple(records.point_key(r)), []).append(r)
  out = []
  for rs in by.values():
    if len(rs) == 1:
      out.append(rs[0])
      continue
    m = dict(rs[0])
    steps = [r['step_s_median'] for r in rs]
    med = float(np.median(steps))
    m.update(step_s_repeats=steps, step_s_median=med, repeats_merged=len(rs),
             other_cpu_share=max((r.get('other_cpu_share') or 0.0) for r in rs))
    if m.get('xla_flops'):
      m['achieved_flops_per_s'] = m['xla_flops'] / med
    if m.get('epoch_s_kind') == 'projected' and m.get('steps_per_epoch'):
      m['epoch_s'] = m['steps_per_epoch'] * med
    out.append(m)
  return out


def merged_fields(ok: Sequence[dict]) -> dict:
  """analysis.json's `merged`: {point: the fields collapse changed}, for merged records only."""
  return {r['point']: {k: r.get(k) for k in ('step_s_median', 'step_s_repeats', 'repeats_merged',
                                             'other_cpu_share') + _RESCALED}
          for r in ok if r.get('repeats_merged')}


def bootstrap(rs: Sequence[dict], seed: int = 0) -> dict | None:
  """Bootstrap of one group's exponent in k and line fit over its points' repeats.

  Returns:
    None unless some point has step_s_repeats; else {'n_boot', 'step_exponent':
    {'se', 'lo', 'hi'} (95%), 'line_a_s' and 'line_b_s_per_flop': {'lo', 'hi'}}.
  """
  if not any(r.get('step_s_repeats') for r in rs) or len({r['kernel_size'] for r in rs}) < 2:
    return None
  rng = np.random.default_rng(seed)
  reps = [np.asarray(r.get('step_s_repeats') or [r['step_s_median']]) for r in rs]
  lk = [math.log(r['kernel_size']) for r in rs]
  fl = [r.get('xla_flops') for r in rs]
  exps, a, b = [], [], []
  for _ in range(N_BOOT):
    y = [float(np.median(rng.choice(v, size=v.size))) for v in reps]
    f = fits.ols(lk, [math.log(v) for v in y])
    if f:
      exps.append(f['slope'])
    if all(fl):
      g = fits.ols(fl, y)
      if g:
        a.append(g['intercept'])
        b.append(g['slope'])
  pct = lambda v: {'lo': float(np.percentile(v, 2.5)), 'hi': float(np.percentile(v, 97.5))}  # noqa: E731
  return {'n_boot': N_BOOT,
          'step_exponent': dict(pct(exps), se=float(np.std(exps, ddof=1))) if exps else None,
          'line_a_s': pct(a) if a else None, 'line_b_s_per_flop': pct(b) if b else None}
