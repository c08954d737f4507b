"""From records to an answer: roofline, scaling fits, prediction, claim verdicts.

Reads results.jsonl records (and a ceilings entry, when one was measured) and
never measures. Everything here is a pure function of those dicts, so it is
tested from fixture files and re-run with `python run.py --report_only`.

- roofline per point: intensity = xla_flops / xla_bytes_accessed, attainable =
  min(peak, intensity × bandwidth), achieved fraction, and the `bound`.
- power laws y = c·k^e per group (one padding of one model/batch/dtype) fitted
  by least squares on log-log axes, exponent ± standard error; and the line
  step_s = a + b·FLOPs, which splits a fixed cost from a cost per FLOP.
- leave-one-out prediction of step time with three candidate models; the one
  with the smallest median error predicts new kernel sizes, with an interval.
  Points where XLA:CPU ran a convolution as its own unoptimized loop instead
  of a conv library (the record's `conv_impl`, from the optimized HLO) are set
  apart: they are not on the law of the others (one such convolution took
  ~10x the rest of the step here), so they neither train nor score the
  predictions; each is predicted from the others' law and shown beside it.
- verdicts on five common explanations, each from this run's numbers (see
  kernelscale/analysis/claims.py).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from kernelscale import records
from kernelscale.analysis import claims
from kernelscale.measure import hlo
from kernelscale.net import flops, models


FIT_METRICS = ('step_s_median', 'xla_flops', 'xla_bytes_accessed', 'temp_bytes', 'compile_s',
               'analytic_flops', 'analytic_conv_flops')
# A step more than this many times longer than its roofline floor is "far
# longer than both floors": fixed costs (dispatch, small ops, threading), not
# arithmetic or memory traffic, set its time.
OVERHEAD_FACTOR = 10.0
INTERVAL = 0.90  # two-sided prediction interval
# Fields that, when they differ between records, make separate fit groups.
GROUP_FIELDS = ('model', 'batch_size', 'dtype', 'xla_flags', 'data', 'cpu_conv', 'conv_algo',
                'variant')
PREDICTION_MODELS = ('power_k', 'linear_flops', 'linear_flops_pooled')
MODEL_WORDS = {
    'power_k': 'power law in k, per padding',
    'linear_flops': 'a + b·analytic FLOPs, per padding',
    'linear_flops_pooled': 'a + b·analytic FLOPs, all paddings together',
}


def ok_records(recs: Sequence[dict]) -> list[dict]:
  """Records with status ok and a positive median step time."""
  return [r for r in recs if r.get('status') == 'ok' and (r.get('step_s_median') or 0) > 0]


def _varying(recs: Sequence[dict]) -> list[str]:
  return [f for f in GROUP_FIELDS if len({str(r.get(f)) for r in recs}) > 1]


def group_points(recs: Sequence[dict], pooled: bool = False) -> dict[str, list[dict]]:
  """Groups ok records into fit groups, each sorted by kernel size.

  Args:
    recs: records (failed ones are dropped).
    pooled: True joins the paddings of otherwise equal points.

  Returns:
    {label: records}; the label is the padding (or 'all paddings') plus any
    field that differs between groups, e.g. 'SAME' or 'SAME b64'.
  """
  ok = ok_records(recs)
  vary = _varying(ok)
  out: dict[str, list[dict]] = {}
  for r in ok:
    parts = [] if pooled else [str(r.get('padding'))]
    parts += [f'{f}={r.get(f)}' if f != 'batch_size' else f'b{r.get(f)}' for f in vary]
    label = ' '.join(parts) or 'all paddings'
    out.setdefault(label, []).append(r)
  return {g: sorted(rs, key=lambda r: r['kernel_size']) for g, rs in out.items()}


# --------------------------------------------------------------------------
# Least squares


def ols(x: Sequence[float], y: Sequence[float]) -> dict | None:
  """y = intercept + slope·x by least squares, with standard errors.

  Returns:
    None when fewer than two distinct x; otherwise slope, intercept, their
    standard errors (None with 2 points: no degrees of freedom left), r2, n,
    and what a prediction interval needs (s, dof, x_mean, sxx).
  """
  x = np.asarray(x, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64)
  n = x.size
  if n < 2 or np.unique(x).size < 2:
    return None
  xm, ym = x.mean(), y.mean()
  sxx = float(((x - xm) ** 2).sum())
  slope = float(((x - xm) * (y - ym)).sum() / sxx)
  intercept = float(ym - slope * xm)
  resid = y - (intercept + slope * x)
  sst = float(((y - ym) ** 2).sum())
  r2 = 1.0 - float((resid ** 2).sum()) / sst if sst > 0 else 1.0
  dof = n - 2
  s = math.sqrt(float((resid ** 2).sum()) / dof) if dof > 0 else None
  se_slope = s / math.sqrt(sxx) if s is not None else None
  se_int = s * math.sqrt(1.0 / n + xm ** 2 / sxx) if s is not None else None
  return {'slope': slope, 'slope_se': se_slope, 'intercept': intercept,
          'intercept_se': se_int, 'r2': r2, 'n': int(n), 'dof': dof, 's': s,
          'x_mean': float(xm), 'sxx': sxx}


def _interval(fit: dict, x0: float, confidence: float = INTERVAL):
  """(center, lo, hi) of a new observation at x0; lo/hi None without dof."""
  center = fit['intercept'] + fit['slope'] * x0
  if not fit['dof'] or fit['s'] is None:
    return center, None, None
  se = fit['s'] * math.sqrt(1 + 1 / fit['n'] + (x0 - fit['x_mean']) ** 2 / fit['sxx'])
  t = float(stats.t.ppf(0.5 + confidence / 2, fit['dof']))
  return center, center - t * se, center + t * se


def power_fit(ks: Sequence[float], ys: Sequence[float | None]) -> dict:
  """y = coef·k^exponent on log-log axes.

  Points with a missing or non-positive y are left out (named in `dropped`).

  Returns:
    {exponent, exponent_se, coef, r2, n, k} or {exponent: None, reason}.
  """
  pts = [(k, y) for k, y in zip(ks, ys) if y is not None and y > 0]
  dropped = [k for k, y in zip(ks, ys) if y is None or y <= 0]
  fit = ols([math.log(k) for k, _ in pts], [math.log(y) for _, y in pts])
  if fit is None:
    return {'exponent': None, 'reason': 'needs at least two distinct kernel sizes with a value',
            'dropped_k': dropped}
  return {'exponent': fit['slope'], 'exponent_se': fit['slope_se'],
          'coef': math.exp(fit['intercept']), 'r2': fit['r2'], 'n': fit['n'],
          'k': [k for k, _ in pts], 'dropped_k': dropped}


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> dict | None:
  """y = a + b·x with standard errors, or None when x does not vary."""
  fit = ols(xs, ys)
  if fit is None:
    return None
  return {'a': fit['intercept'], 'a_se': fit['intercept_se'], 'b': fit['slope'],
          'b_se': fit['slope_se'], 'r2': fit['r2'], 'n': fit['n']}


# --------------------------------------------------------------------------
# Roofline


def peak_for(rec: dict, ceilings: dict | None) -> float | None:
  """The FLOP/s ceiling that applies to a point's dtype."""
  if not ceilings:
    return None
  if rec.get('dtype') == 'bfloat16' and ceilings.get('ceiling_bf16_flops_per_s'):
    return ceilings['ceiling_bf16_flops_per_s']
  return ceilings.get('ceiling_flops_per_s')


