"""analysis.json: the whole analysis of a run, assembled from fits, predictions and claims.

Also compares each same-receptive-field design with the plain network at the
same point.
"""
from __future__ import annotations

from typing import Sequence

from kernelscale import records
from kernelscale.analysis import claims, plain, profile, repeats
from kernelscale.analysis.fits import OVERHEAD_FACTOR, group_fits, group_points, linear_fit, roofline
from kernelscale.analysis.predict import MODEL_WORDS, _where_all, choose_model, leave_one_out
from kernelscale.net import shapes

# What else must match for two designs to be compared at one k and padding.
_DESIGN_FIELDS = tuple(f for f in records.GROUP_FIELDS if f != 'model')


def same_receptive_field(ok: Sequence[dict]) -> list[dict]:
  """Each design of shapes.BLOCKS against the plain k x k conv of the same point.

  Returns:
    One row per record that has a plain twin (same padding, k and fit-group
    fields but the model) in a run that holds another design too, sorted by
    padding, k and shapes.BLOCKS order: {padding, k, block, model, step_s,
    step_ratio (design / plain), analytic_flops_ratio, xla_flops_ratio,
    xla_over_analytic (how many of the model's FLOPs XLA executes), params,
    test_accuracy, plain_test_accuracy, epoch_s, records.unoptimized_convs,
    other_cpu_share, same_as_plain (the design is the plain network at this
    k)}. [] when no point has two designs.
  """
  by: dict[tuple, list[dict]] = {}
  for r in ok:
    by.setdefault(tuple(records.point_key(r, _DESIGN_FIELDS)), []).append(r)
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
          'unoptimized_convs': records.unoptimized_convs(r), 'other_cpu_share': r.get('other_cpu_share'),
          # stacked and dilated at k=3 are one 3x3 conv: the plain network itself.
          'same_as_plain': records.block(r) != 'plain' and shapes.same_as_plain(
              records.block(r), r['kernel_size'])})
  order = {b: i for i, b in enumerate(shapes.BLOCKS)}
  return sorted(rows, key=lambda x: (x['padding'], x['k'], order.get(x['block'], 99)))


def epochs(ok: Sequence[dict]) -> list[dict]:
  """Per point: the projected epoch (steps per epoch × median step) and, where trained, the measured one."""
  out = []
  for r in ok:
    if not r.get('steps_per_epoch') or r.get('step_s_median') is None:
      continue
    proj = r['steps_per_epoch'] * r['step_s_median']
    meas = r['epoch_s'] if r.get('epoch_s_kind') == 'measured' else None
    out.append({'point': r.get('point'), 'padding': r.get('padding'), 'k': r.get('kernel_size'),
                'epoch_s_projected': proj, 'epoch_s_measured': meas,
                'measured_over_projected': meas / proj if meas else None})
  return out


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
  # Re-timings of one point (config.repeats) become one record: median of the repeats.
  ok = repeats.collapse(records.ok_records(recs))
  groups = group_points(ok)
  fits = {g: group_fits(rs) for g, rs in groups.items()}
  for g, rs in groups.items():
    boot = repeats.bootstrap(rs)
    if boot:
      fits[g]['bootstrap'] = boot
  for g, rs in group_points(ok, pooled=True).items():
    if len({r['padding'] for r in rs}) > 1:
      xs = [(r['xla_flops'], r['step_s_median']) for r in rs if r.get('xla_flops')]
      fits[f'pooled: {g}'] = {'k': [r['kernel_size'] for r in rs],
                              'linear_step_s_vs_xla_flops': linear_fit(*zip(*xs)) if xs else None}
  loo = leave_one_out(ok)
  best = choose_model(loo)
  # Without any point set apart the two are the same computation.
  everyone = leave_one_out(ok, set_apart=False) if any(records.unoptimized_convs(r) for r in ok) else loo
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
      'unoptimized_loop_points': [{'where': w, 'unoptimized_convs': records.unoptimized_convs(r)}
                                  for r, w in _where_all(ok) if records.unoptimized_convs(r)],
      'set_apart_skipped': skipped,
      'roofline': roof,
      'same_receptive_field': same_receptive_field(ok),
      'overhead_factor': OVERHEAD_FACTOR,
      'n_ok': len(ok), 'n_records': len(recs),
      'merged': repeats.merged_fields(ok),
      'epochs': epochs(ok),
  }
  result['profile'] = profile.summary(ok)
  result['claims'] = claims.verdicts(ok, groups, fits, roof)
  for c in result['claims']:
    c['name'] = plain.CLAIM_NAMES[c['id']]
  result['answer'] = claims.answer(ok, groups, fits, roof, result['claims'])
  designs = claims.design_sentence(result['same_receptive_field'])
  if designs:
    result['answer'].append(designs)
  # The plain answer comes first in report.md and the terminal (analysis/plain.py).
  result['plain_answer'] = plain.plain_answer(ok, groups, result)
  return result
