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
# Accuracy mode: each repeat trained with its own seed; the merged record holds their medians.
_SEEDED = ('test_accuracy', 'steps_to_target', 'train_s_to_target')
# The fields a merged record holds other values in than its first repeat's record.
RESCALED_FIELDS = ('step_s_median', 'other_cpu_share') + _RESCALED + _SEEDED


def _median_to_target(rs: Sequence[dict], field: str):
  """Median over seeds, a seed that never reached the target counting as the slowest; None
  when the median seed never reached it."""
  vals = sorted((r.get(field) for r in rs), key=lambda v: math.inf if v is None else v)
  mid = len(vals) // 2
  pair = vals[mid - 1:mid + 1] if len(vals) % 2 == 0 else [vals[mid]]
  if any(v is None for v in pair):
    return None
  return float(np.mean(pair))


def _merge_seeds(m: dict, rs: Sequence[dict]) -> None:
  """Accuracy records: per-seed lists, and medians over the seeds in the merged record."""
  m['seeds'] = [r.get('seed') for r in rs]
  m['test_accuracy_repeats'] = [r.get('test_accuracy') for r in rs]
  m['test_accuracy'] = float(np.median([r['test_accuracy'] for r in rs]))
  if any(r.get('accuracy_curve') for r in rs):
    for f in ('steps_to_target', 'train_s_to_target'):
      m[f'{f}_repeats'] = [r.get(f) for r in rs]
      m[f] = _median_to_target(rs, f)
    if m['steps_to_target'] is None:
      missed = sum(r.get('steps_to_target') is None for r in rs)
      m['steps_to_target_why'] = (f'{missed} of {len(rs)} seeds did not reach '
                                  f'{m.get("target_accuracy")}')


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
    elif m.get('epoch_s_kind') == 'measured':
      m['epoch_s'] = float(np.median([r['epoch_s'] for r in rs]))
    if all(r.get('test_accuracy') is not None for r in rs):
      _merge_seeds(m, rs)
    out.append(m)
  return out


def merged_fields(ok: Sequence[dict]) -> dict:
  """analysis.json's `merged`: {point: the fields collapse changed}, for merged records only."""
  return {r['point']: {k: r.get(k) for k in ('step_s_median', 'step_s_repeats', 'repeats_merged',
                                             'other_cpu_share', 'seeds', 'test_accuracy_repeats',
                                             'steps_to_target_repeats',
                                             'train_s_to_target_repeats') + _RESCALED + _SEEDED}
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
