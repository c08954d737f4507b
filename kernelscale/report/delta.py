"""The delta attribution's section of results.md: a table and delta_attribution.png.

The numbers are analysis.delta's; this module only lays them out.
"""
from __future__ import annotations

import os

from kernelscale import records
from kernelscale.analysis.delta import UNATTRIBUTED, deltas
from kernelscale.report import phase_style

PNG_NAME = 'delta_attribution.png'


def _group_title(group: dict) -> str:
  return (f'{group["model"]}, {group["padding"]} padding, batch {group["batch_size"]}, '
          f'{group["dtype"]}, {group["platform"]}'
          + (f', XLA_FLAGS=`{group["xla_flags"]}`' if group.get('xla_flags') else ''))


def markdown(ds: list[dict]) -> str:
  """One table per group: rows are phases, columns are k_a -> k_b (ms and % of the increase)."""
  if not ds:
    return ''
  blocks = []
  seen: list[dict] = []
  for d in ds:
    if d['group'] not in seen:
      seen.append(d['group'])
  for g in seen:
    cols = [d for d in ds if d['group'] == g]
    phases = sorted({p for d in cols for p in d['phase_delta_s']} - {UNATTRIBUTED},
                    key=lambda p: -max(abs(d['phase_delta_s'].get(p, 0.0)) for d in cols))
    head = '| phase | ' + ' | '.join(f'k {d["k_from"]}→{d["k_to"]}' for d in cols) + ' |'
    lines = [f'**{_group_title(g)}**', '', head, '|---|' + '---:|' * len(cols)]

    def cell(v, d):
      share = f' ({100 * v / d["step_delta_s"]:.0f}%)' if abs(d['step_delta_s']) > 1e-12 else ''
      return f'{v * 1e3:+.1f}{share}'

    for p in phases + [UNATTRIBUTED]:
      lines.append(f'| {p} | ' + ' | '.join(cell(d['phase_delta_s'].get(p, 0.0), d)
                                             for d in cols) + ' |')
    lines.append('| **step, median** | ' + ' | '.join(
        f'**{d["step_delta_s"] * 1e3:+.1f}**' for d in cols) + ' |')
    lines.append('| step, timed median (for reference) | ' + ' | '.join(
        '—' if d['timed_step_delta_s'] is None else f'{d["timed_step_delta_s"] * 1e3:+.1f}'
        for d in cols) + ' |')
    blocks.append('\n'.join(lines))
  return '\n\n'.join(blocks)


# Phase groups with their own legend entry (the rest: 'other'); with other, unattributed and
# the two step markers the legend holds at most 8 entries.
LEGEND_LIMIT = 4


def _loop_columns(ds: list[dict], recs: list[dict]) -> list[int]:
  """Columns whose k_from or k_to point ran a convolution as XLA's unoptimized loop."""
  slow = {(r.get('model'), r.get('padding'), r.get('kernel_size')) for r in recs
          if records.unoptimized_convs(r)}
  return [i for i, d in enumerate(ds)
          if {(d['group'].get('model'), d['group'].get('padding'), k)
              for k in (d['k_from'], d['k_to'])} & slow]


