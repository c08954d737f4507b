"""The plain answer: 3-6 sentences in words, every number from this run, each with its source.

Each number in the sentences is made by `_num`, which records where it comes
from: a record field (`('rec', point, field, index...)`) or an analysis.json
path (`('json', key, ...)`), and how it was made from them (the value itself,
or the ratio of two). tests/analysis/plain_test.py walks the sentences' numbers
and finds each one there.
"""
from __future__ import annotations

from typing import Sequence

from kernelscale.analysis import claims, repeats

# One short name per claim, used in the answer, the claims table and the terminal.
CLAIM_NAMES = {
    1: 'work per output position grows like k²',
    2: 'more filters multiply the work',
    3: 'pooling gets less effective',
    4: 'bigger kernels need more memory',
    5: 'the optimizer takes longer',
    6: 'bigger kernels cost more gradient communication',  # runs with a devices axis (analysis/comm.py)
}

RECEPTIVE_FIELD_COMMAND = 'python run.py --config=experiments/receptive_field.py'


class _Numbers:
  """Formats numbers and remembers each one's text, value and source."""

  def __init__(self):
    self.items: list[dict] = []

  def num(self, value: float, fmt: str, source: list, op: str = 'value',
          scale: float = 1.0) -> str:
    text = format(value * scale if scale != 1 else value, fmt)
    self.items.append({'text': text, 'value': value, 'fmt': fmt, 'scale': scale, 'op': op,
                       'source': source})
    return text

  def field(self, rec: dict, field: str, fmt: str, scale: float = 1.0, *index) -> str:
    v = rec[field]
    for i in index:
      v = v[i]
    # A point timed several times (config.repeats) is analysis.json's merged median.
    src = ('json', 'merged', rec['point'], field) if (
        rec.get('repeats_merged') and field in repeats.RESCALED_FIELDS) else (
        'rec', rec.get('point'), field)
    return self.num(v, fmt, [(*src, *index)], scale=scale)

  def ratio(self, a: dict, b: dict, field: str, fmt: str) -> str:
    """b[field] / a[field]."""
    src = lambda r: (('json', 'merged', r['point'], field) if (  # noqa: E731
        r.get('repeats_merged') and field in repeats.RESCALED_FIELDS) else ('rec', r.get('point'), field))
    return self.num(b[field] / a[field], fmt, [src(b), src(a)], op='ratio')

  def k(self, rec: dict) -> str:
    return self.num(rec['kernel_size'], 'd', [('rec', rec.get('point'), 'kernel_size')])


def _claim(claim_list, cid):
  return next((c for c in claim_list if c['id'] == cid), None)


def _epoch(n: _Numbers, lo: dict, hi: dict, pad: str, eps: list[dict], st: dict | None) -> str:
  measured = lo.get('epoch_s_kind') == 'measured' and hi.get('epoch_s_kind') == 'measured'
  e = next(((j, x) for j, x in enumerate(eps) if x['point'] == hi.get('point')
            and x['measured_over_projected']), None)
  vs = (f', at k={n.k(hi)} ×{n.num(e[1]["measured_over_projected"], ".2f", [("json", "epochs", e[0], "measured_over_projected")])} '
        'the steps × median step projection') if measured and e else ''
  how = (f'measured: one real pass over the training set{vs}' if measured else
         f'projected: {n.field(lo, "steps_per_epoch", "d")} steps × the median step, not a '
         'measured epoch') if lo.get('steps_per_epoch') else (
         'measured' if measured else 'projected')
  return (f'Going from a {n.k(lo)}×{n.k(lo)} to a {n.k(hi)}×{n.k(hi)} '
          f'kernel ({pad} padding), one training epoch grows from '
          f'{n.field(lo, "epoch_s", ".1f")} s to {n.field(hi, "epoch_s", ".1f")} s '
          f'(×{n.ratio(lo, hi, "epoch_s", ".2f")}; {how})' + _to_target(n, lo, hi, st) + '.')


