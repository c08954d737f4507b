"""report.terminal: the lines run.py prints."""
from kernelscale.report import terminal


def test_progress_line_flags_a_point_timed_under_other_load():
  rec = {'kernel_size': 5, 'padding': 'SAME', 'status': 'ok', 'compile_s': 1.0,
         'step_s_median': 0.04, 'steps_timed': 15, 'point_wall_s': 3.0, 'other_cpu_share': 0.3}
  assert 'other processes took 30% of the CPU' in terminal.progress_line(1, 2, rec)
  for share in (0.02, None):
    assert 'other processes' not in terminal.progress_line(1, 2, dict(rec, other_cpu_share=share))


def test_sweep_progress_plain_lines_with_eta_off_a_terminal(capsys):
  rec = {'kernel_size': 5, 'padding': 'SAME', 'status': 'ok', 'compile_s': 1.0,
         'step_s_median': 0.04, 'steps_timed': 15, 'point_wall_s': 3.0}
  on_record = terminal.SweepProgress(3)  # pytest's stderr is no TTY: plain lines, no bar
  for i in (1, 2, 3):
    on_record(i, 3, rec)
  lines = capsys.readouterr().out.splitlines()
  assert [l.split(']')[0] for l in lines] == ['[1/3', '[2/3', '[3/3']
  assert ', ETA ' in lines[0] and ', ETA ' in lines[1] and 'ETA' not in lines[2]
  assert '\r' not in ''.join(lines)


def test_closing_lines_name_each_claim_in_words():
  from kernelscale.analysis import claims  # pylint: disable=import-outside-toplevel
  res = {'answer': ['The answer.'], 'loo_median_abs_rel_error': None,
         'claims': [{'id': 1, 'verdict': 'partly holds', 'claim': claims.CLAIMS[1]}]}
  lines = terminal.analysis_lines(res, None)
  assert lines[2] == f'  claim 1: partly holds — {claims.CLAIMS[1]}'
