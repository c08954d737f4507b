"""Fits, roofline, leave-one-out and prediction, from fixture records; nothing measured."""
import json
import math

import pytest

from kernelscale import records
from kernelscale.analysis import claims, fits, predict, summary
from kernelscale.net import flops


def _rec(k, padding='SAME', step=None, **kw):
  per = flops.layer_flops((32, 64), k, padding, 8)
  tot = flops.summarize(per)
  r = {'status': 'ok', 'model': 'seed', 'kernel_size': k, 'padding': padding,
       'batch_size': 8, 'dtype': 'float32', 'analytic_phase_flops': per,
       'xla_flops': tot['analytic_flops'], 'xla_bytes_accessed': tot['analytic_flops'] / 4,
       'step_s_median': step, **tot}
  r.update(kw)
  return r


def test_power_fit_recovers_exponent_and_uncertainty():
  ks = [3, 5, 7, 9]
  exact = fits.power_fit(ks, [2.0 * k ** 1.7 for k in ks])
  assert exact['exponent'] == pytest.approx(1.7) and exact['coef'] == pytest.approx(2.0)
  assert exact['exponent_se'] == pytest.approx(0, abs=1e-9) and exact['r2'] == pytest.approx(1)
  noisy = fits.power_fit(ks, [k ** 2 * f for k, f in zip(ks, (1.1, 0.9, 1.05, 0.95))])
  assert 0 < noisy['exponent_se'] < 0.5 and abs(noisy['exponent'] - 2) < 0.3
  two = fits.power_fit([3, 5], [1.0, 2.0])
  assert two['exponent'] == pytest.approx(math.log(2) / math.log(5 / 3))
  assert two['exponent_se'] is None  # no degrees of freedom left
  # A missing value is left out and named; one k alone cannot be fitted.
  assert fits.power_fit([3, 5, 7], [1.0, None, 3.0])['dropped_k'] == [5]
  assert fits.power_fit([3, 5], [1.0, None])['exponent'] is None


def test_linear_fit_splits_fixed_cost_from_cost_per_flop():
  lin = fits.linear_fit([1e9, 2e9, 4e9], [0.01 + 2e-11 * x for x in (1e9, 2e9, 4e9)])
  assert lin['a'] == pytest.approx(0.01) and lin['b'] == pytest.approx(2e-11)


@pytest.mark.parametrize('bytes_,step,bound', [
    (5e7, 0.011, 'compute'),   # 20 FLOP/byte, right of the ridge (10): floor 1e9/1e11 = 0.01 s
    (1e9, 0.12, 'memory'),     # 1 FLOP/byte, left of it: floor 1e9 bytes / 1e10 B/s = 0.1 s
    (1e8, 0.5, 'overhead'),    # 50x its floor
])
def test_roofline_bound(bytes_, step, bound):
  ceil = {'ceiling_flops_per_s': 1e11, 'ceiling_bytes_per_s': 1e10}
  r = {'xla_flops': 1e9, 'xla_bytes_accessed': bytes_, 'step_s_median': step,
       'kernel_size': 3, 'padding': 'SAME'}
  p = fits.roofline(r, ceil)
  assert p['bound'] == bound
  assert p['attainable_flops_per_s'] == min(1e11, p['intensity_flops_per_byte'] * 1e10)
  assert p['achieved_fraction'] == pytest.approx(1e9 / step / p['attainable_flops_per_s'])
  assert fits.roofline(r, None)['bound'] is None


def test_leave_one_out_picks_the_model_that_generates_the_data():
  # Step time = 5 ms + FLOPs at 10 GFLOP/s: the line in FLOPs predicts exactly,
  # including VALID where FLOPs fall with k and no power law in k can follow.
  recs = [_rec(k, p) for p in ('SAME', 'VALID') for k in (3, 5, 7, 9)]
  for r in recs:
    r['step_s_median'] = 0.005 + r['analytic_flops'] / 1e10
  loo = predict.leave_one_out(recs)
  assert loo['linear_flops']['median_abs_rel_error'] == pytest.approx(0, abs=1e-9)
  assert loo['power_k']['median_abs_rel_error'] > 0.01
  assert predict.choose_model(loo) in ('linear_flops', 'linear_flops_pooled')
  # Data made as a power law in k: the power law wins.
  pw = [_rec(k, 'SAME', step=0.001 * k ** 1.3) for k in (3, 5, 7, 9)]
  loo = predict.leave_one_out(pw)
  assert loo['power_k']['median_abs_rel_error'] == pytest.approx(0, abs=1e-9)
  assert predict.choose_model(loo) == 'power_k'


