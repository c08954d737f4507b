"""Verdicts on five common explanations of "why do bigger kernels train slower?".

Each verdict is computed from the records, the fits and the roofline of this
run and shows the numbers that decide it. The only words used are `holds`,
`partly holds`, `does not hold` and `not measured`; the rule that picks one is
spelled out next to each function and in the evidence text.

Shapes (activation sizes, taps per output position) come from
kernelscale.models and kernelscale.flops, i.e. from the network definition,
never from a new measurement.
"""
from __future__ import annotations

from typing import Sequence

from kernelscale import records
from kernelscale.analysis import clauses, comm, filters, profile
from kernelscale.net import flops, shapes


HOLDS, PARTLY, NOT_HOLD, NOT_MEASURED = 'holds', 'partly holds', 'does not hold', 'not measured'
# A deciding number within one standard error of its threshold decides nothing.
INCONCLUSIVE = 'inconclusive'
VOCABULARY = (HOLDS, PARTLY, NOT_HOLD, NOT_MEASURED, INCONCLUSIVE)
EXPONENT_TOL = 0.5      # "grows like k²": exponent within 2 ± this
DOMINANT_SHARE = 0.5    # a part that is at least half of the step dominates it
GROWS = 1.05            # a ratio above this counts as growth (5% margin for noise)
MEMORY_GROWS = 1.5      # "uses more memory": at least 1.5x from smallest to largest k
CONTENDED_SHARE = clauses.CONTENDED_SHARE
OPT_HOLDS, OPT_PARTLY = 0.5, 0.1  # optimizer share of the step-time growth
# Profiled phase times are used only when the trace attributes between these
# shares of its own steps' wall time (trace_coverage; analysis/profile.py).
MIN_TRACE_COVERAGE, MAX_TRACE_COVERAGE = profile.MIN_TRACE_COVERAGE, profile.MAX_TRACE_COVERAGE
trusted_phases = profile.trusted_phases

CLAIMS = {
    1: 'Work per output position grows with k² ("9 operations for 3×3, 25 for 5×5").',
    2: 'More filters multiply that work.',
    3: 'Pooling becomes less effective with bigger kernels, so later layers get bigger inputs.',
    4: 'Bigger kernels use more memory, and slower memory access slows training.',
    5: 'Optimisation gets harder: the optimizer takes longer to update the weights, so each '
       'epoch takes longer.',
}


def features_of(rec: dict):
  """The conv widths of a record (config.features), else of its model; None if unknown."""
  return filters.widths(rec) or shapes.features_of(rec.get('model'))


def input_hw_c(rec: dict) -> tuple[int, int]:
  """Input side and channels (the synthetic 28x28x1 unless the record says otherwise)."""
  return int(rec.get('input_hw') or 28), int(rec.get('input_channels') or 1)


def conv_shapes(rec: dict) -> list[shapes.ConvLayer] | None:
  feats = features_of(rec)
  if feats is None:
    return None
  hw, c = input_hw_c(rec)
  # A design of shapes.BLOCKS may not build every k (stacked and dilated: odd k only).
  shapes.check_block(shapes.block_of(rec['model']), rec['kernel_size'])
  return shapes.conv_layers(feats, rec['kernel_size'], rec['padding'], hw, c)


def primary_group(groups: dict[str, list[dict]]) -> str | None:
  """The SAME group with the most kernel sizes (else any group with the most), plain k x k first."""
  def n_k(g):
    return len({r['kernel_size'] for r in groups[g]})
  cands = [g for g in groups if n_k(g) >= 2]
  # The question is about one k x k conv: a same-receptive-field design
  # (shapes.BLOCKS) is the primary group only when no plain group is there.
  plain = [g for g in cands if records.block(groups[g][0]) == 'plain']
  cands = plain or cands
  same = [g for g in cands if groups[g][0]['padding'] == 'SAME']
  pool = same or cands
  return max(pool, key=n_k) if pool else None


def _ends(rs: Sequence[dict]) -> tuple[dict, dict]:
  return rs[0], rs[-1]


def _exp(fits, g, metric) -> float | None:
  return (fits.get(g, {}).get('power_k', {}).get(metric) or {}).get('exponent')


