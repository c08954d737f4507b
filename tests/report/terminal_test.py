"""report.terminal: the lines run.py prints."""
from kernelscale.report import terminal


def test_progress_line_flags_a_point_timed_under_other_load():
  rec = {'kernel_size': 5, 'padding': 'SAME', 'status': 'ok', 'compile_s': 1.0,
         'step_s_median': 0.04, 'steps_timed': 15, 'point_wall_s': 3.0, 'other_cpu_share': 0.3}
  assert 'other processes took 30% of the CPU' in terminal.progress_line(1, 2, rec)
  for share in (0.02, None):
    assert 'other processes' not in terminal.progress_line(1, 2, dict(rec, other_cpu_share=share))
