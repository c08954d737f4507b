"""The plain answer: 3-6 sentences whose every number is found in a record field or analysis.json."""
import json
import re

import pytest

from kernelscale import records
from kernelscale.analysis import plain, profile, summary
from kernelscale.report import markdown, terminal

_NUMBER = re.compile(r'(?<![\w.])\d[\d,]*(?:\.\d+)?')


def _resolve(src, recs, result):
  kind, *path = src
  if kind == 'rec':
    point, *path = path
    v = next(r for r in recs if r.get('point') == point)
  else:
    v = result
  for p in path:
    v = v[p]
  return v


def _walk_numbers(value, out):
  if isinstance(value, dict):
    for v in value.values():
      _walk_numbers(v, out)
  elif isinstance(value, (list, tuple)):
    for v in value:
      _walk_numbers(v, out)
  elif isinstance(value, (int, float)) and not isinstance(value, bool):
    out.append(value)


def _found_anywhere(token, recs, result):
  """The token is some record field or analysis.json value, as formatted in the answer."""
  vals = []
  _walk_numbers([recs, json.loads(json.dumps(markdown._json_safe(result)))], vals)
  decimals = len(token.split('.')[1]) if '.' in token else 0
  want = float(token.replace(',', ''))
  for v in vals:
    for scale in (1, 100, 1e3, 1e-9):
      if abs(round(v * scale, decimals) - want) < 10 ** -decimals / 2:
        return True
  return False


def _check(recs, ceil):
  res = summary.analyze(recs, ceil)
  pa = res['plain_answer']
  assert 3 <= len(pa['sentences']) <= 6
  # Every number made for the answer resolves to its source and formats the same.
  for item in pa['numbers']:
    vals = [_resolve(s, recs, res) for s in item['source']]
    v = vals[0] / vals[1] if item['op'] == 'ratio' else vals[0]
    assert v == pytest.approx(item['value'])
    got = v * item['scale'] if item['scale'] != 1 else v
    assert format(got, item['fmt']) == item['text']
  # Every number in the sentences is one of those, or a record / analysis.json value.
  texts = [i['text'] for i in pa['numbers']]
  for s in pa['sentences']:
    for tok in _NUMBER.findall(s):
      assert tok in texts or _found_anywhere(tok, recs, res), (tok, s)
  return res


def test_every_number_of_the_plain_answer_is_in_a_record_or_the_analysis(fixture_run):
  res = _check(*fixture_run('seed_cpu'))
  text = ' '.join(res['plain_answer']['sentences'])
  assert 'projected' in text  # the fixture's epochs are steps x median step
  assert 'What does not explain it' in text and 'memory' in text
  assert 'receptive_field.py' in text  # what to do: the command that measures it
  # Why ×7 more work takes only ×5 more time: the work ratio over the rate ratio, in words.
  # The fixture's line fit has a clear positive intercept: the fixed cost explains the rate.
  assert 'the whole step does ×' in text and 'as long, because about' in text
  assert 'ms of every step does not grow with k' in text
  assert 'outside the convolutions' not in text  # the fixture has no profile
  recs, ceil = fixture_run('seed_cpu')
  for r in recs:  # a profile: 80% in conv2's forward, the rest in the dense layers
    st = r['step_s_median']
    r.update(phase_s={'conv2/forward': 0.8 * st, 'dense/forward': 0.2 * st}, trace_coverage=1.0,
             trace_step_s_median=st, trace_overhead=1.0)
  for r in recs:
    r['analytic_conv_flops'] = 0.8 * r['analytic_flops']
  text = ' '.join(_check(recs, ceil)['plain_answer']['sentences'])
  # With a profile the two reasons are measured, not fitted.
  assert 'for two measured reasons' in text and "convolutions' own profiled time grows ×" in text
  assert 'the rest of the step (dense layers' in text and 'ms of every step does not grow' not in text
  recs, ceil = fixture_run('seed_cpu')
  for r in recs:  # no fixed cost: time proportional to work, so the rate cannot rise
    r['step_s_median'], r['achieved_flops_per_s'] = r['xla_flops'] / 100e9, 100e9
  text = ' '.join(_check(recs, ceil)['plain_answer']['sentences'])
  assert 'the whole step does ×' in text and 'so the step takes ×' in text
  assert 'at about the same rate' in text and 'does not grow with k (where' not in text


