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
from kernelscale.report import phase_style

MARKERS = 'osD^vP*X'
DPI = 110
# Phase keys (from profiling's phase_s) folded into the bars of the phase plot.
PHASE_GROUPS = phase_style.GROUPS
# Below this r² a power law does not describe the points: none is drawn.
MIN_R2 = 0.5
# Phase groups with their own legend entry in phases.png (the rest: 'other').
PHASE_LEGEND_LIMIT = 6


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


def _loop_rings(ax, x, y, rs) -> bool:
  """Draws the unoptimized-loop symbol around the points that ran XLA's loop; True if any."""
  slow = [(xi, yi) for xi, yi, r in zip(x, y, rs) if records.unoptimized_convs(r)]
  if slow:
    ax.plot(*zip(*slow), **phase_style.LOOP, zorder=4)
  return bool(slow)


def _loop_legend(ax) -> None:
  ax.plot([], [], **phase_style.LOOP, label=phase_style.LOOP_LABEL)


def scaling(groups: dict[str, list[dict]], group_fits: dict, path: str) -> str:
  """Step time and XLA FLOPs against k, log-log, with the fitted power laws where they fit.

  A power law whose r² is below MIN_R2 is not drawn; the legend says why.
  """
  fig, (ax_t, ax_f) = plt.subplots(1, 2, figsize=(11, 4.4))
  all_k = []
  loop = False
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
    loop |= _loop_rings(ax_t, ks, med, rs) | _loop_rings(ax_f, ks, xf, rs)
    kk = np.linspace(ks.min(), ks.max(), 50)
    for ax, metric, scale in ((ax_t, 'step_s_median', 1e3), (ax_f, 'xla_flops', 1e-9)):
      fit = group_fits.get(g, {}).get('power_k', {}).get(metric) or {}
      if fit.get('exponent') is None:
        continue
      if fit.get('r2') is not None and fit['r2'] < MIN_R2:
        # A line through points that do not follow it would read as a law.
        ax.plot([], [], ' ', label=f'{g}: no power law drawn (r² {fit["r2"]:.2f} < {MIN_R2}: '
                                   'the points do not follow one)')
        continue
      ax.plot(kk, fit['coef'] * kk ** fit['exponent'] * scale, '--', color=color,
              label=f'{g} {_fit_label(fit)}')
  for ax, ylabel in ((ax_t, 'median step time (ms, log scale)'),
                     (ax_f, 'FLOPs per train step (GFLOP, log scale)')):
    if loop:
      _loop_legend(ax)
    _k_axis(ax, all_k)
    ax.set_yscale('log')
    _plain(ax.yaxis)
    ax.set_xlabel('kernel size k (k×k, log scale)')
    ax.set_ylabel(ylabel)
    ax.grid(True, which='both', alpha=0.3)
    # Below the axes: a legend inside would cover points.
    ax.legend(fontsize=7 if len(groups) > 2 else 8, loc='upper center',
              bbox_to_anchor=(0.5, -0.16), ncol=1)
  ax_t.set_title('step time')
  ax_f.set_title('FLOPs (XLA)')
  fig.suptitle('Does step time grow with kernel size as fast as the FLOPs do?')
  return _save(fig, path)


def compile_vs_step_figure(groups: dict[str, list[dict]]):
  """The compile-vs-step figure and its point labels (placed so that none overlaps another)."""
  fig, ax = plt.subplots(figsize=(7, 5))
  xs, ys, labels = [], [], []
  loop = False
  for i, (g, rs) in enumerate(groups.items()):
    rs = [r for r in rs if r.get('compile_s') is not None]
    x = [r['step_s_median'] * 1e3 for r in rs]
    y = [r['compile_s'] for r in rs]
    ax.plot(x, y, MARKERS[i % len(MARKERS)], label=f'{g} (label: k)')
    color = ax.lines[-1].get_color()
    for r, xi, yi in zip(rs, x, y):
      labels.append(ax.annotate(
          f'k={r["kernel_size"]}', (xi, yi), textcoords='offset points', xytext=(0, 6),
          ha='center', va='bottom', fontsize=8, color=color,
          arrowprops={'arrowstyle': '-', 'lw': 0.4, 'color': color, 'shrinkA': 0, 'shrinkB': 4}))
    loop |= _loop_rings(ax, x, y, rs)
    xs += x
    ys += y
  if xs:
    # Linear axes from zero: a compile time that hardly changes looks flat.
    hi_x, hi_y = max(xs) * 1.2, max(ys) * 1.35
    xx = np.array([0.0, hi_x])
    # Lines of equal cost (compile = N steps), N from 1-2-5 steps around the points.
    ratios = [y / (x / 1e3) for x, y in zip(xs, ys)]
    ns = [m * 10 ** d for d in range(-1, 7) for m in (1, 2, 5)
          if min(ratios) / 1.5 <= m * 10 ** d <= max(ratios) * 1.5]
    while len(ns) > 4:
      ns = ns[::2]
    for n, style in zip(ns, (':', '-.', '--', '-')):
      ax.plot(xx, n * xx / 1e3, style, color='grey', lw=1, label=f'compile = {n:g} steps')
    ax.set_xlim(0, hi_x)
    ax.set_ylim(0, hi_y)
  if loop:
    _loop_legend(ax)
  ax.set_xlabel('median step time (ms)')
  ax.set_ylabel('compile time (s)')
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8, loc='lower right')
  ax.set_title('How many training steps does one compile cost?')
  _place_labels(fig, labels)
  return fig, labels


def compile_vs_step(groups: dict[str, list[dict]], path: str) -> str:
  """Compile time against step time (linear axes), with lines of 'compile = N steps'."""
  fig, _ = compile_vs_step_figure(groups)
  return _save(fig, path)


