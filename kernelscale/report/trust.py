"""report.md's "How far the profile is trusted": coverage, tracing overhead, dropped steps,
and each conv phase timed alone against its profiled time (analysis.json's `profile`)."""
from __future__ import annotations

from kernelscale.analysis.clauses import CONTENDED_SHARE
from kernelscale.analysis.profile import ALONE_FLAG

ALONE_LOW = 1 / ALONE_FLAG


def _f(v, fmt: str) -> str:
  return '—' if v is None else format(v, fmt)


def _ms(v) -> str:
  return f'{v * 1e3:.1f} ms'


def _x(v) -> str:
  return f'×{v:.2f}'


def _load(a: dict) -> str:
  o = a.get('alone_other_cpu_share')
  return (f' Other programs took {o:.0%} of the CPU while the phases were timed alone.'
          if o is not None and o >= CONTENDED_SHARE else '')


def why_flagged(a: dict) -> str:
  """One flagged conv phase's measured reason (analysis/profile.py `_reason`), in plain words."""
  r, scale = a['reason'], a.get('scale')
  longer = a['ratio'] > 1
  if r in ('tracing', 'alone_unsteady'):
    agree = (f'Timed alone under the profiler as well, it takes {_ms(a["alone_traced_s"])}, and '
             f'{_ms(a["traced_s"])} in the traced step ({_x(a["traced_ratio"])}): '
             + ('traced both ways, they agree, so the step itself does not make it slower or faster. '
                if ALONE_LOW <= a['traced_ratio'] <= ALONE_FLAG else
                'traced both ways they still differ, but less than the profiler\'s part below. '))
    if r == 'alone_unsteady':
      return (agree + f'But alone it ran faster under the profiler than without it '
              f'({_ms(a["alone_traced_s"])} against {_ms(a["alone_s"])}), though the profiler only '
              'adds work: the untraced alone figure is the one that is off.' + _load(a))
    step = a.get('step_trace_overhead')
    more = a['alone_trace_overhead'] > (step or 1)
    return (agree + f'The gap comes from the profiler: it slows this phase '
            f'{_x(a["alone_trace_overhead"])} when timed alone'
            + (f', and the whole step {_x(step)}' if step else '')
            + '. The table takes the same factor off every phase'
            + (f' ({_x(scale)} here)' if scale else '') + ', so this phase '
            + ('keeps part of its own tracing cost and looks longer than it runs.' if more else
               'loses time that tracing added to other phases and looks shorter than it runs.')
            + _load(a))
  if r == 'scale':
    return (f'In the traced step it takes {_ms(a["traced_s"])}, {_x(a["unscaled_ratio"])} its time '
            'alone: ' + ('they agree before scaling' if ALONE_LOW <= a['unscaled_ratio'] <= ALONE_FLAG
                         else 'the scale moves it further than this') +
            '. The table takes one factor off every phase'
            + (f' ({_x(scale)} here, for the whole step\'s tracing cost)' if scale else '')
            + ', and the profiler slows some phases more than others; this record has no '
            'alone timing under the profiler (conv_alone_traced_s) to show how much it slows '
            'this one.' + _load(a))
  if r == 'overlap':
    return (f'In the step, {a["beside_share"]:.0%} of its running time ran beside '
            f'{a["beside_with"] or "another phase"} on another thread; the profile splits such '
            'time between the phases running, so it books about half of it here. Alone, it has '
            'the cores to itself.' + _load(a))
  if r == 'contended':
    return (f'Other programs took {a["alone_other_cpu_share"]:.0%} of the CPU while the phases were '
            'timed alone, which slows the alone figure; rerun on a quiet machine to check it.')
  checked = []
  if a.get('traced_ratio') is not None:
    checked.append(f'traced both ways it is still {_x(a["traced_ratio"])}')
  elif a.get('unscaled_ratio') is not None:
    checked.append(f'before scaling it is still {_x(a["unscaled_ratio"])}')
  if a.get('beside_share') is not None:
    checked.append(f'{a["beside_share"]:.0%} of its time ran beside other phases')
  missing = [f for f, v in (('conv_alone_traced_s', a.get('alone_traced_s')),
                            ('phase_beside', a.get('beside_share'))) if v is None]
  return ('Not explained by what the record measures' + (f' ({"; ".join(checked)})' if checked else '')
          + ': ' + ('longer' if longer else 'shorter') + ' inside the step than alone.'
          + (f' The record lacks {" and ".join(missing)} (timed alone under the profiler; running '
             'beside other phases), which could explain it.' if missing else '') + _load(a))


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
  why = [f'- {p["padding"]} k={p["k"]} {a["phase"]} ({_x(a["ratio"])}): {why_flagged(a)}'
         for p in prof for a in p['alone'] if a['flagged']]
  return ['## How far the profile is trusted', '',
          'Trace coverage: time the threads were busy in an op, over each traced step\'s own wall '
          'time (median over the traced steps kept). A traced step over '
          '1.5× the median traced step is dropped (named here). Tracing overhead: median traced '
          'step / median untraced step, reported on its own; the phase tables put phases on the '
          'untraced median\'s scale. Time is attributed by what each thread executes, so an op '
          'that waits does not take the time of one that runs. Phases are used only at points '
          'whose coverage is 0.8–1.2. A conv phase timed alone (`conv_alone_s`) is set beside '
          f'its profiled time; a ratio past {ALONE_FLAG}× either way is flagged, and why is said '
          'below the table, from what the record measured.', ''] + cells + [''] + (
              ['Why the flagged phases disagree:', ''] + why + [''] if why else [])


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

