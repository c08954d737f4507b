"""report.md's "How far the profile is trusted": coverage, tracing overhead, dropped steps,
and each conv phase timed alone against its profiled time (analysis.json's `profile`)."""
from __future__ import annotations


def _f(v, fmt: str) -> str:
  return '—' if v is None else format(v, fmt)


def profile_lines(result: dict) -> list[str]:
  """How far the profile is trusted: coverage, tracing overhead, dropped steps, alone vs profiled."""
  prof = result.get('profile') or []
  if not prof:
    return []
  cells = ['| point | trace coverage | tracing overhead | traced steps used (dropped) | trusted | '
           'largest phase, ms (scaled) | conv phases timed alone / profiled ms |',
           '|---|---:|---:|---|---|---|---|']
  for p in prof:
    alone = '; '.join(f'{a["phase"]} {a["alone_s"] * 1e3:.1f} / {a["profiled_s"] * 1e3:.1f} ms '
                      f'(×{a["ratio"]:.2f}{" **flag**" if a["flagged"] else ""})'
                      for a in p['alone']) or '—'
    drop = ', '.join(map(str, p.get('trace_dropped_steps') or [])) or 'none'
    lp = p.get('largest_phase')
    big = (f'{lp} {p["phase_s_scaled"][lp] * 1e3:.1f} of {sum(p["phase_s_scaled"].values()) * 1e3:.1f}'
           if lp else '—')
    cells.append(f'| {p["padding"]} k={p["k"]} | {_f(p["trace_coverage"], ".2f")} | '
                 f'{_f(p["trace_overhead"], ".2f")} | {p.get("trace_steps_used") or "—"} ({drop}) '
                 f'| {"yes" if p["trusted"] else "no"} | {big} | {alone} |')
  return ['## How far the profile is trusted', '',
          'Trace coverage: time the threads were busy in an op, over each traced step\'s own wall '
          'time (median over the traced steps kept). A traced step over '
          '1.5× the median traced step is dropped (named here). Tracing overhead: median traced '
          'step / median untraced step, reported on its own; the phase tables put phases on the '
          'untraced median\'s scale. Time is attributed by what each thread executes, so an op '
          'that waits does not take the time of one that runs. Phases are used only at points '
          'whose coverage is 0.8–1.2. A conv phase timed alone (`conv_alone_s`) is set beside '
          'its profiled time; a ratio past 1.3× either way is flagged.', ''] + cells + ['']


def epoch_lines(result: dict) -> list[str]:
  """Measured epochs beside their projection (analysis.json `epochs`); [] when none was trained."""
  got = [e for e in result.get('epochs') or [] if e.get('epoch_s_measured')]
  if not got:
    return ['Epoch s in the table is projected (steps per epoch × median step, compile '
            'excluded): this run did not train a real epoch.', '']
  return ['Epochs, measured against the projection (steps per epoch × median step): ' + '; '.join(
      f'{e["padding"]} k={e["k"]} {e["epoch_s_measured"]:.1f} s measured, '
      f'{e["epoch_s_projected"]:.1f} s projected (×{e["measured_over_projected"]:.2f})'
      for e in got) + '.', '']