def _to_target(n: _Numbers, lo: dict, hi: dict, st: dict | None) -> str:
  """How many steps and seconds each end needed to reach the target test accuracy; '' if unmeasured.

  st is claim 5's `steps_to_target` (claims.steps_to_target): its rule says whether the
  larger kernel needed more steps.
  """
  if st is None or not (lo.get('accuracy_curve') and hi.get('accuracy_curve')):
    return ''
  def one(r):
    if r.get('steps_to_target') is None:
      return f'k={n.k(r)} not within its {n.field(r, "accuracy_curve", "d", 1.0, -1, 0)} steps'
    return (f'k={n.k(r)} after {n.field(r, "steps_to_target", "g")} steps '
            f'({n.field(r, "train_s_to_target", ".1f")} s of training)')
  a, b = lo.get('steps_to_target'), hi.get('steps_to_target')
  verdict = ('' if st['more_steps'] is None else
             ', so the larger kernel needed more steps as well as longer ones' if st['more_steps']
             else ', within one evaluation interval of each other: too close to say the larger kernel '
             'needed more steps; it needed longer ones' if b > a
             else ', so the larger kernel needed no more steps, only longer ones')
  both = a is not None and b is not None and lo.get('train_s_to_target')
  total = (f'; in all, reaching it took ×{n.ratio(lo, hi, "train_s_to_target", ".1f")} the '
           'training time' if both else '')
  return (f'; test accuracy first reached {n.field(lo, "target_accuracy", "g")} at '
          f'{one(lo)} and at {one(hi)}{verdict}{total} (test set evaluated every '
          f'{n.field(lo, "eval_every", "d")} steps; ' + (
              f'median of {len(lo["seeds"])} seeds)' if len(lo.get('seeds') or []) > 1 else
              'one seed, and this count moves from seed to seed: `--config.repeats=3` trains '
              'three)'))


def _why(n: _Numbers, lo: dict, hi: dict, claim_list, prof: list[dict], g: str,
         fits: dict) -> str:
  c1 = _claim(claim_list, 1)
  taps = (c1 or {}).get('numbers', {}).get('taps_per_position') or [None, None]
  i1 = claim_list.index(c1) if c1 else None
  parts = []
  if taps[0] and taps[1]:
    ratio = taps[1] / taps[0]
    kr = (hi['kernel_size'] / lo['kernel_size']) ** 2
    parts.append(
        f'the convolutions\' work per output position grows with the kernel taps that touch '
        f'real pixels, {n.num(taps[0], ".1f", [("json", "claims", i1, "numbers", "taps_per_position", 0)])} '
        f'taps per output pixel (weighted by each conv layer\'s work) at k={lo["kernel_size"]} and '
        f'{n.num(taps[1], ".1f", [("json", "claims", i1, "numbers", "taps_per_position", 1)])} '
        f'at k={hi["kernel_size"]} '
        f'(×{n.num(ratio, ".1f", [("json", "claims", i1, "numbers", "taps_per_position", 1), ("json", "claims", i1, "numbers", "taps_per_position", 0)], op="ratio")}, '
        f'not ×{n.num(kr, ".1f", [("json", "claims", i1, "numbers", "k2_ratio")])}: taps on the '
        'zero padding multiply nothing, so XLA does not compute them, and this count leaves them '
        'out too)')
  if lo.get('achieved_flops_per_s') and hi.get('achieved_flops_per_s'):
    parts.append(_rate(n, lo, hi, g, fits, prof))
  ph = next((p for p in prof if p['point'] == hi.get('point') and p['trusted']), None)
  pl = next((p for p in prof if p['point'] == lo.get('point') and p['trusted']), None)
  if ph and ph.get('conv_backward_share') is not None:
    i = prof.index(ph)
    share = lambda p, j: n.num(p['conv_backward_share'], '.0f',  # noqa: E731
                               [('json', 'profile', j, 'conv_backward_share')], scale=100)
    if pl and pl.get('conv_backward_share') is not None:
      parts.append(f'and the convolutions\' backward passes (input and filter gradients) take '
                   f'{share(pl, prof.index(pl))}% of the profiled step at k={lo["kernel_size"]} '
                   f'and {share(ph, i)}% at k={hi["kernel_size"]}')
    else:
      parts.append(f'and at k={hi["kernel_size"]} the convolutions\' backward passes (input and '
                   f'filter gradients) take {share(ph, i)}% of the profiled step')
  c2 = _claim(claim_list, 2)
  if c2 and c2['numbers'].get('measured'):
    i2, m = claim_list.index(c2), c2['numbers']
    e = m['width_exponent'][str(m['k_to'])]['exponent']
    parts.append(f'wider layers multiply it: at k={m["k_to"]} step time grows like '
                 f'(c_in·c_out)^{n.num(e, ".2f", [("json", "claims", i2, "numbers", "width_exponent", str(m["k_to"]), "exponent")])} '
                 f'({c2["verdict"]}: {CLAIM_NAMES[2]})')
  if not parts:
    return ''
  return 'Why: ' + '; '.join(parts) + '.'


