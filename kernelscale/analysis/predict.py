"""Leave-one-out prediction of step time, and predictions at new kernel sizes.

Three candidate models (PREDICTION_MODELS) are scored by leave-one-out; the
one with the smallest median error predicts new kernel sizes, with an
interval. Points where XLA:CPU ran a convolution as its own unoptimized loop
(records.unoptimized_convs, from the optimized HLO) are set apart: they are
not on the others' law, so they neither train nor score the predictions; each
is predicted from the others' law and shown beside it.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from kernelscale import records
from kernelscale.analysis import claims
from kernelscale.analysis.fits import (INTERVAL, _interval, analytic_flops_at, group_points, ols)
from kernelscale.net import shapes

PREDICTION_MODELS = ('power_k', 'linear_flops', 'linear_flops_pooled')
MODEL_WORDS = {
    'power_k': 'power law in k, per padding',
    'linear_flops': 'a + b·analytic FLOPs, per padding',
    'linear_flops_pooled': 'a + b·analytic FLOPs, all paddings together',
}


def _fit_predictor(model: str, train: Sequence[dict]):
  """A function k_or_rec -> (center, lo, hi), or None when it cannot be fitted."""
  if model == 'power_k':
    fit = ols([math.log(r['kernel_size']) for r in train],
              [math.log(r['step_s_median']) for r in train])
    if fit is None:
      return None

    def pred_power(rec):
      c, lo, hi = _interval(fit, math.log(rec['kernel_size']))
      return math.exp(c), (math.exp(lo) if lo is not None else None), (
          math.exp(hi) if hi is not None else None)
    return pred_power
  xs = [r.get('analytic_flops') for r in train]
  if any(x is None for x in xs):
    return None
  fit = ols(xs, [r['step_s_median'] for r in train])
  if fit is None:
    return None

  def pred_linear(rec):
    x0 = rec['analytic_flops'] if rec.get('analytic_flops') is not None else (
        analytic_flops_at(rec, rec['kernel_size']))
    c, lo, hi = _interval(fit, x0)
    return c, (max(lo, 0.0) if lo is not None else None), hi
  return pred_linear


def _training_sets(model: str, recs: Sequence[dict],
                   set_apart: bool = True) -> dict[str, list[dict]]:
  """Fit groups of the points a law is fitted to: unoptimized-loop points left out."""
  return group_points([r for r in recs if not (set_apart and records.unoptimized_convs(r))],
                      pooled=(model == 'linear_flops_pooled'))


def _where_all(ok: Sequence[dict]) -> list[tuple[dict, str]]:
  """(record, 'VALID k=7'-style name with its group's distinguishing fields) for every ok record."""
  return [(r, f'{g} k={r["kernel_size"]}') for g, rs in group_points(ok).items() for r in rs]


def _point(r: dict, p: float | None, where: str) -> dict:
  return {'padding': r['padding'], 'k': r['kernel_size'], 'where': where, 'key': records.point_key(r),
          'actual_s': r['step_s_median'], 'predicted_s': p,
          'rel_error': (p - r['step_s_median']) / r['step_s_median'] if p is not None else None}


def leave_one_out(recs: Sequence[dict], set_apart: bool = True) -> dict:
  """Leave-one-out prediction of step time for each candidate model.

  Each point is predicted from a fit to the other points of its own group
  (pooled model: of its model/batch/dtype across paddings). Points with a
  convolution run as XLA's unoptimized loop (`records.unoptimized_convs`) are set
  apart: left out of every prediction fit and of the error, and each
  predicted from a fit to all the other points of its group instead, so the
  report can show how far off the law it lies. `set_apart=False` scores them
  as ordinary points (the report quotes that error too).

  Returns:
    {model: {'median_abs_rel_error', 'max_abs_rel_error', 'points': [{padding,
    k, where, key, actual_s, predicted_s, rel_error}], 'set_apart': [the same
    (predicted_s None where no fit), plus 'unoptimized_convs']}}; `where` names
    the point for people ('VALID k=7', with its group's distinguishing fields),
    `key` is records.point_key. A model with no predictable point has a median of None.
  """
  ok = records.ok_records(recs)
  where = {id(r): w for r, w in _where_all(ok)}
  apart = [r for r in ok if set_apart and records.unoptimized_convs(r)]
  out = {}
  for model in PREDICTION_MODELS:
    pts, sets = [], _training_sets(model, ok, set_apart)
    for rs in sets.values():
      for i, r in enumerate(rs):
        pred = _fit_predictor(model, rs[:i] + rs[i + 1:])
        if pred is not None:
          pts.append(_point(r, pred(r)[0], where[id(r)]))
    off = []
    for r in apart:
      train = _group_of(r, sets, pooled=(model == 'linear_flops_pooled'))
      pred = _fit_predictor(model, train) if train else None
      off.append(dict(_point(r, pred(r)[0] if pred else None, where[id(r)]),
                      unoptimized_convs=records.unoptimized_convs(r)))
    errs = [abs(p['rel_error']) for p in pts]
    out[model] = {'median_abs_rel_error': float(np.median(errs)) if errs else None,
                  'max_abs_rel_error': float(max(errs)) if errs else None, 'points': pts,
                  'set_apart': off}
  return out


def _group_of(rec: dict, sets: dict[str, list[dict]], pooled: bool) -> list[dict]:
  """The training group that `rec` would belong to (same fit-group fields), or []."""
  same = lambda a, b: all(str(a.get(f)) == str(b.get(f)) for f in records.GROUP_FIELDS) and (
      pooled or a.get('padding') == b.get('padding'))
  return next((rs for rs in sets.values() if rs and same(rs[0], rec)), [])


def choose_model(loo: dict) -> str | None:
  """The candidate that predicts the most points, and of those the smallest median error.

  A model that cannot be fitted for some points (e.g. a per-padding law where
  a padding has too few points) is not preferred for its error on the rest.
  """
  scored = [(-len(v['points']), v['median_abs_rel_error'], m) for m, v in loo.items()
            if v['median_abs_rel_error'] is not None]
  return min(scored)[2] if scored else None


def predict(recs: Sequence[dict], k: int, model: str | None = None,
            set_apart: bool = True) -> list[dict]:
  """Predicted step time at kernel size k, per padding group, with an interval.

  Args:
    recs: the records.
    k: the kernel size to predict.
    model: one of PREDICTION_MODELS; default: the best by leave-one-out.
    set_apart: leave unoptimized-loop points out of the fit (analyze's
      `set_apart_skipped` says when it fell back to keeping them).

  Returns:
    One dict per padding group: {group, padding, k, model, step_s, lo_s, hi_s,
    interval, measured_k} or, where it cannot predict, {group, padding, k,
    reason}; either with `set_apart_k` when some of the group's points ran a
    convolution as XLA's unoptimized loop (left out of the fit).
  """
  model = model or choose_model(leave_one_out(recs, set_apart)) or 'power_k'
  out = []
  pooled = _training_sets(model, recs, set_apart)
  for label, rs in group_points(recs).items():
    row = {'group': label, 'padding': rs[0]['padding'], 'k': k, 'model': model}
    apart = [r['kernel_size'] for r in rs if set_apart and records.unoptimized_convs(r)]
    if apart:
      row['set_apart_k'] = apart
    train = _group_of(rs[0], pooled, pooled=(model == 'linear_flops_pooled'))
    pred = _fit_predictor(model, train)
    if pred is None:
      row['reason'] = f'{MODEL_WORDS[model]} cannot be fitted to {len(train)} point(s)'
      out.append(row)
      continue
    try:
      # Any model: a kernel that does not fit this padding has no step time.
      claims.conv_shapes(dict(rs[0], kernel_size=k))
      c, lo, hi = pred(dict(rs[0], kernel_size=k, analytic_flops=None))
    except shapes.ShapeError as e:
      row['reason'] = str(e)
      out.append(row)
      continue
    except KeyError as e:
      row['reason'] = f'no analytic FLOPs at k={k}: {e}'
      out.append(row)
      continue
    row.update(step_s=c, lo_s=lo, hi_s=hi, interval=INTERVAL,
               measured_k=[r['kernel_size'] for r in train if r['padding'] == rs[0]['padding']])
    out.append(row)
  return out
