"""Human-readable outputs built from records alone: the printed table, results.md,
and (from the analysis) report.md, analysis.json and the PNG plots."""
from __future__ import annotations

import json
import math
import os

from kernelscale import records
from kernelscale.analysis import claims, fits, predict, summary
from kernelscale.net import shapes
from kernelscale.report import accuracy, delta, devices, notes, trust


def _f(v, fmt: str, scale: float = 1.0) -> str:
  return '—' if v is None else format(v * scale, fmt)


TABLE_COLUMNS = ('k', 'padding', 'compile s', 'step ms median (p10–p90)', 'XLA GFLOP',
                 'analytic GFLOP', 'achieved GFLOP/s', 'epoch s')


def _k_cell(r: dict) -> str:
  """k, with the design when it is not one plain k x k conv (shapes.BLOCKS)."""
  return str(r.get('kernel_size')) + records.design(r)


def table_rows(recs: list[dict]) -> list[list[str]]:
  """One row per record, in sweep order; failed points show their error."""
  rows = []
  for r in recs:
    if r.get('status') != 'ok':
      rows.append([_k_cell(r), str(r.get('padding')), 'failed',
                   (r.get('error') or '')[:60], '', '', '', ''])
      continue
    step = (f'{_f(r["step_s_median"], ".2f", 1e3)} '
            f'({_f(r["step_s_p10"], ".2f", 1e3)}–{_f(r["step_s_p90"], ".2f", 1e3)})')
    rows.append([_k_cell(r), r['padding'], _f(r['compile_s'], '.2f'), step,
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


def conv_algo_notes(recs: list[dict]) -> list[str]:
  """Which algorithm computed each conv layer (config.conv_algo), as markdown lines."""
  ok = [r for r in recs if r.get('status') == 'ok' and r.get('conv_algos')]
  if not ok:
    return []
  if not any(shapes.substituted(r['conv_algos'].values()) for r in ok):
    if ok[0].get('conv_algo') == 'auto':
      return ['', 'Convolutions: `nn.Conv` as written (lax.conv) in every layer: '
              '`conv_algo=auto` keeps it on this platform and dtype (its other algorithms are '
              'for float32 on CPU; kernelscale/net/convs.py).']
    return ['', 'Convolutions: `nn.Conv` as written (lax.conv) in every layer, '
            '`conv_algo=xla`. `--config.conv_algo=auto` computes the same function with a '
            'faster algorithm per layer where one is known (kernelscale/net/convs.py).']
  per = '; '.join(f'k={r["kernel_size"]} {r["padding"]}: ' +
                  ', '.join(f'{layer} {algo}' for layer, algo in sorted(r['conv_algos'].items()))
                  for r in sorted(ok, key=lambda r: (r['padding'], r['kernel_size'])))
  return ['', f'Convolutions (`conv_algo={ok[0].get("conv_algo")}`, kernelscale/net/convs.py): {per}. '
          'Analytic FLOPs still count the direct convolution the network defines; XLA FLOPs '
          'count what ran: fewer for `dft` layers, more for `rows` layers (products with '
          'the zeros of its banded matrix).']


def _paragraphs(notes: list[str]) -> list[str]:
  """Each note its own markdown paragraph (consecutive lines would run together)."""
  return [line for note in notes for line in (note, '')]


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
  lines += _paragraphs(notes.platform_notes(recs))
  lines += conv_algo_notes(recs)
  lines += ['', markdown_table(recs), '']
  lines += delta.results_md_section(recs, workdir)
  # Training-for-accuracy records (config.epochs > 0) add a plot and their table.
  lines += accuracy.results_md_section(recs, workdir)
  path = os.path.join(workdir, 'results.md')
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines))
  os.replace(tmp, path)
  return path


# --------------------------------------------------------------------------
# report.md, analysis.json and the plots (issue 4)

QUESTION = ('Why does CNN training time per epoch grow so sharply when the convolution kernel '
            'grows from 3×3 to 5×5, 7×7 …?')