def roofline(rec: dict, ceilings: dict | None) -> dict:
  """Roofline numbers for one record.

  Returns:
    intensity_flops_per_byte, attainable_flops_per_s, achieved_flops_per_s,
    achieved_fraction, compute_floor_s, memory_floor_s and bound (compute,
    memory, overhead, or None with `reason` when a figure is missing); `key`
    is the record's point_key.
  """
  f, b, t = rec.get('xla_flops'), rec.get('xla_bytes_accessed'), rec.get('step_s_median')
  out = {'kernel_size': rec.get('kernel_size'), 'padding': rec.get('padding'),
         'model': rec.get('model'), 'key': point_key(rec), 'intensity_flops_per_byte': f / b if f and b else None,
         'achieved_flops_per_s': f / t if f and t else None,
         'attainable_flops_per_s': None, 'achieved_fraction': None,
         'compute_floor_s': None, 'memory_floor_s': None, 'bound': None}
  peak = peak_for(rec, ceilings)
  bw = (ceilings or {}).get('ceiling_bytes_per_s')
  if not (f and b and t and peak and bw):
    out['reason'] = ('no ceilings measured' if not (peak and bw)
                     else 'xla_flops, xla_bytes_accessed or step time missing')
    return out
  intensity = f / b
  attainable = min(peak, intensity * bw)
  floor = f / attainable  # the larger of the compute and memory floors
  out.update(attainable_flops_per_s=attainable, achieved_fraction=(f / t) / attainable,
             compute_floor_s=f / peak, memory_floor_s=b / bw)
  if t > OVERHEAD_FACTOR * floor:
    out['bound'] = 'overhead'
  else:
    out['bound'] = 'memory' if intensity * bw < peak else 'compute'
  return out


