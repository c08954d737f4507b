"""The plots as a newcomer reads them: readable labels, shared phase colours, honest fits."""
import matplotlib

matplotlib.use('Agg')

from kernelscale.analysis import delta as delta_analysis  # pylint: disable=wrong-import-position
from kernelscale.analysis import fits, summary  # pylint: disable=wrong-import-position
from kernelscale.report import delta, phase_style, plots  # pylint: disable=wrong-import-position

_LOOP = {'conv2/backward_input': 'XLA CPU unoptimized loop (kernel reversed)'}


def _crowded():
  """Two groups whose points sit close together (VALID's near SAME's)."""
  recs = []
  for pad, base in (('SAME', 0.020), ('VALID', 0.018)):
    for k in (3, 5, 7, 9):
      recs.append({'status': 'ok', 'padding': pad, 'kernel_size': k, 'model': 'seed',
                   'step_s_median': base + 0.001 * k, 'compile_s': 0.70 + 0.002 * k,
                   'conv_impl': _LOOP if (pad, k) == ('VALID', 7) else None})
  return recs


def test_compile_vs_step_linear_axes_and_no_label_collisions():
  groups = fits.group_points(_crowded())
  fig, labels = plots.compile_vs_step_figure(groups)
  ax = fig.axes[0]
  assert ax.get_xscale() == 'linear' and ax.get_yscale() == 'linear'
  assert ax.get_ylim()[0] == 0  # a flat compile time looks flat
  renderer = fig.canvas.get_renderer()
  boxes = [matplotlib.text.Text.get_window_extent(t, renderer) for t in labels]
  assert len(boxes) == 8
  for i, a in enumerate(boxes):
    for b in boxes[i + 1:]:
      assert not a.overlaps(b), (a, b)
  legend = ax.get_legend().get_window_extent(renderer)
  assert not any(b.overlaps(legend) for b in boxes)
  # The loop symbol is in the legend.
  assert phase_style.LOOP_LABEL in [t.get_text() for t in ax.get_legend().get_texts()]


def test_no_power_law_line_below_r2_half(monkeypatch, tmp_path):
  figs = []
  monkeypatch.setattr(plots, '_save', lambda fig, path: figs.append(fig) or path)
  recs = _crowded()
  for r in recs:  # VALID scatters: no law
    if r['padding'] == 'VALID':
      r['step_s_median'] = {3: 0.02, 5: 0.05, 7: 0.015, 9: 0.03}[r['kernel_size']]
  groups = fits.group_points(recs)
  gf = {g: fits.group_fits(rs) for g, rs in groups.items()}
  assert gf['VALID']['power_k']['step_s_median']['r2'] < 0.5
  plots.scaling(groups, gf, str(tmp_path / 's.png'))
  texts = [t.get_text() for t in figs[0].axes[0].get_legend().get_texts()]
  assert any(t.startswith('VALID: no power law drawn (r² ') for t in texts)
  assert not any(t.startswith('VALID fit') for t in texts)
  assert any(t.startswith('SAME fit') for t in texts)
  assert phase_style.LOOP_LABEL in texts


def test_phase_colours_shared_and_legends_short(monkeypatch, fixture_workdir, tmp_path):
  wd, recs, _ = fixture_workdir('synthetic')
  recs = [r for r in recs if r.get('phase_s')]
  for r in recs:  # many small phases, as a real trace has
    r['phase_s'] = dict(r['phase_s'], **{'dense/forward': 1e-4, 'dense/backward': 1e-4,
                                         'loss/all': 1e-5, 'pooling/forward': 2e-4,
                                         'activation/backward': 1e-4, 'other/all': 1e-5,
                                         'conv1/forward': 0.003, 'conv2/backward_filter': 0.002})
  colours = {}
  real_bar = plots.plt.Axes.bar

  def spy(self, *a, **kw):  # barh draws through bar too
    colours.setdefault(kw['label'].split(' (')[0], set()).add(kw['color'])
    return real_bar(self, *a, **kw)
  monkeypatch.setattr(plots.plt.Axes, 'bar', spy)
  figs = []
  real_save = plots._save
  monkeypatch.setattr(plots, '_save', lambda fig, path: (figs.append(fig), real_save(fig, path))[1])
  plots.phases(recs, str(tmp_path / 'p.png'))
  ds = delta_analysis.deltas(recs)
  assert delta.plot(ds, str(tmp_path / 'd.png'), recs)
  for name, cs in colours.items():
    assert len(cs) == 1, (name, cs)  # one colour per phase in both plots
  assert len(figs[0].axes[0].get_legend().get_texts()) <= 8
  assert 'conv forward' in colours


def test_delta_legend_at_most_8_and_linked_from_report(fixture_workdir):
  from kernelscale.report import markdown  # pylint: disable=import-outside-toplevel
  wd, recs, ceil = fixture_workdir('synthetic')
  markdown.write_results_md(recs, wd)
  md = open(markdown.write_all(recs, wd, ceil)['report_md'], encoding='utf-8').read()
  assert f'({delta.PNG_NAME})' in md
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  made = []
  real = plt.Figure.savefig
  ds = delta_analysis.deltas(recs)
  try:
    plt.Figure.savefig = lambda self, *a, **kw: made.append(self)
    delta.plot(ds, 'unused.png', recs)
  finally:
    plt.Figure.savefig = real
  assert len(made[0].axes[0].get_legend().get_texts()) <= 8