def _place_labels(fig, labels, step: float = 8.0, rings: int = 8) -> None:
  """Moves each point label to the nearest spot (around its point) that covers no marker,
  earlier label or the legend, drawing a thin leader to it."""
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  # Every marker (and loop ring) on the labels' axes, as a box a label must not cover.
  placed = []
  for ax in {t.axes for t in labels}:
    for line in ax.lines:
      r = line.get_markersize() * fig.dpi / 72 / 2 + 1
      if line.get_marker() in ('None', None, '', ' ') or not r:
        continue
      for xy in ax.transData.transform(np.column_stack(line.get_data()).astype(float)):
        if np.all(np.isfinite(xy)):
          placed.append(Bbox.from_extents(*(xy - r), *(xy + r)))
  for ax in {t.axes for t in labels}:
    if ax.get_legend() is not None:
      placed.append(ax.get_legend().get_window_extent(renderer))
  spots = [(0.0, 0.0)] + [(dx * step * r, dy * step * r) for r in range(1, rings + 1)
                          for dx, dy in ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1),
                                         (1, -1), (-1, -1))]
  for t in labels:
    box = lambda: Text.get_window_extent(t, renderer)  # noqa: E731  (the text, not its leader)
    inside = t.axes.get_window_extent(renderer)
    for dx, dy in spots:
      t.xyann = (dx, 6.0 + dy if dy >= 0 else dy - 6.0)
      t.set_va('bottom' if dy >= 0 else 'top')
      b = box()
      if (not any(b.overlaps(p) for p in placed) and inside.x0 <= b.x0 and b.x1 <= inside.x1
          and inside.y0 <= b.y0 and b.y1 <= inside.y1):
        break
    placed.append(box())


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
  # A point that ran XLA's unoptimized conv loop is named as such, not by its bound
  # (its low rate is that loop's, not the harness's overhead).
  slow = {tuple(records.point_key(r)) for rs in groups.values() for r in rs
          if records.unoptimized_convs(r)}
  bounds = {p.get('bound') for p in roof
            if p.get('intensity_flops_per_byte') and tuple(p['key']) not in slow}
  # One bound for every point is said once, in the legend; labels then hold only k.
  common = next(iter(bounds)) if len(bounds) == 1 else None
  # Many groups (experiments/receptive_field.py) crowd the plot: labels hold only k.
  brief = common is not None or len(groups) > 2
  how = (f'label: k; all {common}-bound' + (' but the ringed' if slow else '') if common else
         'label: k; bounds in report.md\'s roofline table' if brief else 'label: k, bound')
  for i, (g, rs) in enumerate(groups.items()):
    pts = [(r, by_point.get(tuple(records.point_key(r)))) for r in rs]
    pts = [(r, p) for r, p in pts if p and p.get('intensity_flops_per_byte')]
    x = [p['intensity_flops_per_byte'] for _, p in pts]
    y = [p['achieved_flops_per_s'] / 1e9 for _, p in pts]
    ints += x
    ax.plot(x, y, MARKERS[i % len(MARKERS)],
            label=f'{g} train step ({how})')
    color = ax.lines[-1].get_color()
    _loop_rings(ax, x, y, [r for r, _ in pts])
    for (r, p), xi, yi in zip(pts, x, y):
      word = ('unoptimized loop' if records.unoptimized_convs(r) else
              '' if brief else p.get('bound') or '')
      labels.append(ax.annotate(
          f'k={p["kernel_size"]}' + (f' {word}' if word else ''),
          (xi, yi), textcoords='offset points', xytext=(0, 6), ha='center', va='bottom',
          fontsize=7, color=color,
          # a thin leader, visible once _place_labels has moved the label away
          arrowprops={'arrowstyle': '-', 'lw': 0.4, 'color': color, 'shrinkA': 0, 'shrinkB': 4}))
  if slow:
    _loop_legend(ax)
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
  _place_labels(fig, labels)
  return _save(fig, path)


def phases(recs: Sequence[dict], path: str) -> str | None:
  """Stacked bars of profiled per-phase time per point; None when no record has phase_s."""
  pts = [r for r in recs if r.get('phase_s')]
  if not pts:
    return None
  names = [n for n, _ in PHASE_GROUPS] + [phase_style.OTHER]
  table = np.zeros((len(pts), len(names)))
  for i, r in enumerate(pts):
    for key, v in r['phase_s'].items():
      if v:
        table[i, names.index(phase_style.group_of(key))] += v * 1e3
  # At most 6 phase groups in the legend (+ other + the median step): the smallest fold into other.
  drawn, where = phase_style.fold(dict(zip(names, table.sum(0))), PHASE_LEGEND_LIMIT)
  live = [n for n, t in zip(names, table.sum(0)) if t > 0]
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
  for g in drawn:
    width = sum(table[:, j] for j, n in enumerate(names) if where[n] == g)
    ax.barh(labels, width, left=left, color=phase_style.COLORS[g],
            label=phase_style.other_label(where, live) if g == phase_style.OTHER else g)
    left += width
  ax.plot([r['step_s_median'] * 1e3 for r in pts], labels, 'k|', ms=14,
          label='median step (unprofiled)')
  slow = [(left[i], labels[i]) for i, r in enumerate(pts) if records.unoptimized_convs(r)]
  if slow:  # the loop symbol at the end of the bar
    ax.plot(*zip(*slow), **phase_style.LOOP, zorder=4)
  ax.invert_yaxis()
  ax.set_xlabel('time per traced step (ms; medians of profiled phases, by what each thread ran)')
  if any(records.unoptimized_convs(r) for r in pts):
    ax.text(0, -0.09 - 0.4 / len(pts), '* (red ring) XLA:CPU ran this convolution as its own unoptimized '
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