def test_the_load_caution_names_the_points_it_concerns(fixture_run):
  recs, ceil = fixture_run('seed_cpu')
  for r in recs:
    r['other_cpu_share'] = 0.0
  r = next(r for r in recs if r['padding'] == 'VALID' and r['kernel_size'] == 5)
  r['other_cpu_share'] = 0.42
  text = ' '.join(_check(recs, ceil)['plain_answer']['sentences'])
  assert 'used up to 42% of the processor while this run timed VALID k=5, so that point' in text
  assert 'the other points were timed with little other load' in text
  assert text.startswith('Going from')  # a point in the middle: the caution comes last
  for r in recs:
    r['other_cpu_share'] = 0.3
  first = _check(recs, ceil)['plain_answer']['sentences'][0]
  # The ends of the answer's ratios were loaded: the caution comes first and says so.
  assert first.startswith('Caution:') and 'and 4 more, so those times may be inflated;' in first
  assert 'the ratios below compare k=3 with k=9' in first


def test_the_anomaly_is_named_in_words(fixture_run):
  recs, ceil = fixture_run('seed_cpu')
  r = next(r for r in recs if r['padding'] == 'VALID' and r['kernel_size'] == 7)
  r['conv_impl'] = dict(r.get('conv_impl') or {},
                       **{'conv2/backward_input': records.UNOPTIMIZED_CPU_CONV})
  res = _check(recs, ceil)
  text = ' '.join(res['plain_answer']['sentences'])
  assert 'slow loop' in text and "VALID k=7 (conv2's input gradient)" in text


def test_measured_epochs_are_said_to_be_measured(fixture_run):
  recs, ceil = fixture_run('seed_cpu')
  for r in recs:
    r['epoch_s_kind'] = 'measured'
  text = ' '.join(_check(recs, ceil)['plain_answer']['sentences'])
  assert 'measured: one real pass' in text and 'projected' not in text


def test_steps_to_target_accuracy_join_the_epoch_sentence(fixture_run):
  from tests.analysis.claims_test import _with_curves  # pylint: disable=g-import-not-at-top
  recs, ceil = fixture_run('seed_cpu')
  for r in recs:
    r['epoch_s_kind'] = 'measured'
  first = _check(_with_curves(recs, {3: 300, 9: 300}), ceil)['plain_answer']['sentences'][0]
  assert 'test accuracy first reached 0.85 at k=3 after 300 steps' in first
  assert 'needed no more steps, only longer ones' in first and 'every 50 steps' in first
  assert 'in all, reaching it took ×' in first  # train_s_to_target k=9 over k=3
  first = _check(_with_curves(recs, {3: 300, 9: 350}), ceil)['plain_answer']['sentences'][0]
  assert 'within one evaluation interval of each other: too close to say' in first
  first = _check(_with_curves(recs, {3: 300, 9: None}), ceil)['plain_answer']['sentences'][0]
  assert 'k=9 not within its 500 steps' in first and 'needed more steps' in first


def test_claims_are_named_in_words_in_report_and_terminal(fixture_run, tmp_path):
  recs, ceil = fixture_run('seed_cpu')
  res = summary.analyze(recs, ceil)
  lines = terminal.analysis_lines(res, None)
  # Every claim of the run (the sixth exists only on runs with a devices axis).
  assert [c['id'] for c in res['claims']] == [1, 2, 3, 4, 5]
  for cid in (c['id'] for c in res['claims']):
    name = plain.CLAIM_NAMES[cid]
    assert any(line.startswith(f'  claim {cid} ({name}):') for line in lines)
  md = open(markdown.write_report_md(recs, res, {}, str(tmp_path)), encoding='utf-8').read()
  answer = md.split('## Answer')[1].split('##')[0]
  assert res['plain_answer']['sentences'][0] in answer
  assert all(f'**{plain.CLAIM_NAMES[c["id"]]}**' in md for c in res['claims'])
  assert '+-' not in md


