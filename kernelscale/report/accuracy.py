"""The accuracy mode's section of results.md: test accuracy against measured training time.

Reads the records measure.training wrote (test_accuracy, train_wall_s, epoch_s
measured end to end, data_wait_s); draws accuracy_vs_time.png beside it.
"""
from __future__ import annotations

import os

from kernelscale import records

PLOT_FILE = 'accuracy_vs_time.png'


def _ok(recs: list[dict]) -> list[dict]:
  return [r for r in recs if r.get('status') == 'ok' and r.get('test_accuracy') is not None]


def plot_accuracy_vs_time(recs: list[dict], path: str) -> str | None:
  """Test accuracy against measured training time, one marker per k, a line per padding.

  Args:
    recs: records; those without test_accuracy are ignored.
    path: the PNG to write.

  Returns:
    path, or None when no record has a test accuracy.
  """
  ok = _ok(recs)
  if not ok:
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  curves = [r for r in ok if len(r.get('accuracy_curve') or []) > 1]
  if curves:
    fig, (ax, cax) = plt.subplots(1, 2, figsize=(11.5, 4.4), dpi=120)
    _plot_curves(cax, curves)
  else:
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
  groups: dict[tuple, list[dict]] = {}
  many_seeds = len({r.get('seed') for r in ok}) > 1
  for r in ok:
    # One line per seed when the run trained several (config.repeats): a line joins kernel
    # sizes, never two seeds of one k.
    groups.setdefault((r.get('padding'), r.get('dtype'), r.get('batch_size'),
                       records.design(r), r.get('seed') if many_seeds else None), []).append(r)
  for (padding, dtype, batch, design, seed), rs in groups.items():
    rs = sorted(rs, key=lambda r: r['kernel_size'])
    x = [r['train_wall_s'] for r in rs]
    y = [r['test_accuracy'] for r in rs]
    ax.plot(x, y, marker='o', label=f'{design.strip()}{", " if design else ""}{padding}, '
                                    f'{dtype}, batch {batch}'
                                    + (f', seed {seed}' if seed is not None else ''))
    for r, xi, yi in zip(rs, x, y):
      ax.annotate(f'k={r["kernel_size"]}', (xi, yi), textcoords='offset points', xytext=(4, 4),
                  fontsize=8)
  head = ok[0]
  epochs = head.get('epochs')
  ax.set_xlabel(f'training time for {epochs} epoch(s), measured end to end [s]\n'
                '(input pipeline included, compile and evaluation excluded)')
  ax.margins(x=0.12, y=0.15)  # room for the k= labels
  ax.set_ylabel(f'test accuracy (fraction of {head.get("test_examples")} test images)')
  ax.set_title(f'Does a larger kernel buy accuracy worth its time?\n'
               f'{head.get("data")}, {epochs} epoch(s), {head.get("device_kind")}', fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(title='padding, dtype, batch', fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return path


def _plot_curves(ax, recs: list[dict]) -> None:
  """Test accuracy against training seconds during training, a line per point, the target dashed."""
  target = recs[0].get('target_accuracy')
  seeds = sorted({r.get('seed') or 0 for r in recs})
  lines = sorted({(r.get('padding'), records.design(r), r['kernel_size']) for r in recs})
  colours = {key: f'C{i % 10}' for i, key in enumerate(lines)}  # one colour per point, a dash per seed
  for r in sorted(recs, key=lambda r: (r.get('padding'), records.design(r), r['kernel_size'],
                                       r.get('seed') or 0)):
    pts = r['accuracy_curve']
    seed = f' seed {r.get("seed")}' if len(seeds) > 1 else ''
    line, = ax.plot([p[1] for p in pts], [p[2] for p in pts], marker='.',
                    color=colours[(r.get('padding'), records.design(r), r['kernel_size'])],
                    ls=('-', '--', ':', '-.')[seeds.index(r.get('seed') or 0) % 4],
                    label=f'k={r["kernel_size"]}{records.design(r)} {r.get("padding")}{seed}')
    hit = next((p for p in pts if p[0] == r.get('steps_to_target')), None)
    if hit is not None:
      ax.plot([hit[1]], [hit[2]], marker='o', mfc='none', ms=9, color=line.get_color())
  if target is not None:
    ax.axhline(target, color='0.4', ls='--', lw=1)
    ax.annotate(f'target {target:g}', (0, target), textcoords='offset points', xytext=(2, 3),
                fontsize=8, color='0.3', xycoords=('axes fraction', 'data'))
  lo = min(p[2] for r in recs for p in r['accuracy_curve'])
  ax.set_ylim(max(lo, (target or 1) - 0.15), None)  # the approach to the target, not the first steps
  ax.set_xlabel('training time so far [s] (evaluations excluded)')
  ax.set_ylabel('test accuracy')
  ax.set_title(f'Reaching the target: test set every {recs[0].get("eval_every")} steps\n'
               '(ring: first evaluation at or above the target)', fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)


def _f(v) -> str:
  return '—' if v is None else str(v)


def _pct(part, whole) -> str:
  return '—' if part is None or not whole else f'{100.0 * part / whole:.1f}%'


def results_md_section(recs: list[dict], workdir: str) -> list[str]:
  """Markdown lines for results.md (and the PNG beside it); [] without accuracy records."""
  ok = _ok(recs)
  png = plot_accuracy_vs_time(recs, os.path.join(workdir, PLOT_FILE))
  if png is None:
    return []
  head = ok[0]
  lines = ['## Accuracy against time', '',
           f'{head.get("data")} {head.get("data_version")}, {head.get("epochs")} epoch(s) per '
           f'point, {head.get("train_examples")} training and {head.get("test_examples")} test '
           'images. Times are measured end to end with the input pipeline '
           f'(prefetch depth {head.get("prefetch")}), not projected; data wait is the time the '
           'host was blocked waiting for a batch.', '',
           f'![test accuracy against training time]({PLOT_FILE})', '',
           '| k | padding | seed | test accuracy | train loss | epoch s (measured) | data wait s '
           '(% of epoch) | compute s | compile s | steps to target | train s to target |',
           '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
  for r in ok:
    curve = bool(r.get('accuracy_curve')) and r.get('eval_every')
    to = ('—' if not curve else 'not reached' if r.get('steps_to_target') is None
          else f'{r["steps_to_target"]}')
    to_s = f'{r["train_s_to_target"]:.1f}' if curve and r.get('train_s_to_target') is not None else '—'
    lines.append(f'| {r["kernel_size"]}{records.design(r)} | {r["padding"]} | {_f(r.get("seed"))} | '
                 f'{r["test_accuracy"]:.4f} | '
                 f'{r["train_loss"]:.4f} | {r["epoch_s"]:.1f} | {r["data_wait_s"]:.3f} '
                 f'({_pct(r["data_wait_s"], r["epoch_s"])}) | {r["compute_s"]:.1f} | '
                 f'{r["compile_s"]:.2f} | {to} | {to_s} |')
  if any(r.get('eval_every') for r in ok):
    lines += ['', f'Steps to target: the first training step at which the whole test split '
              f'scored at least {head.get("target_accuracy")} (evaluated every '
              f'{head.get("eval_every")} steps, so that is the resolution; it moves from seed to '
              'seed, and `--config.repeats=3` trains each point with three). It says how '
              'many steps training needs, which kernel size can change apart from how long each '
              'step takes. Train s to target: training wall time up to that step, '
              'evaluations excluded.']
  return lines + ['']