def _fmt_exp(fits, g, metric) -> str:
  f = (fits.get(g, {}).get('power_k', {}).get(metric) or {})
  if f.get('exponent') is None:
    return 'n/a'
  se = f.get('exponent_se')
  return f'{f["exponent"]:.2f}' + (f' ± {se:.2f}' if se is not None else '')


def _claim(cid: int, verdict: str, evidence: str, numbers: dict) -> dict:
  assert verdict in VOCABULARY
  return {'id': cid, 'claim': CLAIMS[cid], 'verdict': verdict, 'evidence': evidence,
          'numbers': numbers}


def taps_per_position(rec: dict) -> float | None:
  """Real (non-padding) kernel taps per conv output position, FLOP-weighted over layers.

  From analytic_phase_flops: forward MACs / (output positions × c_in × c_out).
  """
  layers, per = conv_shapes(rec), rec.get('analytic_phase_flops')
  if not layers or not per or records.block(rec) != 'plain':
    return None  # a design of shapes.BLOCKS has other convs than one k x k per layer
  macs = sum(per.get(f'{l.name}/forward', 0.0) / 2 for l in layers)
  slots = sum(rec['batch_size'] * l.out_hw ** 2 * l.c_in * l.c_out for l in layers)
  return macs / slots if slots else None


def claim_k_squared(groups, fits, g) -> dict:
  """1 holds when SAME conv work AND step time both grow like k^(2±0.5);
  partly holds when only one of them does; does not hold when neither."""
  if g is None:
    return _claim(1, NOT_MEASURED, 'needs at least two kernel sizes in one group', {})
  lo, hi = _ends(groups[g])
  we = _exp(fits, g, 'analytic_conv_flops') or _exp(fits, g, 'xla_flops')
  te = _exp(fits, g, 'step_s_median')
  if we is None or te is None:
    return _claim(1, NOT_MEASURED, f'{g}: no FLOP or time exponent', {})
  tp_lo, tp_hi = taps_per_position(lo), taps_per_position(hi)
  work_k2, time_k2 = abs(we - 2) <= EXPONENT_TOL, abs(te - 2) <= EXPONENT_TOL
  verdict = HOLDS if work_k2 and time_k2 else PARTLY if work_k2 or time_k2 else NOT_HOLD
  boot = (fits.get(g, {}).get('bootstrap') or {}).get('step_exponent') or {}
  se = boot.get('se') or (fits.get(g, {}).get('power_k', {}).get('step_s_median') or {}).get(
      'exponent_se')
  edge = 2 - EXPONENT_TOL if te < 2 else 2 + EXPONENT_TOL
  close = se is not None and abs(te - edge) < se
  if close:
    verdict = INCONCLUSIVE
  kr = (hi['kernel_size'] / lo['kernel_size']) ** 2
  taps = (f'real taps per output position {tp_lo:.1f} at k={lo["kernel_size"]} → {tp_hi:.1f} at '
          f'k={hi["kernel_size"]} (×{tp_hi / tp_lo:.2f}; k² gives ×{kr:.2f}, padding taps are '
          'skipped); ' if tp_lo and tp_hi else '')
  ev = (f'{g}: {taps}conv FLOPs ∝ k^{_fmt_exp(fits, g, "analytic_conv_flops")}, step time ∝ '
        f'k^{_fmt_exp(fits, g, "step_s_median")} (step ×'
        f'{hi["step_s_median"] / lo["step_s_median"]:.2f}). Rule: holds if both exponents are '
        f'within 2 ± {EXPONENT_TOL}, partly if one is; inconclusive when the step-time exponent '
        'lies within one standard error of its threshold'
        + (f' (here {te:.2f} ± {se:.2f}{" by bootstrap over repeats" if boot else ""} against '
           f'{edge:.1f})' if close else '') + '.')
  return _claim(1, verdict, ev, {'group': g, 'conv_flops_exponent': we, 'step_time_exponent': te,
                                 'step_time_exponent_se': se, 'threshold': edge,
                                 'taps_per_position': [tp_lo, tp_hi], 'k2_ratio': kr})


def _phase_share(rec: dict, prefix: str) -> float | None:
  ph = trusted_phases(rec)
  if not ph:
    return None
  total = sum(v for v in ph.values() if v)
  part = sum(v for k, v in ph.items() if v and k.startswith(prefix))
  return part / total if total else None