def _json_safe(v):
  """NaN and inf become null, recursively (JSON has neither)."""
  if isinstance(v, float) and not math.isfinite(v):
    return None
  if isinstance(v, dict):
    return {k: _json_safe(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_json_safe(x) for x in v]
  return v


def _write_atomic(path: str, text: str) -> str:
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    f.write(text)
  os.replace(path + '.tmp', path)
  return path


def _md_cell(s) -> str:
  return str(s).replace('|', '\\|').replace('\n', ' ')


def _exp_cell(fit: dict | None) -> str:
  if not fit or fit.get('exponent') is None:
    return '—'
  se = fit.get('exponent_se')
  return f'{fit["exponent"]:.2f}' + (f' ± {se:.2f}' if se is not None else '') + (
      f' (r² {fit["r2"]:.2f})' if fit.get('r2') is not None else '')


def roofline_table(recs: list[dict], result: dict) -> str:
  """Per point: intensity, achieved vs attainable FLOP/s, bound, optimizer time, LOO error."""
  best = result.get('prediction_model')
  got = result['loo'].get(best, {}) if best else {}
  loo = {tuple(p['key']): p for p in got.get('points', [])}
  apart = {tuple(p['key']): p for p in got.get('set_apart', [])}
  roof = {tuple(p['key']): p for p in result['roofline']}
  cols = ('k', 'padding', 'FLOP/byte', 'achieved GFLOP/s', 'attainable GFLOP/s',
          'fraction', 'bound', 'optimizer ms', 'LOO predicted ms (error)')
  out = ['| ' + ' | '.join(cols) + ' |', '|' + '|'.join('---:' for _ in cols) + '|']
  for r in recs:
    if r.get('status') != 'ok':
      continue
    p = roof.get(tuple(records.point_key(r)), {})
    lp, sa = loo.get(tuple(records.point_key(r))), apart.get(tuple(records.point_key(r)))
    cell = f'{lp["predicted_s"] * 1e3:.1f} ({lp["rel_error"]:+.0%})' if lp else '—'
    if sa:
      cell = (f'set apart: {sa["predicted_s"] * 1e3:.1f} ({sa["rel_error"]:+.0%})'
              if sa['predicted_s'] is not None else 'set apart')
    opt, _ = claims.optimizer_s(r)
    out.append('| ' + ' | '.join([
        _k_cell(r), r['padding'], _f(p.get('intensity_flops_per_byte'), '.2f'),
        _f(p.get('achieved_flops_per_s'), '.1f', 1e-9),
        _f(p.get('attainable_flops_per_s'), '.1f', 1e-9), _f(p.get('achieved_fraction'), '.1%'),
        p.get('bound') or '—', _f(opt, '.2f', 1e3), cell]) + ' |')
  return '\n'.join(out)


def _scored(v: dict, result: dict) -> str:
  """' (SAME only)' when a model's leave-one-out scored only some of the run's paddings."""
  every = {p['padding'] for p in result['roofline']} if result.get('roofline') else set()
  got = {p['padding'] for p in v['points']}
  return f' ({", ".join(sorted(got))} only)' if got and every and got != every else ''


def set_apart_lines(result: dict) -> list[str]:
  """The points left out of the prediction fits (XLA's unoptimized conv loop), and how far off they lie."""
  loop = result.get('unoptimized_loop_points') or []
  if not loop:
    return []
  names = '; '.join(f'{p["where"]} ({", ".join(p["unoptimized_convs"])})' for p in loop)
  head = (f'{len(loop)} point(s) ran a convolution as XLA:CPU\'s own unoptimized loop instead of '
          f'a conv library (see Measurements): {names}.')
  if result.get('set_apart_skipped'):
    return ['', f'{head} They were not set apart from the predictions: '
            f'{result["set_apart_skipped"]}.']
  best = result.get('prediction_model')
  off = result['loo'].get(best, {}).get('set_apart') if best else None
  if not off:
    return ['', f'{head} They are set apart from the leave-one-out predictions; no law could be '
            'fitted to the other points.']
  items = []
  for p in off:
    if p['predicted_s'] is not None:
      items.append(f'{p["where"]} {p["predicted_s"] * 1e3:.1f} ms predicted, '
                   f'{p["actual_s"] * 1e3:.1f} ms measured (×{p["actual_s"] / p["predicted_s"]:.2f})')
    else:
      items.append(f'{p["where"]} {p["actual_s"] * 1e3:.1f} ms measured, no prediction (no other '
                   'point of its group to fit)')
  med, worst = (result.get('loo_all_points_median_abs_rel_error'),
                result.get('loo_all_points_max_abs_rel_error'))
  return ['', f'{head} Their step time is not on the law of the others, so they are set apart '
          'from the leave-one-out predictions above (they stay in the power-law and line fits, '
          f'and in the verdicts). Predicted from the others ({predict.MODEL_WORDS[best]}): '
          + '; '.join(items) + '.' +
          (f' Scored as ordinary points they would make that model\'s median error {med:.1%} '
           f'(worst {worst:.0%}).' if med is not None else '')]


def fits_section(result: dict) -> list[str]:
  """Exponent table per group, the line fits, leave-one-out errors and the ceilings."""
  groups = [g for g, f in result['fits'].items() if 'power_k' in f]
  lines = ['## Scaling fits', '',
           'Power laws y = c·k^e fitted by least squares on log-log axes; exponent ± standard '
           'error (r² of the fit). A power law is only a summary: with VALID padding FLOPs rise '
           'then fall, and the low r² says so.', '',
           '| quantity | ' + ' | '.join(groups) + ' |', '|---|' + '---|' * len(groups)]
  for m in fits.FIT_METRICS:
    lines.append(f'| {m} | ' + ' | '.join(
        _exp_cell(result['fits'][g]['power_k'].get(m)) for g in groups) + ' |')
  lines += ['', 'Line fit step_s = a + b·xla_flops (a: fixed cost per step; b: seconds per FLOP):', '']
  for g, f in result['fits'].items():
    lin = f.get('linear_step_s_vs_xla_flops')
    if lin:
      se = lambda v, s: f' ± {v * s:.3g}' if v is not None else ''
      lines.append(f'- {g}: a = {lin["a"] * 1e3:.1f}{se(lin["a_se"], 1e3)} ms, b = '
                   f'{lin["b"] * 1e12:.2f}{se(lin["b_se"], 1e12)} ms per GFLOP '
                   f'(1/b = {1 / lin["b"] / 1e9 if lin["b"] > 0 else float("nan"):.1f} GFLOP/s), '
                   f'r² {lin["r2"]:.2f}, n = {lin["n"]}')
  lines += ['', 'Leave-one-out: each point\'s step time predicted from a fit to the others '
            '(median |relative error|, worst):', '']
  for m, v in result['loo'].items():
    mark = ' ← used for predictions' if m == result.get('prediction_model') else ''
    lines.append(f'- {predict.MODEL_WORDS[m]}: ' + (
        f'{v["median_abs_rel_error"]:.1%}, worst {v["max_abs_rel_error"]:.0%} over '
        f'{len(v["points"])} points{_scored(v, result)}{mark}'
        if v['median_abs_rel_error'] is not None else 'not enough points'))
  lines += set_apart_lines(result)
  c = result.get('ceilings')
  lines += ['', '## Device ceilings', '']
  if c:
    bf = c.get('ceiling_bf16_flops_per_s')
    lines += [f'- float32 matmul: {c["ceiling_flops_per_s"] / 1e9:.1f} GFLOP/s '
              f'({c["matmul_n"]}×{c["matmul_n"]})',
              '- bfloat16 matmul: ' + (f'{bf / 1e9:.1f} GFLOP/s ({c.get("bf16_matmul_n")}²)'
                                        if bf else 'not measured'),
              f'- memory bandwidth: {c["ceiling_bytes_per_s"] / 1e9:.1f} GB/s (read + write, '
              f'{c["copy_bytes_per_call"] / 2**20:.0f} MiB per call)',
              f'- method: {c.get("method")}; device {c.get("device_key")}, measured '
              f'{c.get("measured_at")}'] + [f'- note: {n}' for n in c.get('notes', [])]
    steady = [c[f'{k}_median'] / c[k] for k in ('ceiling_flops_per_s', 'ceiling_bytes_per_s')
              if c.get(f'{k}_median') and c.get(k)]
    if steady and min(steady) < 0.8:
      # Other processes only slow calls down: a median far below the best says
      # the machine was shared while the ceilings were measured.
      lines.append(f'- caution: median calls ran at {min(steady):.0%} of the best, so the '
                   'machine was busy; the ceilings may be low and achieved fractions high')
    lines.append(f'- bound rule: overhead when the step is over {result["overhead_factor"]:.0f}× '
                 'its roofline floor (flops / attainable), else memory left of the ridge and '
                 'compute right of it')
  else:
    lines.append('Not measured for this workdir (no ceilings.json): the roofline and the bound '
                 'are left out.')
  return lines


PLOT_CAPTIONS = {
    'scaling': 'Step time and XLA FLOPs against k on log-log axes, with the fitted power laws.',
    'compile_vs_step': 'Compile time (kept out of step time) against the median step time.',
    'roofline': 'Each point\'s achieved FLOP rate at its arithmetic intensity, under the '
                'measured compute and bandwidth roofs.',
    'phases': 'Profiled time per phase of the step, per point.',
}


DESIGN_WORDS = {
    'plain': 'one k×k conv (the seed network)',
    'stacked': '(k−1)/2 stacked 3×3 convs with ReLU between (VGG)',
    'separable': 'a depthwise k×k conv, then a 1×1 conv (MobileNet)',
    'spatial': 'a k×1 conv, then a 1×k conv (Inception v3)',
    'dilated': 'one 3×3 conv with dilation (k−1)/2: the same span from 9 taps (atrous)',
}


def designs_section(result: dict) -> list[str]:
  """'Same receptive field, other designs' (summary.same_receptive_field).

  A run without designs gets a pointer to experiments/receptive_field.py instead.
  """
  rows = result.get('same_receptive_field') or []
  if not rows:
    return ['## What to do about it', '',
            '`python run.py --config=experiments/receptive_field.py` times four designs with the '
            'same k×k receptive field (stacked 3×3, depthwise-separable, k×1 then 1×k, dilated '
            '3×3) beside this network, and its report compares their step time, FLOPs and '
            'parameters.', '']
  blocks = [b for b in DESIGN_WORDS if any(r['block'] == b for r in rows)]
  acc = any(r.get('test_accuracy') is not None for r in rows)
  lines = ['## Same receptive field, other designs', '',
           'Every conv layer after the first is replaced by a design that sees the same k×k '
           'window and gives the same output shape; the first layer (the stem, which reads the '
           'image) stays one k×k conv in every design. Designs: '
           + '; '.join(f'**{b}**: {DESIGN_WORDS[b]}' for b in blocks) + '.', '',
           '"× plain" compares with the plain k×k network at the same k and padding, timed in '
           'the same run. "XLA / model FLOPs" is what XLA executes over what the design needs '
           '(above 1: XLA computes more than the model asks for).', '']
  cols = ['k', 'padding', 'design', 'step ms', '× plain time', '× plain FLOPs',
          'XLA / model FLOPs', 'params'] + (['test accuracy'] if acc else [])
  lines += ['| ' + ' | '.join(cols) + ' |',
            '|' + '|'.join('---' if c in ('padding', 'design') else '---:' for c in cols) + '|']
  for r in rows:
    cells = [str(r['k']), r['padding'], r['block'], _f(r['step_s'], '.1f', 1e3),
             _f(r['step_ratio'], '.2f'), _f(r['analytic_flops_ratio'], '.2f'),
             _f(r['xla_over_analytic'], '.2f'),
             f'{r["params"]:,}' if r.get('params') is not None else '—']
    if acc:
      cells.append(_f(r.get('test_accuracy'), '.4f'))
    lines.append('| ' + ' | '.join(cells) + ' |')
  twins = [r for r in rows if r.get('same_as_plain') and r.get('step_ratio')]
  if twins:
    lo, hi = min(r['step_ratio'] for r in twins), max(r['step_ratio'] for r in twins)
    spread = f'×{lo:.2f}' if f'{lo:.2f}' == f'{hi:.2f}' else f'×{lo:.2f}–{hi:.2f}'
    lines += ['', f'Control: at k=3 {" and ".join(sorted({r["block"] for r in twins}))} '
              f'{"is" if len(twins) == 1 else "are"} the plain network itself (one 3×3 conv), timed '
              f'again: {spread} of the plain step. That is this run\'s noise for one ratio; a '
              'ratio closer to 1 than that is not a difference.']
  loop = sorted({f'{r["block"]} k={r["k"]}' for r in rows if r['unoptimized_convs']})
  if loop:
    lines += ['', 'These ran a convolution as XLA\'s unoptimized loop (see Measurements): '
              + ', '.join(loop) + '.']
  return lines + ['']


def _algo_caution(ok: list[dict]) -> list[str]:
  """A warning under the answer when layers ran other algorithms than nn.Conv."""
  if not any(shapes.substituted((r.get('conv_algos') or {}).values()) for r in ok):
    return []
  return ['**Read with care:** these steps ran other conv algorithms than `nn.Conv` '
          '(`conv_algo=auto`, listed under Measurements). XLA FLOPs and achieved rates count '
          'what ran; a `dft` layer runs far fewer FLOPs than the direct convolution it '
          'replaces and a `rows` layer more, so FLOP-based explanations describe those algorithms. The analytic '
          'FLOPs column is the direct convolution\'s count. Run with `conv_algo=xla` (the '
          'default) to explain `nn.Conv` itself.', '']


def _plain(result: dict) -> list[str]:
  """The plain answer (analysis/plain.py), one paragraph."""
  pa = (result.get('plain_answer') or {}).get('sentences') or []
  return [' '.join(pa), ''] if pa else []


def write_report_md(recs: list[dict], result: dict, figures: dict, workdir: str) -> str:
  """Writes <workdir>/report.md: question, answer, table, verdicts, plots, then the fits."""
  ok = [r for r in recs if r.get('status') == 'ok']
  head = ok[0] if ok else (recs[0] if recs else {})
  lines = ['# Why does training time grow with kernel size?', '', '## Question', '', QUESTION, '',
           '## Answer', ''] + _plain(result) + ['In numbers: ' + ' '.join(result['answer']),
                                               ''] + _algo_caution(ok) + [
           '## Measurements', '',
           f'`{head.get("experiment")}` on {head.get("platform")} ({head.get("device_kind")}), '
           f'jax {head.get("jax_version")}, batch {head.get("batch_size")}, {head.get("dtype")}, '
           f'XLA_FLAGS=`{head.get("xla_flags") or "(none)"}`; {len(ok)} of {len(recs)} points ok. '
           f'Step: median of {head.get("steps_timed")} warm blocked steps; compile kept apart.', '']
  lines += _paragraphs(notes.platform_notes(recs))
  lines += conv_algo_notes(recs) + ['',
           markdown_table(recs), ''] + trust.epoch_lines(result) + [roofline_table(recs, result), '',
           '## Verdicts on the usual explanations', '',
           '| # | claim | verdict | deciding numbers |', '|---|---|---|---|']
  for c in result['claims']:
    lines.append(f'| {c["id"]} | **{_md_cell(c.get("name", ""))}**: {_md_cell(c["claim"])} | '
                 f'**{c["verdict"]}** | {_md_cell(c["evidence"])} |')
  lines += [''] + trust.profile_lines(result) + ['## Plots', '']
  for name, path in figures.items():
    if path:
      lines += [f'![{PLOT_CAPTIONS[name]}]({os.path.basename(path)})', '',
                f'*{PLOT_CAPTIONS[name]}*', '']
    elif name == 'phases':
      lines += ['*No phase breakdown: no record carries profiled `phase_s`.*', '']
    elif name == 'roofline':
      lines += ['*No roofline plot: no device ceilings for this workdir.*', '']
  lines += delta.report_md_lines(workdir)  # delta_attribution.png, drawn with results.md
  # Training-for-accuracy records (config.epochs > 0): the accuracy-against-time plot.
  lines += accuracy.results_md_section(recs, workdir)
  lines += designs_section(result) + devices.section(recs)  # [] without a devices axis
  lines += fits_section(result) + ['']
  return _write_atomic(os.path.join(workdir, 'report.md'), '\n'.join(lines))


def write_all(recs: list[dict], workdir: str, ceilings: dict | None,
              predict_k: int | None = None) -> dict:
  """analysis.json, the plots and report.md from records (and ceilings) alone.

  With `predict_k`, analysis.json also holds `predictions`: the predicted step
  time at that kernel size per padding group (predict.predict), or why none.

  Returns:
    {'analysis': the analysis dict, 'analysis_json', 'report_md', 'figures'}.
  """
  from kernelscale.report import plots
  result = summary.analyze(recs, ceilings)
  if predict_k is not None:
    result['predictions'] = predict.predict(recs, predict_k, result['prediction_model'],
                                             set_apart=not result.get('set_apart_skipped'))
  ok = records.ok_records(recs)
  figures = plots.draw_all(fits.group_points(ok), result['fits'], result['roofline'],
                           ceilings, ok, workdir) if ok else {}
  result['figures'] = {k: (os.path.basename(v) if v else None) for k, v in figures.items()}
  aj = _write_atomic(os.path.join(workdir, 'analysis.json'),
                     json.dumps(_json_safe(result), indent=1, ensure_ascii=False))
  md = write_report_md(recs, result, figures, workdir)
  return {'analysis': result, 'analysis_json': aj, 'report_md': md, 'figures': figures}