def _rate(n: _Numbers, lo: dict, hi: dict, g: str, fits: dict, prof: list[dict]) -> str:
  """Why the step grows by less (or more) than its work: work ratio ÷ rate ratio = time ratio.

  achieved_flops_per_s is xla_flops / step_s_median, so the three ratios are one
  identity. With a trusted profile at both ends the reasons are measured: the
  convolutions' own time against their work, and the rest of the step. Without
  one, a rate that rises with k is explained by the straight-line fit's
  intercept (step time = a + b·FLOPs) when a is positive past two standard
  errors: a fixed part of each step that the larger steps spread thinner.
  """
  rate = (f'{n.field(lo, "achieved_flops_per_s", ".0f", 1e-9)} → '
          f'{n.field(hi, "achieved_flops_per_s", ".0f", 1e-9)} billion operations per second')
  if not (lo.get('xla_flops') and hi.get('xla_flops')):
    return f'the machine runs that work at {rate}'
  work = (f'with the layers that do not grow, the whole step does '
          f'×{n.ratio(lo, hi, "xla_flops", ".2f")} the work')
  time = f'×{n.ratio(lo, hi, "step_s_median", ".2f")}'
  ends = {p['point']: (j, p) for j, p in enumerate(prof)
          if p.get('conv_s') and p.get('non_conv_s') is not None}
  conv_work = lo.get('analytic_conv_flops') and hi.get('analytic_conv_flops')
  if lo.get('point') in ends and hi.get('point') in ends and conv_work:
    # Measured, not fitted: the profile splits each step into convolutions and the rest.
    (j1, p1), (j2, p2) = ends[lo['point']], ends[hi['point']]
    conv_t = n.num(p2['conv_s'] / p1['conv_s'], '.1f', [('json', 'profile', j2, 'conv_s'),
                                                       ('json', 'profile', j1, 'conv_s')], op='ratio')
    rest = (f'{n.num(p1["non_conv_s"], ".1f", [("json", "profile", j1, "non_conv_s")], scale=1e3)} → '
            f'{n.num(p2["non_conv_s"], ".1f", [("json", "profile", j2, "non_conv_s")], scale=1e3)} ms')
    faster = p2['conv_s'] / p1['conv_s'] < hi['analytic_conv_flops'] / lo['analytic_conv_flops']
    return (f'{work} but takes {time} as long, for two measured reasons: the convolutions\' own '
            f'profiled time grows ×{conv_t} for ×{n.ratio(lo, hi, "analytic_conv_flops", ".1f")} '
            f'their work ({"larger convolutions run at a higher rate" if faster else "no faster per operation"}), '
            f'and the rest of the step (dense layers, pooling, activations, loss, optimizer) grows '
            f'only {rest} per step; in all the step runs at {rate}')
  lin = (fits.get(g) or {}).get('linear_step_s_vs_xla_flops') or {}
  a, se = lin.get('a'), lin.get('a_se')
  if hi['achieved_flops_per_s'] > lo['achieved_flops_per_s'] and a and se and a > 2 * se:
    src = [('json', 'fits', g, 'linear_step_s_vs_xla_flops', 'a')]
    return (f'{work} but takes only {time} as long, because about {n.num(a, ".1f", src, scale=1e3)} ms '
            'of every step does not grow with k (the fixed part of a straight line fitted through '
            f'step time against work), so the average rate rises, {rate}')
  r = hi['achieved_flops_per_s'] / lo['achieved_flops_per_s']
  how = ('at about the same rate' if 1 / claims.GROWS <= r <= claims.GROWS else
         'faster at large k' if r > 1 else 'slower at large k')
  return f'{work}, and the processor runs it {how}, {rate}, so the step takes {time} as long'


def _refuted(n: _Numbers, claim_list) -> str:
  """One clause per claim that does not hold, with its deciding number."""
  clauses = []
  for c in claim_list:
    if c['verdict'] != claims.NOT_HOLD:
      continue
    i, nb = claim_list.index(c), c['numbers']
    if c['id'] == 4 and nb.get('temp_ratio') is not None:
      clauses.append(f'memory (XLA\'s scratch memory per step ×'
                     f'{n.num(nb["temp_ratio"], ".2f", [("json", "claims", i, "numbers", "temp_ratio")])} '
                     'over the kernel range)')
    elif c['id'] == 5 and nb.get('share_of_growth') is not None:
      share = n.num(nb["share_of_growth"], ".1f", [("json", "claims", i, "numbers", "share_of_growth")],
                    scale=100)
      # A share at or under zero is an update that did not grow: say so, not "-0.3% of".
      clauses.append(f'the optimizer (the Adam update, timed alone, is {share}% of the step-time '
                     'growth)' if float(share) > 0 else
                     f'the optimizer (the Adam update, timed alone, did not grow with k: {share}% '
                     'of the step-time growth, within timing noise)')
    elif c['id'] == 3:
      seen, parts = set(), []
      for j, (v, g) in enumerate(zip(nb.get('activation_ratios') or [],
                                     nb.get('activation_groups') or [])):
        pad = g.partition(' ')[0]
        if pad not in seen:  # one per padding (a filters run has several widths per padding)
          seen.add(pad)
          parts.append(f'×{n.num(v, ".2f", [("json", "claims", i, "numbers", "activation_ratios", j)])} '
                       f'with {pad} padding')
      clauses.append('pooling (the activations left after pooling do not grow: '
                     + ', '.join(parts) + ')' if parts else 'pooling')
    else:
      clauses.append(CLAIM_NAMES[c['id']])
  if not clauses:
    return ''
  return 'What does not explain it: ' + '; '.join(clauses) + '.'