def test_predict_has_interval_and_skips_a_kernel_that_does_not_fit():
  recs = [_rec(k, p, step=0.001 * k ** 1.3 * (1.05 if k == 5 else 1))
          for p in ('SAME', 'VALID') for k in (3, 5, 7, 9)]
  out = {p['padding']: p for p in predict.predict(recs, 13, 'power_k')}
  same = out['SAME']
  assert same['lo_s'] < same['step_s'] < same['hi_s']
  assert same['step_s'] == pytest.approx(0.001 * 13 ** 1.3, rel=0.05)
  assert 'largest kernel' in out['VALID']['reason'] and 'step_s' not in out['VALID']
  lin = {p['padding']: p for p in predict.predict(recs, 11, 'linear_flops')}
  assert lin['SAME']['model'] == 'linear_flops' and lin['SAME']['step_s'] > 0


def test_analyze_real_fixture_has_every_key_and_json_round_trips(fixture_run):
  recs, ceil = fixture_run('seed_cpu')
  res = summary.analyze(recs, ceil)
  for key in ('ceilings', 'fits', 'loo_median_abs_rel_error', 'claims'):
    assert key in res
  assert set(res['fits']) >= {'SAME', 'VALID'}
  same = res['fits']['SAME']['power_k']
  for m in fits.FIT_METRICS:
    assert same[m]['exponent'] is not None and same[m]['exponent_se'] is not None
  # xla_flops in the SAME run: 3.0 -> 18.9 GFLOP over k = 3..9.
  expect = math.log(recs[3]['xla_flops'] / recs[0]['xla_flops']) / math.log(3)
  assert abs(same['xla_flops']['exponent'] - expect) < 0.1
  assert [c['id'] for c in res['claims']] == [1, 2, 3, 4, 5]
  assert res['loo_median_abs_rel_error'] == res['loo'][res['prediction_model']][
      'median_abs_rel_error']
  assert all(p['bound'] in ('compute', 'memory', 'overhead') for p in res['roofline'])
  json.dumps(res, allow_nan=True)


def test_failed_points_are_left_out():
  recs = [_rec(k, step=0.001 * k) for k in (3, 5, 7)]
  recs.append({'status': 'failed', 'kernel_size': 9, 'padding': 'SAME', 'error': 'OOM'})
  res = summary.analyze(recs, None)
  assert res['n_ok'] == 3 and res['fits']['SAME']['k'] == [3, 5, 7]
  assert res['roofline'][0]['reason'] == 'no ceilings measured'


def test_groups_split_on_a_field_that_differs():
  recs = [_rec(k, step=0.001 * k) for k in (3, 5)] + [
      _rec(k, step=0.002 * k, batch_size=16) for k in (3, 5)]
  assert set(fits.group_points(recs)) == {'SAME b8', 'SAME b16'}


_LOOP = 'XLA CPU unoptimized loop (kernel reversed in the window)'