def claim_filters(groups, g, ok=()) -> dict:
  """2 does not hold when the conv layers are under half of the step (time share
  from phase_s when profiled, else FLOP share); holds when the filter product
  c_in·c_out changes along with k; partly holds when it multiplies the dominant
  work but stays fixed as k grows (so it sets the size, not the growth)."""
  m = filters.measured(ok)
  if m is not None:
    return _claim(2, *filters.verdict(m, (HOLDS, PARTLY, NOT_HOLD)))

  if g is None:
    return _claim(2, NOT_MEASURED, 'needs at least two kernel sizes in one group', {})
  lo, hi = _ends(groups[g])
  if records.block(lo) != 'plain':
    return _claim(2, NOT_MEASURED, f'{g}: the claim is about one k×k conv per layer; this group '
                  f'is the {lo["block"]} design (shapes.BLOCKS), whose convs are not k×k', {})
  mults = []
  for r in (lo, hi):
    layers, per = conv_shapes(r), r.get('analytic_phase_flops')
    if not layers or not per:
      return _claim(2, NOT_MEASURED, f'{g}: no per-layer FLOPs or shapes', {})
    taps = [flops.valid_taps_1d(l.in_hw, r['kernel_size'], r['padding']) ** 2 for l in layers]
    mults.append([per.get(f'{l.name}/forward', 0.0) / (2 * r['batch_size'] * t)
                  for l, t in zip(layers, taps)])
  flop_share = [r['analytic_conv_flops'] / r['analytic_flops'] for r in (lo, hi)]
  time_share = _phase_share(hi, 'conv')
  share, basis = (time_share, 'time') if time_share is not None else (flop_share[1], 'FLOP')
  thin = hi.get('phase_s') and time_share is None  # profiled, but trace_coverage out of range
  changes = any(abs(b / a - 1) > GROWS - 1 for a, b in zip(*mults) if a)
  # Without a filters axis the widths never vary: the shares below say how big the
  # filters' work is, not whether more filters multiply it (issue 16).
  verdict = NOT_MEASURED
  names = [l.name for l in conv_shapes(lo)]
  mult_txt = ', '.join(f'{n} {a:.0f}→{b:.0f}' for n, a, b in zip(names, *mults))
  ev = (f'{g}: MACs per real tap per output position (c_in·c_out) from k={lo["kernel_size"]} '
        f'to k={hi["kernel_size"]}: {mult_txt}; conv layers are {flop_share[0]:.0%}→'
        f'{flop_share[1]:.0%} of step FLOPs'
        + (f', {time_share:.0%} of profiled step time at k={hi["kernel_size"]}'
           if time_share is not None else '')
        + (f' (profile not used: trace_coverage {hi.get("trace_coverage"):.0%} outside '
           f'{MIN_TRACE_COVERAGE:.0%}–{MAX_TRACE_COVERAGE:.0%})' if thin else '')
        + f' ({basis} share; c_in·c_out {"changes" if changes else "is the same"} at every k). '
          'This run never varies the filters, so the claim is not measured: '
          f'`{filters.COMMAND}` times three widths at k = 3, 5, 7. Rule: holds if step '
          f'time ∝ (c_in·c_out)^e with e ≥ {filters.WIDTH_EXPONENT} at the largest k AND the '
          'growth in k is multiplied by the width; partly if one; does not hold if neither.')
  return _claim(2, verdict, ev, {'group': g, 'filter_products': mults,
                                 'conv_flop_share': flop_share, 'conv_time_share': time_share})


