"""Conv phases timed alone against the profile: which measured reason explains a flag
(kernelscale.analysis.profile). Records come from conftest's `alone_point`."""
import pytest

from kernelscale.analysis import profile


def _one(rec):
  (got,) = profile.alone_vs_profiled(rec)
  return got


def test_phase_the_profiler_slows_more_than_the_step_is_put_down_to_tracing(alone_point):
  # SAME k=7 conv1/backward_filter on the Xeon: 4.4 ms alone, 7.1 ms alone under the
  # profiler (x1.59), 7.6 ms in the traced step, whose tracing overhead is x1.12.
  rec = alone_point('conv1/backward_filter', 0.0044, 0.0076, alone_traced=0.0070, beside=0.08)
  got = _one(rec)
  assert got['flagged'] and got['ratio'] == pytest.approx(0.0076 / 1.12 / 0.0044)
  assert got['traced_ratio'] == pytest.approx(0.0076 / 0.0070)
  assert got['alone_trace_overhead'] == pytest.approx(0.0070 / 0.0044)
  assert got['scale'] == pytest.approx(1 / 1.12)
  assert got['reason'] == 'tracing'
  # Without the alone timing under the profiler, the record cannot tell.
  del rec['conv_alone_traced_s']
  assert _one(rec)['reason'] == 'unexplained'


def test_unflagged_phase_has_no_reason(alone_point):
  got = _one(alone_point('conv2/forward', 0.019, 0.019 * 1.12, alone_traced=0.0195))
  assert not got['flagged'] and got['reason'] is None


def test_shorter_phase_that_ran_beside_another_is_put_down_to_overlap(alone_point):
  # VALID k=9 conv2/backward_filter: 1.9 ms alone (2.0 traced), 1.5 ms in the traced
  # step, 94% of it beside conv1's filter gradient on the other thread.
  rec = alone_point('conv2/backward_filter', 0.0019, 0.0015, alone_traced=0.0020, beside=0.94,
             overhead=1.08)
  got = _one(rec)
  assert got['flagged'] and got['ratio'] < 1 / profile.ALONE_FLAG
  assert got['reason'] == 'overlap' and got['beside_with'] == 'conv1/backward_filter'
  rec['phase_beside']['conv2/backward_filter']['share'] = 0.1
  assert _one(rec)['reason'] == 'unexplained'


def test_alone_faster_under_the_profiler_means_the_alone_figure_is_off(alone_point):
  # VALID k=3 conv2/forward: 3.48 ms alone, but 2.33 ms alone under the profiler and
  # 2.10 ms in the traced step.
  got = _one(alone_point('conv2/forward', 0.00348, 0.0021, alone_traced=0.00233, overhead=1.15))
  assert got['flagged'] and got['reason'] == 'alone_unsteady'


def test_old_record_without_traced_alone_falls_back_on_the_scale(alone_point):
  # SAME k=3 conv2/forward: 3.53 ms traced against 3.58 ms alone; the step's tracing
  # overhead x1.31 puts it at x0.77 once scaled.
  got = _one(alone_point('conv2/forward', 0.00358, 0.00353, overhead=1.31))
  assert got['flagged'] and got['unscaled_ratio'] == pytest.approx(0.00353 / 0.00358)
  assert got['reason'] == 'scale'


def test_contended_alone_timing(alone_point):
  rec = alone_point('conv2/forward', 0.039, 0.019, alone_traced=0.042, beside=0.0, other=0.62,
             overhead=1.07)
  assert _one(rec)['reason'] == 'contended'
  rec['conv_alone_other_cpu_share'] = 0.01
  assert _one(rec)['reason'] == 'unexplained'


def test_summary_carries_the_reasons(alone_point):
  rec = alone_point('conv1/backward_filter', 0.0044, 0.0076, alone_traced=0.0070)
  (s,) = profile.summary([rec])
  assert s['alone_flagged'] == ['conv1/backward_filter']
  assert s['alone'][0]['reason'] == 'tracing'
