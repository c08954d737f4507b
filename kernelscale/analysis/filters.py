"""Claim 2 ("more filters multiply that work"), measured from a filters axis (config.features).

A run with several conv widths (experiments/filters.py) gives, at each kernel
size, step time against the filter product c_in·c_out of the widest conv layer
(its last). Two numbers decide the claim: the exponent e of step ∝ (c_in·c_out)^e
at the largest k, and how much the growth in k (step at the largest k minus
step at the smallest) is multiplied from the narrowest to the widest network.
Step times are medians over repeats when the run has them.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from kernelscale.analysis import fits

COMMAND = 'python run.py --config=experiments/filters.py'
WIDTH_EXPONENT = 0.5   # step time grows at least like sqrt(c_in·c_out): the filters multiply it
GROWS = 1.05


def widths(rec: dict) -> tuple[int, ...] | None:
  f = rec.get('features')
  if not f:
    return None
  return tuple(int(x) for x in str(f).split(','))


def product(rec: dict) -> int | None:
  """c_in·c_out of the last (widest) conv layer."""
  w = widths(rec)
  if not w:
    return None
  return w[-1] * (w[-2] if len(w) > 1 else int(rec.get('input_channels') or 1))


def table(ok: Sequence[dict]) -> dict:
  """{padding: {k: {features: median step_s}}} for points with an explicit width."""
  out: dict = {}
  for r in ok:
    if widths(r) is None or r.get('step_s_median') is None:
      continue
    out.setdefault(r['padding'], {}).setdefault(r['kernel_size'], {}).setdefault(
        r['features'], []).append(r['step_s_median'])
  return {p: {k: {f: float(np.median(v)) for f, v in fs.items()} for k, fs in ks.items()}
          for p, ks in out.items()}


def measured(ok: Sequence[dict]) -> dict | None:
  """The numbers claim 2 turns on, or None without two widths at two kernel sizes."""
  tab = table(ok)
  best = None
  for pad, ks in sorted(tab.items(), key=lambda kv: kv[0] != 'SAME'):
    feats = sorted({f for fs in ks.values() for f in fs},
                   key=lambda f: product({'features': f}))
    full = sorted(k for k, fs in ks.items() if all(f in fs for f in feats))
    if len(feats) >= 2 and len(full) >= 2:
      best = (pad, ks, feats, full)
      break
  if best is None:
    return None
  pad, ks, feats, full = best
  lo_k, hi_k = full[0], full[-1]
  prods = [product({'features': f}) for f in feats]
  per_k = {}
  for k in full:
    fit = fits.ols([math.log(p) for p in prods], [math.log(ks[k][f]) for f in feats])
    per_k[str(k)] = {'exponent': fit['slope'], 'exponent_se': fit['slope_se']}
  growth = {f: ks[hi_k][f] - ks[lo_k][f] for f in feats}
  g0, g1 = growth[feats[0]], growth[feats[-1]]
  return {'padding': pad, 'k_from': lo_k, 'k_to': hi_k, 'features': feats, 'products': prods,
          'step_s': {str(k): {f: ks[k][f] for f in feats} for k in full},
          'width_exponent': per_k, 'growth_s': growth,
          'growth_multiplier': g1 / g0 if g0 > 0 else None,
          'product_multiplier': prods[-1] / prods[0]}


def verdict(m: dict, words: tuple[str, str, str]) -> tuple[str, str, dict]:
  """(verdict, evidence, numbers) of claim 2 from `measured`; words: holds, partly, does not."""
  HOLDS, PARTLY, NOT_HOLD = words  # pylint: disable=invalid-name
  e = m['width_exponent'][str(m['k_to'])]
  mult = m['growth_multiplier']
  big = e['exponent'] >= WIDTH_EXPONENT
  multiplies = mult is not None and mult > GROWS
  got = HOLDS if big and multiplies else PARTLY if big or multiplies else NOT_HOLD
  close = e['exponent_se'] is not None and abs(e['exponent'] - WIDTH_EXPONENT) < e['exponent_se']
  if close:
    got = 'inconclusive'  # claims.INCONCLUSIVE: the exponent is within one SE of its threshold
  se = f' ± {e["exponent_se"]:.2f}' if e['exponent_se'] is not None else ''
  grow = ', '.join(f'{f}: {v * 1e3:+.1f} ms' for f, v in m['growth_s'].items())
  exps = ', '.join(f'k={k}: {v["exponent"]:.2f}' for k, v in m['width_exponent'].items())
  ev = (f'{m["padding"]}, widths {" / ".join(m["features"])} (c_in·c_out of the last conv '
        f'{" / ".join(map(str, m["products"]))}): step ∝ (c_in·c_out)^e with e {exps} '
        f'(k={m["k_to"]}: {e["exponent"]:.2f}{se}); growth from k={m["k_from"]} to '
        f'k={m["k_to"]}: {grow} ({"×" + format(mult, ".2f") if mult else "no growth"} from the narrowest to the widest for ×'
        f'{m["product_multiplier"]:.0f} the c_in·c_out). Rule: holds if e ≥ '
        f'{WIDTH_EXPONENT} at the largest k AND the width multiplies the growth in k '
        f'(>×{GROWS}); partly if one; does not hold if neither; inconclusive when e lies within '
        'one standard error of its threshold.')
  return got, ev, dict(m, measured=True)