def test_unoptimized_loop_points_are_set_apart_from_the_fits():
  # A clean power law, except VALID k=7 whose input gradient ran as XLA's own
  # loop and took 5x its law's time: it must neither train nor score the
  # predictions, and is shown against the others' law instead.
  # Each padding has its own law, so a point predicted from the wrong group would show.
  coef = {'SAME': 0.001, 'VALID': 0.003}
  recs = [_rec(k, p, step=coef[p] * k ** 1.3) for p in ('SAME', 'VALID') for k in (3, 5, 7, 9)]
  slow = next(r for r in recs if r['padding'] == 'VALID' and r['kernel_size'] == 7)
  slow['step_s_median'] *= 5
  slow['conv_impl'] = {'conv2/forward': 'Eigen', 'conv2/backward_input': _LOOP}
  assert records.unoptimized_convs(slow) == ['conv2/backward_input']
  loo = predict.leave_one_out(recs)['power_k']
  assert loo['median_abs_rel_error'] == pytest.approx(0, abs=1e-9)
  assert ('VALID', 7) not in {(p['padding'], p['k']) for p in loo['points']}
  [off] = loo['set_apart']
  assert (off['padding'], off['k'], off['where'], off['unoptimized_convs']) == (
      'VALID', 7, 'VALID k=7', ['conv2/backward_input'])
  assert off['predicted_s'] == pytest.approx(0.003 * 7 ** 1.3)
  assert off['actual_s'] / off['predicted_s'] == pytest.approx(5)
  # Scored as an ordinary point, the same records give a worse error.
  every = predict.leave_one_out(recs, set_apart=False)['power_k']
  assert every['median_abs_rel_error'] > 0.01 and not every['set_apart']
  res = summary.analyze(recs)
  assert res['loo_median_abs_rel_error'] == pytest.approx(0, abs=1e-9)
  assert res['loo_all_points_median_abs_rel_error'] > 0.01
  assert res['loo_all_points_max_abs_rel_error'] > 1  # the x5 point, predicted with itself out
  assert res['unoptimized_loop_points'] == [
      {'where': 'VALID k=7', 'unoptimized_convs': ['conv2/backward_input']}]
  assert res['set_apart_skipped'] is None
  # Predictions follow the others' law and say which k were left out.
  pred = {p['padding']: p for p in predict.predict(recs, 8, 'power_k')}
  assert pred['VALID']['step_s'] == pytest.approx(0.003 * 8 ** 1.3)
  assert pred['VALID']['set_apart_k'] == [7] and pred['VALID']['measured_k'] == [3, 5, 9]
  assert 'set_apart_k' not in pred['SAME']
  # Without conv_impl nothing is set apart: the slow point counts again.
  del slow['conv_impl']
  assert not predict.leave_one_out(recs)['power_k']['set_apart']
  assert summary.analyze(recs)['loo_all_points_median_abs_rel_error'] is None


def test_choose_model_prefers_the_model_that_predicts_more_points():
  loo = {'power_k': {'median_abs_rel_error': 0.05, 'points': [{}] * 4},
         'linear_flops_pooled': {'median_abs_rel_error': 0.15, 'points': [{}] * 6}}
  assert predict.choose_model(loo) == 'linear_flops_pooled'
  loo['power_k']['points'] = [{}] * 6
  assert predict.choose_model(loo) == 'power_k'


def test_set_apart_edge_cases():
  # A conv_impl value that is not text (hand-edited record) is not the loop, and no crash.
  assert records.unoptimized_convs({'conv_impl': {'conv2/forward': None}}) == []
  # Every point ran the loop: nothing would be left to fit, so the analysis keeps them all
  # in the fits and says why.
  recs = [_rec(k, 'SAME', step=0.001 * k ** 1.3, conv_impl={'conv2/backward_input': _LOOP})
          for k in (3, 5, 7)]
  res = summary.analyze(recs)
  assert res['set_apart_skipped'] and res['prediction_model'] is not None
  assert res['loo_median_abs_rel_error'] == pytest.approx(0, abs=1e-9)
  assert len(res['unoptimized_loop_points']) == 3
  assert predict.predict(recs, 9, res['prediction_model'], set_apart=False)[0]['step_s'] > 0
  # A whole group run as the loop, beside a clean one: its points get no prediction.
  mixed = [_rec(k, 'SAME', step=0.001 * k ** 1.3) for k in (3, 5, 7)] + [
      _rec(k, 'VALID', step=0.01, conv_impl={'conv2/backward_input': _LOOP}) for k in (3, 5)]
  loo = predict.leave_one_out(mixed)['power_k']
  assert [p['predicted_s'] for p in loo['set_apart']] == [None, None]
  out = {p['padding']: p for p in predict.predict(mixed, 9, 'power_k')}
  assert 'cannot be fitted' in out['VALID']['reason'] and out['VALID']['set_apart_k'] == [3, 5]


def _design(k, model, step, acc=None, **kw):
  from kernelscale.net import shapes  # pylint: disable=g-import-not-at-top
  block = shapes.block_of(model)
  per = flops.layer_flops((32, 64), k, 'SAME', 8, block=block)
  tot = flops.summarize(per)
  return _rec(k, step=step, model=model, block=block, analytic_phase_flops=per, **tot,
              xla_flops=tot['analytic_flops'] * (2 if block == 'separable' else 1),
              test_accuracy=acc, **kw)