def _anomaly(n: _Numbers, result: dict, ok: Sequence[dict]) -> str:
  loop = result.get('unoptimized_loop_points') or []
  if not loop:
    return ''
  best = result.get('prediction_model')
  off = {p['where']: (j, p) for j, p in enumerate((result['loo'].get(best) or {}).get('set_apart')
                                                  or [])} if best else {}
  parts = []
  for p in loop:
    phases = ', '.join(c.replace('/', '\'s ').replace('backward_input', 'input gradient')
                       .replace('backward_filter', 'filter gradient') for c in p['unoptimized_convs'])
    txt = f'{p["where"]} ({phases})'
    j, sa = off.get(p['where'], (None, None))
    if sa and sa.get('predicted_s'):
      src = ('json', 'loo', best, 'set_apart', j)
      txt += (f', where the step took {n.num(sa["actual_s"] / sa["predicted_s"], ".1f", [(*src, "actual_s"), (*src, "predicted_s")], op="ratio")} '
              'times as long as a fit through the other points predicts')
    parts.append(txt)
  where = parts[0] if len(parts) == 1 else '; '.join(parts[:-1]) + '; and at ' + parts[-1]
  return ('Anomaly: XLA:CPU ran a convolution as its own slow loop (generic code) instead '
          'of its optimized convolution library, at ' + where
          + ('' if ok and ok[0].get('conv_algo') == 'auto' else
             '; `--config.conv_algo=auto` (not the default) computes such layers with another '
             'algorithm, e.g. a DFT-based convolution; this run did not time it') + '.')


def _todo(result: dict) -> str:
  designs = claims.design_sentence(result.get('same_receptive_field') or [])
  if designs:
    return 'What to do: ' + designs[0].lower() + designs[1:]
  return ('What to do: time designs that see the same window for less work (stacked small '
          'kernels, a tall then a wide kernel, a dilated kernel) with '
          f'`{RECEPTIVE_FIELD_COMMAND}`; this run did not time them.')


def plain_answer(ok: Sequence[dict], groups, result: dict) -> dict:
  """3-6 plain sentences answering the question for this run, and their numbers' sources.

  Args:
    ok: ok records; groups: fits.group_points(ok); result: the analysis so far
      (needs claims, loo, prediction_model, unoptimized_loop_points,
      same_receptive_field, profile).

  Returns:
    {'sentences': [...], 'numbers': [{text, value, fmt, scale, op, source}]}.
  """
  g = claims.primary_group(groups)
  n = _Numbers()
  if g is None:
    return {'sentences': ['Not enough points to answer: the run needs at least two kernel sizes '
                          'of one padding with status ok.'], 'numbers': []}
  lo, hi = groups[g][0], groups[g][-1]
  pad = g.partition(' ')[0]
  c5 = _claim(result['claims'], 5)
  st = (c5 or {}).get('numbers', {}).get('steps_to_target')
  out = [_epoch(n, lo, hi, pad, result.get('epochs') or [], st)
         if lo.get('epoch_s') and hi.get('epoch_s') else '',
         _why(n, lo, hi, result['claims'], result.get('profile') or [], g,
              result.get('fits') or {}),
         _refuted(n, result['claims']), _anomaly(n, result, ok), _todo(result)]
  busy = [r for r in ok if (r.get('other_cpu_share') or 0) >= claims.CONTENDED_SHARE]
  if busy:
    r = max(busy, key=lambda r: r['other_cpu_share'])
    where = ', '.join(f'{p["padding"]} k={n.k(p)}' for p in busy[:4]) + (
        f' and {len(busy) - 4} more' if len(busy) > 4 else '')
    which = "that point's time" if len(busy) == 1 else 'those times'
    rest = ('' if len(busy) == len(ok) else
            '; the other points were timed with little other load')
    ends = [p for p in busy if p is lo or p is hi]
    caution = (f'Caution: other programs used up to '
               f'{n.field(r, "other_cpu_share", ".0f", 100)}% of the processor while this run '
               f'timed {where}, so {which} may be inflated{rest}')
    if ends:
      # The answer's ratios compare lo with hi: a loaded end skews every one of them, so the
      # reader meets the caution before the numbers.
      out.insert(0, caution + f'; the ratios below compare k={lo["kernel_size"]} with '
                 f'k={hi["kernel_size"]}, so they carry that inflation (rerun on a quiet machine).')
    else:
      out.append(caution + '.')
  return {'sentences': [s for s in out if s], 'numbers': n.items}