# --------------------------------------------------------------------------
# Fits and prediction


def analytic_flops_at(rec: dict, k: int) -> float:
  """analytic_flops of the train step of `rec`'s network at kernel size k.

  Computed from shapes (kernelscale.flops), not measured.

  Raises:
    models.ShapeError: when k does not fit this padding and input.
    KeyError: when the record's model is unknown here.
  """
  feats = claims.features_of(rec)
  if feats is None:
    raise KeyError(f'model {rec.get("model")!r} is not in kernelscale.models.MODELS')
  hw, c = claims.input_hw_c(rec)
  per = flops.layer_flops(feats, k, rec['padding'], rec['batch_size'], hw, c,
                          block=models.block_of(rec['model']))
  return flops.summarize(per)['analytic_flops']


def group_fits(rs: Sequence[dict]) -> dict:
  """Power laws in k for FIT_METRICS and the line step_s = a + b·FLOPs."""
  ks = [r['kernel_size'] for r in rs]
  out = {'k': ks, 'power_k': {m: power_fit(ks, [r.get(m) for r in rs]) for m in FIT_METRICS}}
  fx = [r.get('xla_flops') for r in rs]
  ok = [(x, r['step_s_median']) for x, r in zip(fx, rs) if x]
  lin = linear_fit([x for x, _ in ok], [y for _, y in ok]) if ok else None
  out['linear_step_s_vs_xla_flops'] = lin
  return out


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


def unoptimized_convs(rec: dict) -> list[str]:
  """The convolutions (layer/phase labels) XLA:CPU ran as its own unoptimized loop in this point.

  From the record's `conv_impl` (from its optimized HLO); empty when every
  convolution went to a conv library, or when nothing says.
  """
  return hlo.unoptimized_convs(rec.get('conv_impl'))


def _training_sets(model: str, recs: Sequence[dict],
                   set_apart: bool = True) -> dict[str, list[dict]]:
  """Fit groups of the points a law is fitted to: unoptimized-loop points left out."""
  return group_points([r for r in recs if not (set_apart and unoptimized_convs(r))],
                      pooled=(model == 'linear_flops_pooled'))


def _where_all(ok: Sequence[dict]) -> list[tuple[dict, str]]:
  """(record, 'VALID k=7'-style name with its group's distinguishing fields) for every ok record."""
  return [(r, f'{g} k={r["kernel_size"]}') for g, rs in group_points(ok).items() for r in rs]


def point_key(r: dict, fields: Sequence[str] = GROUP_FIELDS) -> list:
  """What tells one point of a run from another: padding, k and the fit-group fields."""
  return [r.get('padding'), r.get('kernel_size')] + [str(r.get(f)) for f in fields]