def test_profile_trust_and_alone_ratio():
  rec = {'point': 'p', 'padding': 'SAME', 'kernel_size': 3, 'step_s_median': 0.02,
         'trace_step_s_median': 0.025, 'trace_coverage': 0.97, 'trace_overhead': 1.25,
         'phase_s': {'conv2/forward': 0.005, 'conv2/backward_input': 0.01, 'other/all': 0.01},
         'conv_alone_s': {'conv2/forward': 0.004, 'conv2/backward_input': 0.004}}
  # Each phase keeps its share of the traced step; they sum to coverage x untraced median.
  assert profile.scaled_phases(rec)['conv2/forward'] == pytest.approx(0.005 / 0.025 * 0.97 * 0.02)
  assert sum(profile.scaled_phases(rec).values()) == pytest.approx(0.97 * 0.02)
  rec['conv_alone_s']['conv2/forward'] = 0.00388
  got = {a['phase']: a for a in profile.alone_vs_profiled(rec)}
  assert got['conv2/forward']['ratio'] == pytest.approx(1.0) and not got['conv2/forward']['flagged']
  assert got['conv2/backward_input']['flagged']  # 8 ms profiled against 4 ms alone
  (s,) = profile.summary([rec])
  assert s['conv_backward_share'] == pytest.approx(0.4) and s['alone_flagged'] == [
      'conv2/backward_input']
  assert profile.scaled_phases(dict(rec, trace_coverage=1.5)) is None


def test_an_optimizer_that_did_not_grow_is_said_so(fixture_run):
  recs, ceil = fixture_run('seed_cpu')
  same = sorted((r for r in recs if r['padding'] == 'SAME'), key=lambda r: r['kernel_size'])
  growth = same[-1]['step_s_median'] - same[0]['step_s_median']
  for delta, said in ((-0.003 * growth, True), (0.0004 * growth, True), (0.02 * growth, False)):
    same[-1]['optimizer_update_s'] = same[0]['optimizer_update_s'] + delta
    text = ' '.join(_check(recs, ceil)['plain_answer']['sentences'])
    assert ('did not grow with k' in text) == said, (delta, text)


def test_repeats_of_a_trained_point_are_seeds_and_give_medians(fixture_run):
  import copy  # pylint: disable=g-import-not-at-top
  from tests.analysis.claims_test import _with_curves  # pylint: disable=g-import-not-at-top
  recs, ceil = fixture_run('seed_cpu')
  recs = [r for r in recs if r['padding'] == 'SAME']
  for r in recs:
    r.update(epoch_s_kind='measured', test_accuracy=0.87, seed=0, repeat=0)
  runs = []
  # Seeds 0, 1, 2: k=9 needs 350 / 200 / never; k=3 150 / 150 / 200 (the rest 300).
  by_seed = [{3: 150, 9: 350}, {3: 150, 9: 200}, {3: 200, 9: None}]
  for seed, steps in enumerate(by_seed):
    rs = _with_curves(copy.deepcopy(recs), {k: steps.get(k, 300) for k in (3, 5, 7, 9)})
    for r in rs:
      r.update(seed=seed, repeat=seed, test_accuracy=0.86 + 0.01 * seed)
      if seed:
        r['point'] += f'-r{seed}'
    runs += rs
  res = _check(runs, ceil)
  first = res['plain_answer']['sentences'][0]
  # Medians over the seeds; a seed that never got there counts as the slowest.
  assert 'k=3 after 150 steps' in first and 'k=9 after 350 steps' in first, first
  assert 'median of 3 seeds' in first and 'one seed' not in first
  st = res['claims'][4]['numbers']['steps_to_target']
  assert st['n_seeds'] == 3 and st['points'][-1]['steps_each'] == [350, 200, None]
  assert '[seeds 0/1/2: 350/200/never]' in res['claims'][4]['evidence']
  m = res['merged'][recs[0]['point']]
  assert m['test_accuracy'] == pytest.approx(0.87) and m['seeds'] == [0, 1, 2]
