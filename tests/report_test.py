"""report.md, analysis.json and the plots, built from fixture files alone."""
import json
import os
import shutil

import pytest

from kernelscale import analysis, plots, records, report

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')


def _workdir(tmp_path, name):
  wd = tmp_path / name
  shutil.copytree(os.path.join(FIX, name), wd)
  recs = records.load(str(wd / 'results.jsonl'))
  ceil = json.load(open(wd / 'ceilings.json'))['cpu/cpu']
  return str(wd), recs, ceil


def test_text_table_unchanged_for_failed_points():
  rows = report.table_rows([{'status': 'failed', 'kernel_size': 9, 'padding': 'SAME',
                             'error': 'OOM'}])
  assert rows[0][2] == 'failed'


@pytest.mark.parametrize('name,phases', [('seed_cpu', False), ('synthetic', True)])
def test_write_all_outputs_in_the_issue_order(tmp_path, name, phases):
  wd, recs, ceil = _workdir(tmp_path, name)
  out = report.write_all(recs, wd, ceil)
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


def test_without_ceilings_no_roofline_plot(tmp_path):
  wd, recs, _ = _workdir(tmp_path, 'seed_cpu')
  out = report.write_all(recs, wd, None)
  assert out['figures']['roofline'] is None
  md = open(out['report_md'], encoding='utf-8').read()
  assert 'No roofline plot' in md and 'no ceilings.json' in md


def test_every_plot_has_title_axis_units_and_legend(tmp_path, monkeypatch):
  wd, recs, ceil = _workdir(tmp_path, 'synthetic')
  figs = []
  real_save = plots._save
  monkeypatch.setattr(plots, '_save', lambda fig, path: (figs.append(fig), real_save(fig, path))[1])
  res = analysis.analyze(recs, ceil)
  plots.draw_all(analysis.group_points(recs), res['fits'], res['roofline'], ceil, recs, wd)
  assert len(figs) == 4
  for fig in figs:
    title = fig._suptitle.get_text() if fig._suptitle else fig.axes[0].get_title()
    assert title.endswith('?')  # the question the figure answers
    for ax in fig.axes:
      assert '(' in ax.get_xlabel() and ax.get_ylabel()  # units in parentheses
      assert ax.get_legend() is not None and ax.get_legend().get_texts()