def claim_pooling(groups) -> dict:
  """3 holds when post-pool activations grow with k in every padding, partly
  holds in some, does not hold in none."""
  rows, grows, ratios = [], [], []
  for g, rs in groups.items():
    if len({r['kernel_size'] for r in rs}) < 2:
      continue
    lo, hi = _ends(rs)
    sl, sh = conv_shapes(lo), conv_shapes(hi)
    if not sl or not sh:
      continue
    pl = sum(l.pooled_hw ** 2 * l.c_out for l in sl)
    ph = sum(l.pooled_hw ** 2 * l.c_out for l in sh)
    dl = sum(v for k, v in lo.get('analytic_phase_flops', {}).items() if k.startswith('dense'))
    dh = sum(v for k, v in hi.get('analytic_phase_flops', {}).items() if k.startswith('dense'))
    grows.append(ph > GROWS * pl)
    ratios.append((g, ph / pl))
    sizes = lambda ls: ', '.join(f'{l.name} {l.pooled_hw}×{l.pooled_hw}×{l.c_out}' for l in ls)
    rows.append(f'{g}: post-pool activations per example k={lo["kernel_size"]} [{sizes(sl)}] = '
                f'{pl} → k={hi["kernel_size"]} [{sizes(sh)}] = {ph} (×{ph / pl:.2f}); dense-layer '
                f'FLOPs {dl / 1e9:.3f} → {dh / 1e9:.3f} GFLOP (×{dh / dl:.2f})')
  if not rows:
    return _claim(3, NOT_MEASURED, 'needs shapes at two kernel sizes of a known model', {})
  verdict = HOLDS if all(grows) else PARTLY if any(grows) else NOT_HOLD
  ev = ('; '.join(rows) + '. Every 2×2 pool still divides positions by 4. Rule: holds if '
        f'post-pool activations grow (>×{GROWS}) with k in every padding, partly in some.')
  return _claim(3, verdict, ev, {'grows_per_group': grows,
                                 'activation_groups': [g for g, _ in ratios],
                                 'activation_ratios': [v for _, v in ratios]})


def claim_memory(groups, fits, g, roof) -> dict:
  """4 holds when memory grows ≥1.5x over the k range AND most points are
  memory-bound; partly holds when only one of the two; does not hold otherwise."""
  if g is None:
    return _claim(4, NOT_MEASURED, 'needs at least two kernel sizes in one group', {})
  lo, hi = _ends(groups[g])
  bounds = [p['bound'] for p in roof if p.get('bound')]
  if lo.get('temp_bytes') is None or hi.get('temp_bytes') is None:
    return _claim(4, NOT_MEASURED, f'{g}: temp_bytes missing', {})
  if not bounds:
    return _claim(4, NOT_MEASURED, 'no roofline bound: device ceilings were not measured', {})
  tr = hi['temp_bytes'] / lo['temp_bytes'] if lo['temp_bytes'] else float('inf')
  pr = hi['params'] / lo['params']
  grows = tr >= MEMORY_GROWS or pr >= MEMORY_GROWS
  mem_share = bounds.count('memory') / len(bounds)
  mem_bound = mem_share >= DOMINANT_SHARE
  verdict = HOLDS if grows and mem_bound else PARTLY if grows or mem_bound else NOT_HOLD
  tally = ', '.join(f'{b} {bounds.count(b)}' for b in ('compute', 'memory', 'overhead')
                    if b in bounds)
  ev = (f'{g}: temp memory {lo["temp_bytes"] / 2**20:.1f} → {hi["temp_bytes"] / 2**20:.1f} MiB '
        f'(×{tr:.2f}), params {lo["params"]:,} → {hi["params"]:,} (×{pr:.2f}) from '
        f'k={lo["kernel_size"]} to k={hi["kernel_size"]}; bytes accessed ∝ '
        f'k^{_fmt_exp(fits, g, "xla_bytes_accessed")}, step time ∝ '
        f'k^{_fmt_exp(fits, g, "step_s_median")}; roofline bound over all {len(bounds)} points: '
        f'{tally}. Rule: holds if memory grows ≥×{MEMORY_GROWS} AND at least '
        f'{DOMINANT_SHARE:.0%} of points are memory-bound; partly if only one.')
  return _claim(4, verdict, ev, {'group': g, 'temp_ratio': tr, 'params_ratio': pr,
                                 'memory_bound_share': mem_share})


def optimizer_s(rec: dict) -> tuple[float | None, str | None]:
  """Optimizer seconds per step from one source at every k: the Adam update timed alone.

  The profile's optimizer/update phase is not mixed in: a profile share and a
  separate timing are two methods, and a claim compares one k with another.
  """
  if rec.get('optimizer_update_s') is not None:
    return rec['optimizer_update_s'], 'update timed alone (optimizer_update_s)'
  return None, None


