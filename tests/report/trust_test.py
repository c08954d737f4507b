"""report.md's "How far the profile is trusted": flagged conv phases and their measured reason
(kernelscale.report.trust)."""
from kernelscale.analysis import profile
from kernelscale.report import trust


def _lines(rec):
  return trust.profile_lines({'profile': profile.summary([rec])})


def test_tracing_reason_is_said_with_its_figures(alone_point):
  md = '\n'.join(_lines(alone_point('conv1/backward_filter', 0.0044, 0.0076, alone_traced=0.0070)))
  why = md.split('Why the flagged phases disagree:')[1]
  assert 'SAME k=7 conv1/backward_filter (×1.54)' in why
  assert '7.0 ms, and 7.6 ms in the traced step (×1.09)' in why and 'they agree' in why
  assert 'slows this phase ×1.59 when timed alone, and the whole step ×1.12' in why
  assert 'looks longer than it runs' in why


def test_tracing_reason_for_a_phase_that_looks_shorter(alone_point):
  # The profiler slows the step x1.31 but this phase only x1.05 alone.
  md = '\n'.join(_lines(alone_point('conv2/forward', 0.0036, 0.0036, alone_traced=0.00378,
                             overhead=1.31)))
  assert 'loses time that tracing added to other phases and looks shorter' in md


def test_overlap_and_unsteady_and_old_records_are_told_apart(alone_point):
  overlap = '\n'.join(_lines(alone_point('conv2/backward_filter', 0.0019, 0.0015, alone_traced=0.0020,
                                  beside=0.94, overhead=1.08)))
  assert '94% of its running time ran beside conv1/backward_filter' in overlap
  unsteady = '\n'.join(_lines(alone_point('conv2/forward', 0.00348, 0.0021, alone_traced=0.00233,
                                   overhead=1.15)))
  assert 'the untraced alone figure is the one that is off' in unsteady
  old = '\n'.join(_lines(alone_point('conv1/backward_filter', 0.0044, 0.0076)))
  assert 'Not explained by what the record measures (before scaling it is still ×1.73)' in old
  assert 'lacks conv_alone_traced_s and phase_beside' in old


def test_no_reasons_block_without_flags(alone_point):
  md = '\n'.join(_lines(alone_point('conv2/forward', 0.019, 0.019 * 1.12, alone_traced=0.0195)))
  assert '×1.00)' in md and 'Why the flagged' not in md
