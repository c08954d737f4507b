"""Repeats: merged per point, bootstrap intervals, and 'inconclusive' near a threshold."""
import copy

import pytest

from experiments import filters as filters_exp
from experiments import seed
from kernelscale.analysis import repeats, summary
from kernelscale.measure import sweep


def _with_repeats(recs, spread):
  out = []
  for i, f in enumerate((1 - spread, 1.0, 1 + spread)):
    for r in recs:
      c = copy.deepcopy(r)
      c['repeat'] = i
      c['step_s_median'] = r['step_s_median'] * f
      out.append(c)
  return out


def test_repeats_merge_to_the_median_and_get_a_bootstrap_interval(fixture_run):
  recs, ceil = fixture_run('seed_cpu')
  res = summary.analyze(_with_repeats(recs, 0.1), ceil)
  assert res['n_ok'] == len(recs)  # one record per point again
  (name, m), *_ = res['merged'].items()
  assert m['repeats_merged'] == 3 and len(m['step_s_repeats']) == 3
  r0 = next(r for r in recs if r['point'] == name)
  assert m['step_s_median'] == pytest.approx(r0['step_s_median'])
  boot = res['fits']['SAME']['bootstrap']
  e = res['fits']['SAME']['power_k']['step_s_median']['exponent']
  assert boot['step_exponent']['lo'] <= e <= boot['step_exponent']['hi']
  assert boot['step_exponent']['se'] > 0 and boot['line_b_s_per_flop']['lo'] is not None


def test_a_verdict_within_one_standard_error_of_its_threshold_is_inconclusive(fixture_run):
  recs, ceil = fixture_run('seed_cpu')
  same = {r['kernel_size']: r for r in recs if r['padding'] == 'SAME'}
  for k, r in same.items():
    r['step_s_median'] = 0.01 * k ** 1.52 * (1.02 if k in (3, 9) else 0.98)
  c1 = summary.analyze(recs, ceil)['claims'][0]
  assert c1['verdict'] == 'inconclusive' and 'within one standard error' in c1['evidence']
  assert c1['numbers']['threshold'] == 1.5
  for k, r in same.items():
    r['step_s_median'] = 0.01 * k ** 2.0
  assert summary.analyze(recs, ceil)['claims'][0]['verdict'] == 'holds'


def test_points_carry_repeats_interleaved_and_features():
  cfg = seed.get_config('quick')
  cfg.repeats = 2
  pts = sweep.validate(cfg)
  assert [(p.kernel_size, p.repeat) for p in pts] == [(3, 0), (5, 0), (3, 1), (5, 1)]
  assert pts[2].name.endswith('-r1') and not pts[0].name.endswith('-r0')
  pts = sweep.validate(filters_exp.get_config('quick'))
  assert [(p.kernel_size, p.features) for p in pts] == [
      (3, (8, 16)), (3, (16, 32)), (5, (8, 16)), (5, (16, 32))]
  assert pts[0].name.endswith('-f8x16')
  cfg.features = '16;x'
  with pytest.raises(sweep.ConfigError, match='config.features'):
    sweep.validate(cfg)


def test_careful_variant_times_every_point_three_times():
  assert seed.get_config('careful').repeats == 3 and seed.get_config().repeats == 1
  assert repeats.collapse([]) == []
