"""Delta attribution from records alone: sums, grouping, table, PNG, results.md hook.

The records here are small hand-made inputs (not measurements).
"""
import os

import pytest

from kernelscale.analysis import delta
from kernelscale.report import delta as delta_report
from kernelscale.report import markdown


def _rec(k, pad, step, phases, **kw):
  r = {'status': 'ok', 'kernel_size': k, 'padding': pad, 'model': 'seed', 'batch_size': 128,
       'dtype': 'float32', 'platform': 'cpu', 'xla_flags': '', 'step_s_median': step,
       'phase_s': phases, 'experiment': 'seed', 'compile_s': 1.0, 'step_s_p10': step,
       'step_s_p90': step}
  r.update(kw)
  return r


RECS = [
    _rec(5, 'SAME', 0.30, {'conv2/forward': 0.10, 'pooling/backward': 0.05}),
    _rec(3, 'SAME', 0.10, {'conv2/forward': 0.03, 'pooling/backward': 0.05}),
    _rec(7, 'SAME', 0.50, {'conv2/forward': 0.20, 'pooling/backward': 0.04, 'mixed/x': 0.05}),
    _rec(3, 'VALID', 0.10, {'conv2/forward': 0.03}),
    _rec(5, 'VALID', 0.08, {'conv2/forward': 0.02}),
    _rec(9, 'VALID', 0.0, None),  # no trace: skipped
    {'status': 'failed', 'kernel_size': 11, 'padding': 'VALID'},
]


def test_deltas_pair_consecutive_kernels_per_padding_and_sum_to_step_change():
  ds = delta.deltas(RECS)
  pairs = [(d['group']['padding'], d['k_from'], d['k_to']) for d in ds]
  assert pairs == [('SAME', 3, 5), ('SAME', 5, 7), ('VALID', 3, 5)]
  for d in ds:
    assert sum(d['phase_delta_s'].values()) == pytest.approx(d['step_delta_s'])
  d35 = ds[0]['phase_delta_s']
  assert d35['conv2/forward'] == pytest.approx(0.07)
  assert d35['pooling/backward'] == pytest.approx(0.0)
  assert d35[delta.UNATTRIBUTED] == pytest.approx(0.20 - 0.07)
  assert ds[1]['phase_delta_s']['mixed/x'] == pytest.approx(0.05)  # appears: counted from 0
  assert ds[2]['step_delta_s'] == pytest.approx(-0.02)  # VALID shrinks: kept negative


def test_phases_are_scaled_to_the_untraced_median():
  recs = [_rec(3, 'SAME', 0.10, {'conv2/forward': 0.03}, trace_step_s_median=0.12),
          _rec(5, 'SAME', 0.30, {'conv2/forward': 0.10}, trace_step_s_median=0.20)]
  (d,) = delta.deltas(recs)
  # Issue 16: one statistic, the untraced median; phases scaled to it.
  assert d['step_delta_s'] == pytest.approx(0.20)
  assert d['timed_step_delta_s'] == pytest.approx(0.20)
  assert d['phase_delta_s']['conv2/forward'] == pytest.approx(0.15 - 0.025)
  assert d['phase_delta_s'][delta.UNATTRIBUTED] == pytest.approx(0.075)


def test_markdown_rows_and_columns():
  md = delta_report.markdown(delta.deltas(RECS))
  assert '**seed, SAME padding, batch 128, float32, cpu**' in md
  assert '| phase | k 3→5 | k 5→7 |' in md
  assert '| conv2/forward | +70.0 (35%) | +100.0 (50%) |' in md
  assert '| **step, median** | **+200.0** | **+200.0** |' in md  # issue 16: was 'traced window'
  assert '| step, timed median (for reference) | +200.0 | +200.0 |' in md
  assert md.count('| unattributed |') == 2


def test_results_md_gets_table_and_png(tmp_path):
  path = markdown.write_results_md(RECS, str(tmp_path))
  text = open(path, encoding='utf-8').read()
  assert '## Where the extra step time went' in text
  assert f'![delta attribution]({delta_report.PNG_NAME})' in text
  png = tmp_path / delta_report.PNG_NAME
  assert png.exists() and png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_no_traces_no_section(tmp_path):
  recs = [dict(r, phase_s=None) for r in RECS if r['status'] == 'ok']
  assert delta_report.results_md_section(recs, str(tmp_path)) == []
  assert not os.path.exists(tmp_path / delta_report.PNG_NAME)
