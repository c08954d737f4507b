"""report.md, analysis.json and the plots, built from fixture files alone."""
import json
import os

import pytest

from kernelscale.analysis import fits, summary
from kernelscale.report import plots, markdown


def test_text_table_unchanged_for_failed_points():
  rows = markdown.table_rows([{'status': 'failed', 'kernel_size': 9, 'padding': 'SAME',
                             'error': 'OOM'}])
  assert rows[0][2] == 'failed'


@pytest.mark.parametrize('name,phases', [('seed_cpu', False), ('synthetic', True)])
def test_write_all_outputs_in_the_issue_order(name, phases, fixture_workdir):
  wd, recs, ceil = fixture_workdir(name)
  out = markdown.write_all(recs, wd, ceil)
  aj = json.load(open(out['analysis_json']))
  assert set(aj) >= {'ceilings', 'fits', 'loo_median_abs_rel_error', 'claims'}
  assert all(set(c) >= {'id', 'claim', 'verdict', 'evidence'} for c in aj['claims'])
  md = open(out['report_md'], encoding='utf-8').read()
  order = ['## Question', '## Answer', '| k | padding | compile s', '## Verdicts',
           '## Plots', '![']
  pos = [md.index(s) for s in order]
  assert pos == sorted(pos)
  for c in aj['claims']:
    assert f'**{c["verdict"]}**' in md
  for png in ('scaling.png', 'compile_vs_step.png', 'roofline.png'):
    assert os.path.getsize(os.path.join(wd, png)) > 10_000 and f']({png})' in md
  assert os.path.exists(os.path.join(wd, 'phases.png')) == phases
  assert ('No phase breakdown' in md) == (not phases)


def test_without_ceilings_no_roofline_plot(fixture_workdir):
  wd, recs, _ = fixture_workdir('seed_cpu')
  out = markdown.write_all(recs, wd, None)
  assert out['figures']['roofline'] is None
  md = open(out['report_md'], encoding='utf-8').read()
  assert 'No roofline plot' in md and 'no ceilings.json' in md


def test_every_plot_has_title_axis_units_and_legend(monkeypatch, fixture_workdir):
  wd, recs, ceil = fixture_workdir('synthetic')
  figs = []
  real_save = plots._save
  monkeypatch.setattr(plots, '_save', lambda fig, path: (figs.append(fig), real_save(fig, path))[1])
  res = summary.analyze(recs, ceil)
  plots.draw_all(fits.group_points(recs), res['fits'], res['roofline'], ceil, recs, wd)
  assert len(figs) == 4
  for fig in figs:
    title = fig._suptitle.get_text() if fig._suptitle else fig.axes[0].get_title()
    assert title.endswith('?')  # the question the figure answers
    for ax in fig.axes:
      assert '(' in ax.get_xlabel() and ax.get_ylabel()  # units in parentheses
      assert ax.get_legend() is not None and ax.get_legend().get_texts()


def test_report_sets_apart_points_run_as_the_unoptimized_loop(fixture_workdir):
  wd, recs, ceil = fixture_workdir('seed_cpu')
  slow = next(r for r in recs if r['padding'] == 'VALID' and r['kernel_size'] == 7)
  slow['conv_impl'] = {'conv2/backward_input': 'XLA CPU unoptimized loop (kernel reversed)'}
  out = markdown.write_all(recs, wd, ceil)
  res = out['analysis']
  [off] = res['loo'][res['prediction_model']]['set_apart']
  md = open(out['report_md'], encoding='utf-8').read()
  line = next(l for l in md.splitlines() if 'unoptimized loop instead of a conv library' in l)
  assert 'VALID k=7 (conv2/backward_input)' in line and 'set apart from the leave-one-out' in line
  assert f'VALID k=7 {off["predicted_s"] * 1e3:.1f} ms predicted' in line
  assert f'{off["actual_s"] * 1e3:.1f} ms measured' in line
  assert f'×{off["actual_s"] / off["predicted_s"]:.2f}' in line
  assert f'{res["loo_all_points_median_abs_rel_error"]:.1%}' in line
  assert f'worst {res["loo_all_points_max_abs_rel_error"]:.0%}' in line
  row = next(l for l in md.splitlines() if l.startswith('| 7 | VALID | ') and 'bound' not in l
             and 'set apart' in l)
  assert f'set apart: {off["predicted_s"] * 1e3:.1f}' in row
  # Without the record's conv_impl, nothing is set apart.
  # The same point measured in a second group (conv_algo=auto) is not set apart with it.
  for r in recs:
    r['conv_algo'] = 'xla'
  twin = [dict(r, conv_algo='auto', conv_impl=None) for r in recs]
  md = open(markdown.write_all(recs + twin, wd, ceil)['report_md'], encoding='utf-8').read()
  rows = [l for l in md.splitlines() if l.startswith('| 7 | VALID | ') and '%' in l]
  assert len(rows) == 2 and sum('set apart' in l for l in rows) == 1
  assert 'VALID conv_algo=xla k=7 (conv2/backward_input)' in md
  del slow['conv_impl']
  md = open(markdown.write_all(recs, wd, ceil)['report_md'], encoding='utf-8').read()
  assert 'unoptimized loop instead' not in md and 'set apart' not in md


def test_phase_plot_marks_a_point_with_the_unoptimized_loop(tmp_path, monkeypatch, fixture_workdir):
  wd, recs, _ = fixture_workdir('synthetic')
  figs = []
  monkeypatch.setattr(plots, '_save', lambda fig, path: figs.append(fig) or path)
  pts = [r for r in recs if r.get('phase_s')]
  pts[-1]['conv_impl'] = {'conv2/backward_input': 'XLA CPU unoptimized loop (kernel reversed)'}
  plots.phases(recs, str(tmp_path / 'p.png'))
  ax = figs[-1].axes[0]
  marked = [t.get_text() for t in ax.get_yticklabels() if "XLA's slow loop*" in t.get_text()]
  assert len(marked) == 1 and 'conv2/backward_input' in marked[0]
  assert any('unoptimized loop' in t.get_text() for t in ax.texts)
  del pts[-1]['conv_impl']
  plots.phases(recs, str(tmp_path / 'p.png'))
  assert not figs[-1].axes[0].texts
  assert not any('slow loop' in t.get_text() for t in figs[-1].axes[0].get_yticklabels())
