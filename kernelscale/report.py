"""Human-readable outputs built from records alone: the printed table and results.md."""
from __future__ import annotations

import os

from kernelscale import accuracy, device


def _f(v, fmt: str, scale: float = 1.0) -> str:
  return '—' if v is None else format(v * scale, fmt)


TABLE_COLUMNS = ('k', 'padding', 'compile s', 'step ms median (p10–p90)', 'XLA GFLOP',
                 'analytic GFLOP', 'achieved GFLOP/s', 'epoch s')


def table_rows(recs: list[dict]) -> list[list[str]]:
  """One row per record, in sweep order; failed points show their error."""
  rows = []
  for r in recs:
    if r.get('status') != 'ok':
      rows.append([str(r.get('kernel_size')), str(r.get('padding')), 'failed',
                   (r.get('error') or '')[:60], '', '', '', ''])
      continue
    step = (f'{_f(r["step_s_median"], ".2f", 1e3)} '
            f'({_f(r["step_s_p10"], ".2f", 1e3)}–{_f(r["step_s_p90"], ".2f", 1e3)})')
    rows.append([str(r['kernel_size']), r['padding'], _f(r['compile_s'], '.2f'), step,
                 _f(r.get('xla_flops'), '.3f', 1e-9), _f(r.get('analytic_flops'), '.3f', 1e-9),
                 _f(r.get('achieved_flops_per_s'), '.1f', 1e-9), _f(r.get('epoch_s'), '.1f')])
  return rows


def text_table(recs: list[dict]) -> str:
  """Fixed-width table for the terminal."""
  rows = [list(TABLE_COLUMNS)] + table_rows(recs)
  widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
  lines = ['  '.join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
  lines.insert(1, '  '.join('-' * w for w in widths))
  return '\n'.join(lines)


def markdown_table(recs: list[dict]) -> str:
  rows = table_rows(recs)
  out = ['| ' + ' | '.join(TABLE_COLUMNS) + ' |',
         '|' + '|'.join('---:' for _ in TABLE_COLUMNS) + '|']
  out += ['| ' + ' | '.join(r) + ' |' for r in rows]
  return '\n'.join(out)


_EPOCH_S = ('Epoch s = steps per epoch × median step (projected, compile excluded).',
             'Epoch s is measured: wall time of one pass over the training set, input '
             'pipeline included, compile excluded.')


def write_results_md(recs: list[dict], workdir: str) -> str:
  """Writes <workdir>/results.md: context, the table and how to read it."""
  ok = [r for r in recs if r.get('status') == 'ok']
  head = ok[0] if ok else (recs[0] if recs else {})
  lines = ['# kernelscale results', '',
           f'Experiment `{head.get("experiment")}` on {head.get("platform")} '
           f'({head.get("device_kind")}), jax {head.get("jax_version")}, batch '
           f'{head.get("batch_size")}, {head.get("dtype")}, XLA_FLAGS='
           f'`{head.get("xla_flags") or "(none)"}`.', '',
           f'{len(ok)} of {len(recs)} points ok. Step time is the median of '
           f'{head.get("steps_timed")} warm, blocked steps after {head.get("warmup_steps")} '
           'warm-up steps; compile time is kept apart. ' + _EPOCH_S[head.get('epoch_s_kind')
                                                                    == 'measured'] +
           ' FLOPs count 2 per multiply-add and skip taps on zero padding.', '']
  lines += device.platform_notes(recs)
  lines += ['', markdown_table(recs), '']
  # Training-for-accuracy records (config.epochs > 0) add a plot and their table.
  lines += accuracy.results_md_section(recs, workdir)
  path = os.path.join(workdir, 'results.md')
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines))
  os.replace(tmp, path)
  return path
