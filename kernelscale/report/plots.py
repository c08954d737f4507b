"""PNG figures for report.md, drawn from records and the analysis alone.

One question per figure, stated in its title; axes carry units; every series
is in the legend. matplotlib runs on the Agg backend (no display needed).
"""
from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib.text import Text  # pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib.transforms import Bbox  # pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib.ticker import FixedFormatter, FixedLocator, FuncFormatter, LogFormatter, NullFormatter, NullLocator  # pylint: disable=g-import-not-at-top,wrong-import-position

from kernelscale import records
from kernelscale.net import shapes

MARKERS = 'osD^vP*X'
DPI = 110
# Phase keys (from profiling's phase_s) folded into the bars of the phase plot.
PHASE_GROUPS = (
    ('conv forward', lambda k: k.startswith('conv') and k.endswith('/forward')),
    ('conv backward-input', lambda k: k.startswith('conv') and k.endswith('/backward_input')),
    ('conv backward-filter', lambda k: k.startswith('conv') and k.endswith('/backward_filter')),
    ('conv backward (input and filter not told apart)', lambda k: k.startswith('conv') and k.endswith('/backward')),
    ('dense', lambda k: k.startswith('dense')),
    ('pooling', lambda k: k.startswith('pooling')),
    ('activation', lambda k: k.startswith('activation')),
    ('loss', lambda k: k.startswith('loss')),
    ('optimizer', lambda k: k.startswith('optimizer')),
)


class _PlainLogFormatter(LogFormatter):
  """matplotlib's choice of which log ticks to label, written as plain numbers."""

  def __call__(self, x, pos=None):
    return f'{x:g}' if super().__call__(x, pos) else ''


def _plain(axis) -> None:
  """Log-axis tick labels as plain numbers (250, not 2.5×10²)."""
  axis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}'))
  # Minor ticks are labelled only when the axis spans few decades.
  axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _k_axis(ax, ks: Sequence[int]) -> None:
  """Log-scaled k axis labelled with the measured kernel sizes themselves."""
  ax.set_xscale('log')
  ks = sorted({int(k) for k in ks})
  ax.xaxis.set_major_locator(FixedLocator(ks))
  ax.xaxis.set_major_formatter(FixedFormatter([str(k) for k in ks]))
  ax.xaxis.set_minor_locator(NullLocator())
  ax.xaxis.set_minor_formatter(NullFormatter())
  ax.set_xlim(min(ks) * 0.85, max(ks) * 1.15)


def _save(fig, path: str) -> str:
  fig.savefig(path, dpi=DPI, bbox_inches='tight')
  plt.close(fig)
  return path


def _fit_label(fit: dict) -> str:
  se = fit.get('exponent_se')
  return f'fit ∝ k^{fit["exponent"]:.2f}' + (f' ± {se:.2f}' if se is not None else '')


def scaling(groups: dict[str, list[dict]], group_fits: dict, path: str) -> str:
  """Step time and XLA FLOPs against k, log-log, with the fitted power laws."""
  fig, (ax_t, ax_f) = plt.subplots(1, 2, figsize=(11, 4.4))
  all_k = []
  for i, (g, rs) in enumerate(groups.items()):
    ks = np.array([r['kernel_size'] for r in rs], dtype=float)
    all_k += list(ks)
    m = MARKERS[i % len(MARKERS)]
    med = np.array([r['step_s_median'] for r in rs]) * 1e3
    p10 = np.array([r.get('step_s_p10') or r['step_s_median'] for r in rs]) * 1e3
    p90 = np.array([r.get('step_s_p90') or r['step_s_median'] for r in rs]) * 1e3
    line = ax_t.errorbar(ks, med, yerr=[med - p10, p90 - med], fmt=m, capsize=3,
                         label=f'{g} measured (median, p10–p90)')
    color = line[0].get_color()
    xf = np.array([r.get('xla_flops') or np.nan for r in rs]) / 1e9
    ax_f.plot(ks, xf, m, color=color, label=f'{g} XLA cost analysis')
    kk = np.linspace(ks.min(), ks.max(), 50)
    for ax, metric, scale in ((ax_t, 'step_s_median', 1e3), (ax_f, 'xla_flops', 1e-9)):
      fit = group_fits.get(g, {}).get('power_k', {}).get(metric) or {}
      if fit.get('exponent') is not None:
        ax.plot(kk, fit['coef'] * kk ** fit['exponent'] * scale, '--', color=color,
                label=f'{g} {_fit_label(fit)}')
  for ax, ylabel in ((ax_t, 'median step time (ms, log scale)'),
                     (ax_f, 'FLOPs per train step (GFLOP, log scale)')):
    _k_axis(ax, all_k)
    ax.set_yscale('log')
    _plain(ax.yaxis)
    ax.set_xlabel('kernel size k (k×k, log scale)')
    ax.set_ylabel(ylabel)
    ax.grid(True, which='both', alpha=0.3)
    if len(groups) > 2:  # many groups (e.g. experiments/receptive_field.py): legend below
      ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.16), ncol=1)
    else:
      ax.legend(fontsize=8)
  ax_t.set_title('step time')
  ax_f.set_title('FLOPs (XLA)')
  fig.suptitle('Does step time grow with kernel size as fast as the FLOPs do?')
  return _save(fig, path)


