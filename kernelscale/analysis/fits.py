"""Scaling fits and the roofline, from records alone (no jax; tested from fixture files).

- fit groups: points that differ only in kernel size (and padding);
- power laws y = c·k^e per group, fitted by least squares on log-log axes,
  exponent ± standard error; and the line step_s = a + b·FLOPs, which splits
  a fixed cost from a cost per FLOP;
- roofline per point: intensity = xla_flops / xla_bytes_accessed, attainable =
  min(peak, intensity × bandwidth), achieved fraction, and the `bound`.
predict.py predicts with these fits; summary.py assembles analysis.json.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from kernelscale import records
from kernelscale.analysis import claims
from kernelscale.net import flops, shapes


FIT_METRICS = ('step_s_median', 'xla_flops', 'xla_bytes_accessed', 'temp_bytes', 'compile_s',
               'analytic_flops', 'analytic_conv_flops')
# A step more than this many times longer than its roofline floor is "far
# longer than both floors": fixed costs (dispatch, small ops, threading), not
# arithmetic or memory traffic, set its time.
OVERHEAD_FACTOR = 10.0
INTERVAL = 0.90  # two-sided prediction interval


def _varying(recs: Sequence[dict]) -> list[str]:
  return [f for f in records.GROUP_FIELDS if len({str(r.get(f)) for r in recs}) > 1]


def group_points(recs: Sequence[dict], pooled: bool = False) -> dict[str, list[dict]]:
  """Groups ok records into fit groups, each sorted by kernel size.

  Args:
    recs: records (failed ones are dropped).
    pooled: True joins the paddings of otherwise equal points.

  Returns:
    {label: records}; the label is the padding (or 'all paddings') plus any
    field that differs between groups, e.g. 'SAME' or 'SAME b64'.
  """
  ok = records.ok_records(recs)
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
    is the record's records.point_key.
  """
  f, b, t = rec.get('xla_flops'), rec.get('xla_bytes_accessed'), rec.get('step_s_median')
  out = {'kernel_size': rec.get('kernel_size'), 'padding': rec.get('padding'),
         'model': rec.get('model'), 'key': records.point_key(rec), 'intensity_flops_per_byte': f / b if f and b else None,
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
    shapes.ShapeError: when k does not fit this padding and input.
    KeyError: when the record's model is unknown here.
  """
  feats = claims.features_of(rec)
  if feats is None:
    raise KeyError(f'model {rec.get("model")!r} is not in kernelscale.net.shapes.MODEL_SPECS')
  hw, c = claims.input_hw_c(rec)
  per = flops.layer_flops(feats, k, rec['padding'], rec['batch_size'], hw, c,
                          block=shapes.block_of(rec['model']))
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
