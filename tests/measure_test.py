"""measure's host-load counters, from fake /proc/stat files (nothing timed)."""
import time

import pytest

from kernelscale import measure

_STAT = """cpu  {user} 5 {system} 90000 300 0 {softirq} {steal} 0 0
cpu0 1 0 1 45000 150 0 0 0 0 0
cpu1 1 0 1 45000 150 0 0 0 0 0
intr 12345
"""


def _write(path, user=1000, system=500, softirq=20, steal=0):
  path.write_text(_STAT.format(user=user, system=system, softirq=softirq, steal=steal))


def test_host_cpu_busy_reads_busy_seconds_and_cpus(tmp_path):
  stat = tmp_path / 'stat'
  _write(stat, user=1000, system=500, softirq=20, steal=80)
  busy, ncpu = measure.host_cpu_busy(str(stat))
  # user + nice + system + irq + softirq + steal, in 1/100 s; idle and iowait are not busy.
  assert busy == pytest.approx((1000 + 5 + 500 + 0 + 20 + 80) / 100)
  assert ncpu == 2
  assert measure.host_cpu_busy(str(tmp_path / 'missing')) is None
  (tmp_path / 'bad').write_text('intr 1 2 3\n')
  assert measure.host_cpu_busy(str(tmp_path / 'bad')) is None


def test_other_cpu_load_is_the_busy_time_this_process_did_not_use(tmp_path):
  stat = tmp_path / 'stat'
  _write(stat, user=1000)
  with measure.other_cpu_load(str(stat)) as load:
    time.sleep(0.2)  # this process uses (almost) no CPU while it sleeps
    _write(stat, user=1000 + 20)  # someone else kept one of the 2 CPUs busy for 0.2 s
  assert load['other_cpu_share'] == pytest.approx(0.5, abs=0.1)
  # No busy time at all: nobody else ran (clamped at 0, never negative).
  with measure.other_cpu_load(str(stat)) as quiet:
    sum(range(200_000))
  assert quiet['other_cpu_share'] == 0
  with measure.other_cpu_load(str(tmp_path / 'missing')) as none:
    pass
  assert none['other_cpu_share'] is None


def test_progress_line_flags_a_point_timed_under_other_load():
  from kernelscale import sweep  # pylint: disable=g-import-not-at-top
  rec = {'kernel_size': 5, 'padding': 'SAME', 'status': 'ok', 'compile_s': 1.0,
         'step_s_median': 0.04, 'steps_timed': 15, 'point_wall_s': 3.0, 'other_cpu_share': 0.3}
  assert 'other processes took 30% of the CPU' in sweep.progress_line(1, 2, rec)
  for share in (0.02, None):
    assert 'other processes' not in sweep.progress_line(1, 2, dict(rec, other_cpu_share=share))