def compile_vs_step(groups: dict[str, list[dict]], path: str) -> str:
  """Compile time against step time, with lines of 'compile = N steps'."""
  fig, ax = plt.subplots(figsize=(7, 5))
  xs, ys = [], []
  for i, (g, rs) in enumerate(groups.items()):
    x = [r['step_s_median'] * 1e3 for r in rs if r.get('compile_s') is not None]
    y = [r['compile_s'] for r in rs if r.get('compile_s') is not None]
    ax.plot(x, y, MARKERS[i % len(MARKERS)], label=f'{g} (label: k)')
    for r, xi, yi in zip([r for r in rs if r.get('compile_s') is not None], x, y):
      ax.annotate(f'k={r["kernel_size"]}', (xi, yi), textcoords='offset points', xytext=(4, 4),
                  fontsize=8)
    xs += x
    ys += y
  if xs:
    lo, hi = min(xs) / 1.5, max(xs) * 1.5
    xx = np.array([lo, hi])
    # Lines of equal cost (compile = N steps), N from 1-2-5 steps around the points.
    ratios = [y / (x / 1e3) for x, y in zip(xs, ys)]
    ns = [m * 10 ** d for d in range(-1, 7) for m in (1, 2, 5)
          if min(ratios) / 1.5 <= m * 10 ** d <= max(ratios) * 1.5]
    while len(ns) > 4:
      ns = ns[::2]
    for n, style in zip(ns, (':', '-.', '--', '-')):
      ax.plot(xx, n * xx / 1e3, style, color='grey', lw=1, label=f'compile = {n:g} steps')
    ax.set_xlim(lo, hi)
    ax.set_ylim(min(ys) / 2, max(ys) * 2)
  ax.set_xscale('log')
  ax.set_yscale('log')
  _plain(ax.xaxis)
  _plain(ax.yaxis)
  ax.set_xlabel('median step time (ms, log scale)')
  ax.set_ylabel('compile time (s, log scale)')
  ax.grid(True, which='both', alpha=0.3)
  ax.legend(fontsize=8)
  ax.set_title('How many training steps does one compile cost?')
  return _save(fig, path)


def _separate_labels(fig, labels, step: float = 9.0, tries: int = 12) -> None:
  """Moves each point label away from its point (on its side) until it covers no marker or earlier label."""
  fig.canvas.draw()  # settles autoscaled limits, so data-to-pixel transforms are final
  renderer = fig.canvas.get_renderer()
  # The markers themselves: a label must not cover another point either.
  placed = [Bbox.from_extents(*(t.axes.transData.transform(t.xy) - 6),
                              *(t.axes.transData.transform(t.xy) + 6)) for t in labels]
  for t in labels:
    sign = 1 if t.xyann[1] >= 0 else -1
    text_box = lambda: Text.get_window_extent(t, renderer)  # noqa: E731  (the text, not its leader)
    for _ in range(tries):
      if not any(text_box().expanded(1.05, 1.1).overlaps(b) for b in placed):
        break
      t.xyann = (t.xyann[0], t.xyann[1] + sign * step)
    placed.append(text_box())