def steps_to_target(rs: Sequence[dict]) -> dict | None:
  """How many training steps each k needed to reach the target test accuracy (claim 5's 2nd part).

  From the accuracy mode's curve (measure/training.py: test accuracy every
  eval_every steps). This is how many steps training needs, not how long each
  takes. Rule: "more steps" when the largest k needed more than one evaluation
  interval more than the smallest k (or never reached the target that the
  smallest k reached); "not more" when it needed no more than that; None
  without curves at both ends.

  Returns:
    {target_accuracy, eval_every, points: [{k, steps, train_s, reached}], more_steps, why}.
  """
  rs = [r for r in rs if r.get('accuracy_curve')]
  if len(rs) < 2:
    return None
  lo, hi = rs[0], rs[-1]
  every = lo.get('eval_every') or 0
  pts = [{'k': r['kernel_size'], 'steps': r.get('steps_to_target'),
          'train_s': r.get('train_s_to_target'), 'reached': r.get('steps_to_target') is not None,
          'point': r.get('point'), 'steps_each': r.get('steps_to_target_repeats'),
          'seeds': r.get('seeds')} for r in rs]
  out = {'target_accuracy': lo.get('target_accuracy'), 'eval_every': every, 'points': pts,
         'n_seeds': len(lo.get('seeds') or [lo.get('seed')])}
  a, b = lo.get('steps_to_target'), hi.get('steps_to_target')
  if a is None:
    out.update(more_steps=None, why=f'k={lo["kernel_size"]} never reached the target '
               f'({lo.get("steps_to_target_why", "")}); lower --config.target_accuracy')
  elif b is None:
    out.update(more_steps=True, why=f'k={hi["kernel_size"]} never reached the target '
               f'({hi.get("steps_to_target_why", "")}) that k={lo["kernel_size"]} reached in {a:g} steps')
  else:
    out.update(more_steps=b - a > every,
               why=f'{a:g} → {b:g} steps from k={lo["kernel_size"]} to k={hi["kernel_size"]}, '
                   f'evaluated every {every} steps')
  return out


def claim_optimizer(groups, g) -> dict:
  """5 holds when the optimizer accounts for ≥50% of the step-time growth from
  the smallest to the largest k, partly for ≥10%, does not hold below that (or
  when the step does not grow at all). Where the run trained with an accuracy
  curve, the steps to a target accuracy per k are added, labelled as how many
  steps training needs (not how long one takes); they do not change the verdict."""
  if g is None:
    return _claim(5, NOT_MEASURED, 'needs at least two kernel sizes in one group', {})
  lo, hi = _ends(groups[g])
  st = steps_to_target(groups[g])
  tail = _steps_text(st)
  (ol, src), (oh, _) = optimizer_s(lo), optimizer_s(hi)
  if ol is None or oh is None:
    return _claim(5, NOT_MEASURED, f'{g}: optimizer_update_s not recorded.' + tail,
                  {'steps_to_target': st})
  sl, sh = lo['step_s_median'], hi['step_s_median']
  d_step, d_opt = sh - sl, oh - ol
  share = d_opt / d_step if d_step > 0 else None
  if share is None:
    verdict = NOT_HOLD
  else:
    verdict = HOLDS if share >= OPT_HOLDS else PARTLY if share >= OPT_PARTLY else NOT_HOLD
  growth = (f'it is {share:.1%} of the step-time growth' if share is not None
            else 'the step did not get longer, so there is no growth to explain')
  ev = (f'{g} ({src}): optimizer {ol * 1e3:.2f} ms = {ol / sl:.1%} of the step at '
        f'k={lo["kernel_size"]} → {oh * 1e3:.2f} ms = {oh / sh:.1%} at k={hi["kernel_size"]}; '
        f'step {sl * 1e3:.1f} → {sh * 1e3:.1f} ms, optimizer {d_opt * 1e3:+.2f} ms, so {growth}. '
        f'Rule: holds if ≥{OPT_HOLDS:.0%} of the growth, partly if ≥{OPT_PARTLY:.0%}.' + (
            tail or ' How many steps training needs is not measured here (time per step only; '
            '`python run.py --config=experiments/accuracy.py:quick` measures it).'))
  return _claim(5, verdict, ev, {'group': g, 'optimizer_s': [ol, oh], 'step_s': [sl, sh],
                                 'share_of_growth': share, 'source': src,
                                 'steps_to_target': st})