def _point(r: dict, p: float | None, where: str) -> dict:
  return {'padding': r['padding'], 'k': r['kernel_size'], 'where': where, 'key': point_key(r),
          'actual_s': r['step_s_median'], 'predicted_s': p,
          'rel_error': (p - r['step_s_median']) / r['step_s_median'] if p is not None else None}


def leave_one_out(recs: Sequence[dict], set_apart: bool = True) -> dict:
  """Leave-one-out prediction of step time for each candidate model.

  Each point is predicted from a fit to the other points of its own group
  (pooled model: of its model/batch/dtype across paddings). Points with a
  convolution run as XLA's unoptimized loop (`unoptimized_convs`) are set
  apart: left out of every prediction fit and of the error, and each
  predicted from a fit to all the other points of its group instead, so the
  report can show how far off the law it lies. `set_apart=False` scores them
  as ordinary points (the report quotes that error too).

  Returns:
    {model: {'median_abs_rel_error', 'max_abs_rel_error', 'points': [{padding,
    k, where, key, actual_s, predicted_s, rel_error}], 'set_apart': [the same
    (predicted_s None where no fit), plus 'unoptimized_convs']}}; `where` names
    the point for people ('VALID k=7', with its group's distinguishing fields),
    `key` is point_key. A model with no predictable point has a median of None.
  """
  ok = ok_records(recs)
  where = {id(r): w for r, w in _where_all(ok)}
  apart = [r for r in ok if set_apart and unoptimized_convs(r)]
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
                      unoptimized_convs=unoptimized_convs(r)))
    errs = [abs(p['rel_error']) for p in pts]
    out[model] = {'median_abs_rel_error': float(np.median(errs)) if errs else None,
                  'max_abs_rel_error': float(max(errs)) if errs else None, 'points': pts,
                  'set_apart': off}
  return out