def test_same_receptive_field_compares_each_design_with_its_plain_twin():
  recs = [_design(3, 'seed', 0.010), _design(5, 'seed', 0.020), _design(5, 'seed_dilated', 0.008),
          _design(5, 'seed_separable', 0.050), _design(3, 'seed_dilated', 0.011),
          # No plain twin at this batch size: not compared.
          _design(5, 'seed_stacked', 0.030) | {'batch_size': 16}]
  res = summary.analyze(recs, None)
  rows = res['same_receptive_field']
  assert [(r['k'], r['block']) for r in rows] == [
      (3, 'plain'), (3, 'dilated'), (5, 'plain'), (5, 'separable'), (5, 'dilated')]
  sep = rows[3]
  assert sep['step_ratio'] == pytest.approx(2.5)
  assert sep['analytic_flops_ratio'] < 0.3 and sep['xla_over_analytic'] == pytest.approx(2)
  assert rows[4]['step_ratio'] == pytest.approx(0.4)
  # The question's group is the plain network, even with designs beside it.
  assert res['claims'][0]['numbers']['group'] == 'SAME model=seed b8'
  # Each point has its own roofline entry, although k and padding repeat.
  assert len({tuple(p['key']) for p in res['roofline']}) == len(recs)
  # The answer ends with what a design bought at the largest k.
  last = res['answer'][-1]
  assert last.startswith('The same 5×5 receptive field for less') and 'dilated ×0.40' in last
  assert 'separable did fewer FLOPs yet took longer' in last
  assert summary.same_receptive_field([r for r in recs if r['model'] == 'seed']) == []


def test_a_design_only_run_and_the_edges_of_the_design_sentence(tmp_path, monkeypatch):
  from kernelscale.report import plots
  # Only a design measured: claim 2 (filters of one k x k conv) is not measured,
  # claim 1 keeps its exponents but not the taps per position of a k x k conv.
  recs = [_design(k, 'seed_dilated', 0.01 * k) for k in (3, 5, 7)]
  res = summary.analyze(recs, None)
  assert res['claims'][1]['verdict'] == claims.NOT_MEASURED and 'dilated' in res['claims'][1][
      'evidence']
  assert 'real taps' not in res['claims'][0]['evidence']
  assert res['same_receptive_field'] == [] and len(res['answer']) == 3
  # A design that cannot be built at k is not predicted there, by any law.
  for model in predict.PREDICTION_MODELS:
    [p] = predict.predict(recs, 6, model)
    assert 'step_s' not in p and 'odd' in p.get('reason', ''), p
  # At k=3 stacked and dilated are the plain network: nothing to say.
  recs = [_design(3, 'seed', 0.010), _design(3, 'seed_dilated', 0.0099),
          _design(3, 'seed_stacked', 0.0101)]
  assert claims.design_sentence(summary.same_receptive_field(recs)) is None
  # Within 5% of the plain step is no win.
  recs = [_design(5, 'seed', 0.020), _design(5, 'seed_spatial', 0.0196)]
  s = claims.design_sentence(summary.same_receptive_field(recs))
  assert 'No design beat the plain 5×5 conv by more than 5%' in s and 'cheapest' not in s
  # Other load on a compared point, and a plain twin run as XLA's loop, are said.
  recs = [_design(5, 'seed', 0.020, conv_impl={'conv2/backward_input': _LOOP}),
          _design(5, 'seed_dilated', 0.010, other_cpu_share=0.3)]
  s = claims.design_sentence(summary.same_receptive_field(recs))
  assert "plain ran a convolution as XLA's unoptimized loop" in s
  assert 'other processes took 30% of the CPU while 1 of these 2 points was timed' in s
  # The phase plot gives each design its own bar.
  recs = [dict(_design(k, m, 0.01), phase_s={'conv2/forward': 0.005})
          for m in ('seed', 'seed_dilated') for k in (3, 5)]
  labels, barh = [], plots.plt.Axes.barh
  monkeypatch.setattr(plots.plt.Axes, 'barh',
                      lambda self, y, *a, **kw: labels.append(list(y)) or barh(self, y, *a, **kw))
  assert plots.phases(recs, str(tmp_path / 'phases.png'))
  assert len(set(labels[0])) == 4, labels[0]