def _steps_text(st: dict | None) -> str:
  """The evidence sentence on steps to the target accuracy; '' without curves."""
  if st is None:
    return ''
  def each(p):
    return (f' [seeds {"/".join(map(str, p["seeds"]))}: '
            f'{"/".join("never" if v is None else str(v) for v in p["steps_each"])}]'
            if p.get('steps_each') else '')
  per = ', '.join((f'k={p["k"]} {p["steps"]:g} steps ({p["train_s"]:.1f} s)' if p['reached']
                   else f'k={p["k"]} not reached') + each(p) for p in st['points'])
  n = st.get('n_seeds') or 1
  seeds = (f'median of {n} seeds' if n > 1 else
           'one seed: the first crossing moves from seed to seed, so compare runs with '
           '--config.repeats=3 (seeds seed, seed+1, seed+2) before trusting a difference of a few '
           'intervals')
  pts = [p['steps'] for p in (st['points'][0], st['points'][-1])]
  res = ('unknown' if st['more_steps'] is None else
         'larger kernels needed more steps' if st['more_steps'] else
         'within one evaluation interval: too close to say larger kernels needed more steps'
         if None not in pts and pts[1] > pts[0] else 'larger kernels did not need more steps')
  return (f' How many steps training needs (a separate question from how long each takes): '
          f'test accuracy {st["target_accuracy"]} was first reached at {per}; {res} '
          f'({st["why"]}; {seeds}).')


def verdicts(ok: Sequence[dict], groups, fits, roof) -> list[dict]:
  """The five claims with verdicts and evidence.

  Args:
    ok: ok records; groups: fits.group_points(ok); fits: per-group fits
      (fits.group_fits); roof: fits.roofline per ok record.

  Returns:
    [{id, claim, verdict, evidence, numbers}] for claims 1 to 5.
  """
  g = primary_group(groups)
  return [claim_k_squared(groups, fits, g), claim_filters(groups, g, ok), claim_pooling(groups),
          claim_memory(groups, fits, g, _model_roof(groups, g, roof)), claim_optimizer(groups, g)
          ] + comm.claim(ok)  # the sixth, on runs with a devices axis only (analysis/comm.py)


def _model_roof(groups, g, roof):
  """The roofline entries of the primary group's model (a run may hold other designs too)."""
  if g is None:
    return roof
  model = groups[g][0].get('model')
  return [p for p in roof if p.get('model', model) == model]


def _gap_clause(groups, fits, g) -> str:
  """Why step time grows faster or slower than FLOPs (achieved FLOP/s, line fit); '' if it doesn't."""
  te, fe = _exp(fits, g, 'step_s_median'), _exp(fits, g, 'xla_flops')
  if te is None or fe is None or abs(te - fe) <= EXPONENT_TOL:
    return ''
  lo, hi = _ends(groups[g])
  al, ah = lo.get('achieved_flops_per_s'), hi.get('achieved_flops_per_s')
  if not al or not ah:
    return ''
  rate = (f'achieved {al / 1e9:.1f} → {ah / 1e9:.1f} GFLOP/s from k={lo["kernel_size"]} to '
          f'k={hi["kernel_size"]}')
  if te < fe:
    lin = fits[g].get('linear_step_s_vs_xla_flops') or {}
    fixed = (f'; the line fit puts {lin["a"] * 1e3:.1f} ms of every step in a fixed cost that '
             f'does not grow with k ({lin["a"] / lo["step_s_median"]:.0%} of the '
             f'k={lo["kernel_size"]} step)' if lin.get('a', 0) > 0 else '')
    return (f'; time grows more slowly than FLOPs because the machine does the extra work at a '
            f'higher rate ({rate}){fixed}')
  return f'; time grows faster than FLOPs because each FLOP costs more at large k ({rate})'