def roofline(groups: dict[str, list[dict]], roof: Sequence[dict], ceilings: dict | None,
             path: str) -> str | None:
  """Achieved FLOP/s against arithmetic intensity under the measured roofs; None without ceilings."""
  if not ceilings or not ceilings.get('ceiling_flops_per_s') or not ceilings.get(
      'ceiling_bytes_per_s'):
    return None
  peak, bw = ceilings['ceiling_flops_per_s'], ceilings['ceiling_bytes_per_s']
  by_point = {tuple(p['key']): p for p in roof}
  fig, ax = plt.subplots(figsize=(7.5, 5))
  ints, labels = [], []
  bounds = {p.get('bound') for p in roof if p.get('intensity_flops_per_byte')}
  # One bound for every point is said once, in the legend; labels then hold only k.
  common = next(iter(bounds)) if len(bounds) == 1 else None
  # Many groups (experiments/receptive_field.py) crowd the plot: labels hold only k.
  brief = common is not None or len(groups) > 2
  how = (f'label: k; all {common}-bound' if common else
         'label: k; bounds in report.md\'s roofline table' if brief else 'label: k, bound')
  for i, (g, rs) in enumerate(groups.items()):
    pts = [by_point.get(tuple(records.point_key(r))) for r in rs]
    pts = [p for p in pts if p and p.get('intensity_flops_per_byte')]
    x = [p['intensity_flops_per_byte'] for p in pts]
    y = [p['achieved_flops_per_s'] / 1e9 for p in pts]
    ints += x
    ax.plot(x, y, MARKERS[i % len(MARKERS)],
            label=f'{g} train step ({how})')
    # Groups label on alternate sides (above, below), centred on their point;
    # _separate_labels then moves labels that would run into each other.
    above = i % 2 == 0
    for p, xi, yi in zip(pts, x, y):
      labels.append(ax.annotate(
          f'k={p["kernel_size"]}' + ('' if brief else f' {p.get("bound") or ""}'),
          (xi, yi), textcoords='offset points', xytext=(0, 5 if above else -5),
          ha='center', va='bottom' if above else 'top', fontsize=7,
          color=ax.lines[-1].get_color(),
          # a thin leader, visible once _separate_labels has moved the label away
          arrowprops={'arrowstyle': '-', 'lw': 0.4, 'color': ax.lines[-1].get_color(),
                      'shrinkA': 0, 'shrinkB': 4}))
  ridge = peak / bw
  lo = min(ints + [ridge]) / 10
  hi = max(ints + [ridge]) * 10
  xx = np.logspace(np.log10(lo), np.log10(hi), 200)
  ax.plot(xx, np.minimum(peak, xx * bw) / 1e9, '-', color='black',
          label=f'roof: min({peak / 1e9:.0f} GFLOP/s, intensity × {bw / 1e9:.1f} GB/s)')
  ax.axvline(ridge, color='grey', ls=':', lw=1, label=f'ridge {ridge:.1f} FLOP/byte')
  ax.set_xscale('log')
  ax.set_yscale('log')
  ax.set_xlim(lo, hi)
  _plain(ax.xaxis)
  _plain(ax.yaxis)
  ax.set_xlabel('arithmetic intensity (XLA FLOPs / XLA bytes accessed, FLOP/byte)')
  ax.set_ylabel('FLOP rate (GFLOP/s, log scale)')
  ax.grid(True, which='both', alpha=0.3)
  ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.14), ncol=2)
  ax.set_title('How close does each step come to the measured ceilings?')
  _separate_labels(fig, labels)
  return _save(fig, path)


def phases(recs: Sequence[dict], path: str) -> str | None:
  """Stacked bars of profiled per-phase time per point; None when no record has phase_s."""
  pts = [r for r in recs if r.get('phase_s')]
  if not pts:
    return None
  names = [n for n, _ in PHASE_GROUPS] + ['other']
  table = np.zeros((len(pts), len(names)))
  for i, r in enumerate(pts):
    for key, v in r['phase_s'].items():
      if not v:
        continue
      j = next((j for j, (_, m) in enumerate(PHASE_GROUPS) if m(key)), len(names) - 1)
      table[i, j] += v * 1e3
  keep = table.sum(0) > 0
  fig, ax = plt.subplots(figsize=(8, 0.5 * len(pts) + 2.5))
  def _algos(r):  # conv_algo=auto: which algorithm each conv layer ran
    algos = (r.get('conv_algos') or {}).values()
    return ' ' + '+'.join(algos) if shapes.substituted(algos) else ''
  def _loop(r):  # a convolution XLA ran as its own loop
    slow = records.unoptimized_convs(r)
    return f'\n{", ".join(slow)}: XLA\'s slow loop*' if slow else ''
  labels = [f'{records.point_label(r)}{_algos(r)}' + (
      f'\n(trace covers {r["trace_coverage"]:.0%})' if r.get('trace_coverage') is not None
      else '') + _loop(r) for r in pts]
  left = np.zeros(len(pts))
  cmap = plt.get_cmap('tab10')
  for j, name in enumerate(names):
    if keep[j]:
      ax.barh(labels, table[:, j], left=left, color=cmap(j % 10), label=name)
      left += table[:, j]
  ax.plot([r['step_s_median'] * 1e3 for r in pts], labels, 'k|', ms=14,
          label='median step (unprofiled)')
  ax.invert_yaxis()
  ax.set_xlabel('time per traced step (ms; medians of profiled phases, by what each thread ran)')
  if any(records.unoptimized_convs(r) for r in pts):
    ax.text(0, -0.09 - 0.4 / len(pts), '* XLA:CPU ran this convolution as its own unoptimized '
            'loop; its extra time lands on\nthat convolution\'s phase (see report.md).',
            transform=ax.transAxes, fontsize=8, va='top')
  ax.set_ylabel('point (padding, kernel size)')
  ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc='upper left')
  ax.set_title('Where does the step time go as k grows?')
  return _save(fig, path)


def draw_all(groups, group_fits, roof, ceilings, recs, workdir: str) -> dict[str, str | None]:
  """Writes every figure that has data into workdir; returns {name: file or None}."""
  out = {'scaling': scaling(groups, group_fits, os.path.join(workdir, 'scaling.png')),
         'compile_vs_step': compile_vs_step(groups, os.path.join(workdir, 'compile_vs_step.png')),
         'roofline': roofline(groups, roof, ceilings, os.path.join(workdir, 'roofline.png')),
         'phases': phases(recs, os.path.join(workdir, 'phases.png'))}
  return out
