"""The delta attribution's section of results.md: a table and delta_attribution.png.

The numbers are analysis.delta's; this module only lays them out.
"""
from __future__ import annotations

import os

from kernelscale.analysis.delta import UNATTRIBUTED, deltas

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


def plot(ds: list[dict], path: str) -> str | None:
  """Stacked bars of the per-phase increase for each k_a -> k_b; returns the path or None."""
  if not ds:
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  phases = sorted({p for d in ds for p in d['phase_delta_s']} - {UNATTRIBUTED})
  phases.sort(key=lambda p: (not p.startswith('conv'), p))
  phases.append(UNATTRIBUTED)
  cmap = plt.get_cmap('tab20')
  colors = {p: ('0.75' if p == UNATTRIBUTED else cmap(i % 20)) for i, p in enumerate(phases)}
  several = len({tuple(d['group'].items()) for d in ds}) > 1
  models_ = len({d['group'].get('model') for d in ds}) > 1  # e.g. experiments/receptive_field.py
  labels = [(f'{d["group"]["padding"]}' + (f' {d["group"].get("model")}' if models_ else '')
             + '\n' if several else '') + f'k {d["k_from"]}→{d["k_to"]}' for d in ds]
  fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(ds) + 3), 5))
  pos = [0.0] * len(ds)
  neg = [0.0] * len(ds)
  for p in phases:
    vals = [d['phase_delta_s'].get(p, 0.0) * 1e3 for d in ds]
    bottoms = [pos[i] if v >= 0 else neg[i] for i, v in enumerate(vals)]
    ax.bar(range(len(ds)), vals, bottom=bottoms, color=colors[p], label=p, width=0.6,
           edgecolor='white', linewidth=0.5)
    for i, v in enumerate(vals):
      if v >= 0:
        pos[i] += v
      else:
        neg[i] += v
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
  png = plot(ds, os.path.join(workdir, PNG_NAME))
  return ['## Where the extra step time went (delta attribution)', ''] + _algo_switches(recs) + [
          'Change of each traced phase\'s time per step between consecutive kernel sizes, '
          'in ms (and % of the change of the median step). Phases are medians over the traced '
          'steps, scaled to the untraced median step, from points whose trace covers 80–120% '
          'of its own steps. `unattributed` is the change in untraced time (dispatch, gaps '
          'between ops), so each column sums to the step change. Phases '
          'come from the profiler trace mapped to layers through the optimized HLO (`phase_s` '
          'in the records).', '', markdown(ds), '',
          f'![delta attribution]({os.path.basename(png)})', '']