def answer(ok, groups, fits, roof, claim_list) -> list[str]:
  """At most three sentences answering the question with this run's numbers."""
  g = primary_group(groups)
  if g is None:
    return ['Not enough points to answer: the run needs at least two kernel sizes of one '
            'padding with status ok.']
  lo, hi = _ends(groups[g])
  roof = _model_roof(groups, g, roof)
  pad, _, rest = g.partition(' ')  # 'SAME model=seed b8': padding, then the group's fields
  s1 = (f'With {pad} padding{f" ({rest})" if rest else ""} one training step goes from '
        f'{lo["step_s_median"] * 1e3:.1f} ms at k={lo["kernel_size"]} to {hi["step_s_median"] * 1e3:.1f} ms at k={hi["kernel_size"]} '
        f'(×{hi["step_s_median"] / lo["step_s_median"]:.2f}, step time ∝ '
        f'k^{_fmt_exp(fits, g, "step_s_median")}) while XLA counts ×'
        f'{(hi.get("xla_flops") or 0) / (lo.get("xla_flops") or 1):.2f} more FLOPs (∝ '
        f'k^{_fmt_exp(fits, g, "xla_flops")})' + _gap_clause(groups, fits, g)
        + clauses.faults_clause(groups[g]) + clauses.load_clause(groups[g]) + '.')
  fr = [p['achieved_fraction'] for p in roof if p.get('achieved_fraction') is not None]
  bounds = [p['bound'] for p in roof if p.get('bound')]
  if fr:
    top = max(sorted(set(bounds)), key=bounds.count)
    rest = [p for p in roof if p.get('bound') and p['bound'] != top]
    named = '; '.join((f'{p.get("padding")} k={p.get("kernel_size")} runs far below both limits '
                       f'({p["achieved_fraction"]:.0%} of attainable)' if p['bound'] == 'overhead' else
                       f'{p.get("padding")} k={p.get("kernel_size")} is {p["bound"]}-bound '
                       f'({p["achieved_fraction"]:.0%})') for p in rest[:3]
                      if p.get('achieved_fraction') is not None)
    s2 = (f'Steps reach {min(fr):.0%}–{max(fr):.0%} of the roofline\'s attainable FLOP/s and '
          f'{bounds.count(top)} of {len(bounds)} points are {top}-bound'
          + (' (by the roofline model, arithmetic rather than memory traffic sets their floor; '
             'they reach only part of the arithmetic peak)'
             if top == 'compute' else '') + (f'; {named}' if named else '') + '.')
  else:
    s2 = 'No device ceilings were measured, so no roofline bound is given.'
  by: dict[str, list[str]] = {}
  for c in claim_list:
    by.setdefault(c['verdict'], []).append(f'{c["id"]} ({c["name"]})' if c.get('name')
                                           else str(c['id']))
  s3 = ('Verdicts on the five usual explanations — ' + '; '.join(
      f'{v}: {", ".join(by[v])}' for v in VOCABULARY if v in by) + ' (details below).')
  return [s1, s2, s3]


def design_sentence(rows: Sequence[dict]) -> str | None:
  """What each same-receptive-field design bought at the largest k measured.

  From summary.same_receptive_field rows; None when the run compared no designs.
  """
  others = [r for r in rows
            if r['block'] != 'plain' and r.get('step_ratio') and not r.get('same_as_plain')]
  if not others:
    return None
  k = max(r['k'] for r in others)
  at = [r for r in others if r['k'] == k]
  pad = 'SAME' if any(r['padding'] == 'SAME' for r in at) else at[0]['padding']
  at = sorted((r for r in at if r['padding'] == pad), key=lambda r: r['step_ratio'])
  compared = at + [r for r in rows if r['block'] == 'plain' and r['k'] == k
                   and r['padding'] == pad][:1]
  fl = lambda r: (f'×{r["analytic_flops_ratio"]:.2f} the FLOPs'  # noqa: E731
                  if r.get('analytic_flops_ratio') else 'FLOPs not counted')
  parts = [f'{r["block"]} ×{r["step_ratio"]:.2f} the time for {fl(r)}' for r in at]
  best = at[0]
  lead = (f'The same {k}×{k} receptive field for less ({pad}, step time against one {k}×{k} '
          f'conv): ' + '; '.join(parts) + '. ')
  # Ratios within GROWS of 1 are noise (5%): neither a win nor a loss.
  if best['step_ratio'] < 1 / GROWS:
    lead += f'The {best["block"]} design is the cheapest here'
  else:
    lead += f'No design beat the plain {k}×{k} conv by more than {GROWS - 1:.0%} here'
  slow = [r['block'] for r in at if r['step_ratio'] > GROWS
          and (r.get('analytic_flops_ratio') or 1) < 1 / GROWS]
  if slow:
    lead += (f'; {", ".join(slow)} did fewer FLOPs yet took longer, so fewer FLOPs alone '
             'do not make a design faster on this backend')
  loop = [r['block'] for r in compared if r.get('unoptimized_convs')]
  if loop:
    lead += (f'; {", ".join(loop)} ran a convolution as XLA\'s unoptimized loop, which inflates '
             'its time (see Measurements)')
  return lead + clauses.load_clause(compared) + ' (table under "Same receptive field, other designs").'