def _group_of(rec: dict, sets: dict[str, list[dict]], pooled: bool) -> list[dict]:
  """The training group that `rec` would belong to (same fit-group fields), or []."""
  same = lambda a, b: all(str(a.get(f)) == str(b.get(f)) for f in GROUP_FIELDS) and (
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
    apart = [r['kernel_size'] for r in rs if set_apart and unoptimized_convs(r)]
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
    except models.ShapeError as e:
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


# --------------------------------------------------------------------------
# Everything


# What else must match for two designs to be compared at one k and padding.
_DESIGN_FIELDS = tuple(f for f in GROUP_FIELDS if f != 'model')


def same_receptive_field(ok: Sequence[dict]) -> list[dict]:
  """Each design of models.BLOCKS against the plain k x k conv of the same point.

  Returns:
    One row per record that has a plain twin (same padding, k and fit-group
    fields but the model) in a run that holds another design too, sorted by
    padding, k and models.BLOCKS order: {padding, k, block, model, step_s,
    step_ratio (design / plain), analytic_flops_ratio, xla_flops_ratio,
    xla_over_analytic (how many of the model's FLOPs XLA executes), params,
    test_accuracy, plain_test_accuracy, epoch_s, unoptimized_convs,
    other_cpu_share, same_as_plain (the design is the plain network at this
    k)}. [] when no point has two designs.
  """
  by: dict[tuple, list[dict]] = {}
  for r in ok:
    by.setdefault(tuple(point_key(r, _DESIGN_FIELDS)), []).append(r)
  ratio = lambda a, b: a / b if a and b else None  # noqa: E731
  rows = []
  for rs in by.values():
    plain = next((r for r in rs if records.block(r) == 'plain'), None)
    if plain is None or len(rs) < 2:
      continue
    for r in rs:
      rows.append({
          'padding': r['padding'], 'k': r['kernel_size'], 'block': records.block(r),
          'model': r.get('model'), 'step_s': r['step_s_median'],
          'step_ratio': ratio(r['step_s_median'], plain['step_s_median']),
          'analytic_flops_ratio': ratio(r.get('analytic_flops'), plain.get('analytic_flops')),
          'xla_flops_ratio': ratio(r.get('xla_flops'), plain.get('xla_flops')),
          'xla_over_analytic': ratio(r.get('xla_flops'), r.get('analytic_flops')),
          'params': r.get('params'), 'test_accuracy': r.get('test_accuracy'),
          'plain_test_accuracy': plain.get('test_accuracy'), 'epoch_s': r.get('epoch_s'),
          'unoptimized_convs': unoptimized_convs(r), 'other_cpu_share': r.get('other_cpu_share'),
          # stacked and dilated at k=3 are one 3x3 conv: the plain network itself.
          'same_as_plain': records.block(r) != 'plain' and models.same_as_plain(
              records.block(r), r['kernel_size'])})
  order = {b: i for i, b in enumerate(models.BLOCKS)}
  return sorted(rows, key=lambda x: (x['padding'], x['k'], order.get(x['block'], 99)))


def analyze(recs: Sequence[dict], ceilings: dict | None = None) -> dict:
  """The whole analysis of a run, as written to analysis.json.

  Args:
    recs: results.jsonl records.
    ceilings: this device's ceilings entry (ceilings.json), or None.

  Returns:
    {ceilings, fits, loo_median_abs_rel_error, prediction_model, loo,
    loo_all_points_median_abs_rel_error and _max_ (the chosen model's error
    with the set-apart points scored; None unless some were set apart),
    unoptimized_loop_points, set_apart_skipped (why none was set apart although
    some ran the loop, else None), roofline, same_receptive_field (each
    design against the plain conv at the same k), claims, answer, n_ok,
    n_records}.
  """
  ok = ok_records(recs)
  groups = group_points(ok)
  fits = {g: group_fits(rs) for g, rs in groups.items()}
  for g, rs in group_points(ok, pooled=True).items():
    if len({r['padding'] for r in rs}) > 1:
      xs = [(r['xla_flops'], r['step_s_median']) for r in rs if r.get('xla_flops')]
      fits[f'pooled: {g}'] = {'k': [r['kernel_size'] for r in rs],
                              'linear_step_s_vs_xla_flops': linear_fit(*zip(*xs)) if xs else None}
  loo = leave_one_out(ok)
  best = choose_model(loo)
  # Without any point set apart the two are the same computation.
  everyone = leave_one_out(ok, set_apart=False) if any(unoptimized_convs(r) for r in ok) else loo
  skipped = None
  if best is None and choose_model(everyone) is not None:
    # Setting the unoptimized-loop points apart left no law to fit: a law
    # through every point is still a prediction, so fall back to it.
    skipped = ('setting them apart left too few points to fit any law, so every point is in '
               'the fits')
    loo, best = everyone, choose_model(everyone)
  every = everyone[best] if best and any(loo[best]['set_apart']) else None
  roof = [roofline(r, ceilings) for r in ok]
  result = {
      'ceilings': ceilings,
      'fits': fits,
      'loo_median_abs_rel_error': loo[best]['median_abs_rel_error'] if best else None,
      'prediction_model': best,
      'prediction_model_words': MODEL_WORDS.get(best),
      'loo': loo,
      # The chosen model's error had the set-apart points been scored as ordinary ones.
      'loo_all_points_median_abs_rel_error': every['median_abs_rel_error'] if every else None,
      'loo_all_points_max_abs_rel_error': every['max_abs_rel_error'] if every else None,
      'unoptimized_loop_points': [{'where': w, 'unoptimized_convs': unoptimized_convs(r)}
                                  for r, w in _where_all(ok) if unoptimized_convs(r)],
      'set_apart_skipped': skipped,
      'roofline': roof,
      'same_receptive_field': same_receptive_field(ok),
      'overhead_factor': OVERHEAD_FACTOR,
      'n_ok': len(ok), 'n_records': len(recs),
  }
  result['claims'] = claims.verdicts(ok, groups, fits, roof)
  result['answer'] = claims.answer(ok, groups, fits, roof, result['claims'])
  designs = claims.design_sentence(result['same_receptive_field'])
  if designs:
    result['answer'].append(designs)
  return result