def plot(ds: list[dict], path: str, recs: list[dict] | None = None) -> str | None:
  """Stacked bars of the per-phase increase for each k_a -> k_b; returns the path or None.

  Phases are drawn in phase_style's groups and colours (those of phases.png); a
  column touching a point run as XLA's unoptimized loop carries its red ring.
  """
  if not ds:
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  grouped = []
  for d in ds:
    g: dict = {}
    for p, v in d['phase_delta_s'].items():
      key = UNATTRIBUTED if p == UNATTRIBUTED else phase_style.group_of(p)
      g[key] = g.get(key, 0.0) + v * 1e3
    grouped.append(g)
  totals: dict = {}
  for g in grouped:
    for p, v in g.items():
      totals[p] = totals.get(p, 0.0) + abs(v)
  drawn, where = phase_style.fold(totals, LEGEND_LIMIT)
  live = [p for p in totals if totals[p] > 0 and p != UNATTRIBUTED]
  several = len({tuple(d['group'].items()) for d in ds}) > 1
  models_ = len({d['group'].get('model') for d in ds}) > 1  # e.g. experiments/receptive_field.py
  labels = [(f'{d["group"]["padding"]}' + (f' {d["group"].get("model")}' if models_ else '')
             + '\n' if several else '') + f'k {d["k_from"]}→{d["k_to"]}' for d in ds]
  fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(ds) + 3), 5))
  pos = [0.0] * len(ds)
  neg = [0.0] * len(ds)
  for p in drawn + [UNATTRIBUTED]:
    vals = [sum(v for q, v in g.items() if (q == p if p == UNATTRIBUTED else
                                            q != UNATTRIBUTED and where.get(q, q) == p))
            for g in grouped]
    bottoms = [pos[i] if v >= 0 else neg[i] for i, v in enumerate(vals)]
    name = (phase_style.other_label(where, live) if p == phase_style.OTHER else
            f'{UNATTRIBUTED} (untraced time)' if p == UNATTRIBUTED else p)
    ax.bar(range(len(ds)), vals, bottom=bottoms, color=phase_style.COLORS[p], label=name,
           width=0.6, edgecolor='white', linewidth=0.5)
    for i, v in enumerate(vals):
      if v >= 0:
        pos[i] += v
      else:
        neg[i] += v
  loop = _loop_columns(ds, recs or [])
  if loop:  # the unoptimized-loop symbol above the column (explained below the plot)
    tops = [max(pos[i], d['step_delta_s'] * 1e3, (d['timed_step_delta_s'] or 0.0) * 1e3)
            for i, d in enumerate(ds)]
    span = max(tops) - min(neg) or 1.0
    ax.plot(loop, [tops[i] + 0.1 * span for i in loop], **phase_style.LOOP, zorder=4)
    ax.text(0, -0.2, f'red ring: the column\'s k_from or k_to point {phase_style.LOOP_LABEL}',
            transform=ax.transAxes, fontsize=8, va='top')
  ax.scatter(range(len(ds)), [d['step_delta_s'] * 1e3 for d in ds], color='black', marker='D',
             zorder=3, label='step time change (traced window)')
  timed = [(i, d['timed_step_delta_s'] * 1e3) for i, d in enumerate(ds)
           if d['timed_step_delta_s'] is not None]
  if timed:
    ax.scatter(*zip(*timed), color='black', marker='_', s=300, zorder=3,
               label='step time change (timed median)')
  ax.axhline(0, color='black', linewidth=0.8)
  ax.set_xticks(range(len(ds)))
  ax.set_xticklabels(labels)
  ax.set_xlabel('kernel size step (k×k → next k×k)')
  ax.set_ylabel('increase in step time (ms per step)')
  g = ds[0]['group']
  ax.set_title('Where did the extra step time go when the kernel grew?\n'
               f'{g["model"]}, ' + ('' if several else f'{g["padding"]} padding, ')
               + f'batch {g["batch_size"]}, {g["dtype"]}, {g["platform"]}',
               fontsize=11)
  ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=110, bbox_inches='tight')  # keep a long title whole on narrow plots
  plt.close(fig)
  return path


def _algo_switches(recs: list[dict]) -> list[str]:
  """A caution line per pair of neighbouring k where a conv layer changed algorithm."""
  out = []
  by_pad: dict = {}
  for r in recs:
    if r.get('status') == 'ok' and r.get('conv_algos'):
      by_pad.setdefault(r['padding'], []).append(r)
  for pad, rs in sorted(by_pad.items()):
    rs.sort(key=lambda r: r['kernel_size'])
    for a, b in zip(rs, rs[1:]):
      changed = [f'{layer} {a["conv_algos"][layer]} → {b["conv_algos"].get(layer)}'
                 for layer in sorted(a['conv_algos'])
                 if a['conv_algos'][layer] != b['conv_algos'].get(layer)]
      if changed:
        out.append(f'- {pad} k={a["kernel_size"]}→{b["kernel_size"]}: {", ".join(changed)} '
                   '(conv_algo=auto): that layer\'s phases are not comparable across this step '
                   '(a dft layer has one `backward` phase instead of backward_input/_filter).')
  return out + [''] if out else []


def results_md_section(recs: list[dict], workdir: str) -> list[str]:
  """Lines for results.md (table + PNG link), writing the PNG to the workdir; [] without traces."""
  ds = deltas(recs)
  if not ds:
    return []
  png = plot(ds, os.path.join(workdir, PNG_NAME), recs)
  return ['## Where the extra step time went (delta attribution)', ''] + _algo_switches(recs) + [
          'Change of each traced phase\'s time per step between consecutive kernel sizes, '
          'in ms (and % of the change of the median step). Phases are medians over the traced '
          'steps, scaled to the untraced median step, from points whose trace covers 80–120% '
          'of its own steps. `unattributed` is the change in untraced time (dispatch, gaps '
          'between ops), so each column sums to the step change. Phases '
          'come from the profiler trace mapped to layers through the optimized HLO (`phase_s` '
          'in the records).', '', markdown(ds), '',
          f'![delta attribution]({os.path.basename(png)})', '']


def report_md_lines(workdir: str) -> list[str]:
  """report.md's link to delta_attribution.png (written with results.md), or [] without it."""
  if not os.path.exists(os.path.join(workdir, PNG_NAME)):
    return []
  caption = ('Where the extra step time went between consecutive kernel sizes, per phase '
             '(table in results.md)')
  return [f'![{caption}]({PNG_NAME})', '', f'*{caption}*', '']
