"""measure's host-load counters, from fake /proc/stat files (nothing timed)."""
import time

import pytest

from kernelscale.measure import timing


_STAT = """cpu  {user2} 10 {system2} 90000 300 0 {softirq2} {steal2} 0 0
cpu0 {user} 5 {system} 45000 150 0 {softirq} {steal} 0 0
cpu1 {user} 5 {system} 45000 150 0 {softirq} {steal} 0 0
intr 12345
"""


def _write(path, user=1000, system=500, softirq=20, steal=0):
  """A /proc/stat whose two CPUs hold these counters each (in 1/100 s)."""
  path.write_text(_STAT.format(user=user, system=system, softirq=softirq, steal=steal,
                               user2=2 * user, system2=2 * system, softirq2=2 * softirq,
                               steal2=2 * steal))


def test_host_cpu_busy_reads_busy_seconds_and_cpus(tmp_path):
  stat = tmp_path / 'stat'
  _write(stat, user=1000, system=500, softirq=20, steal=80)
  busy, ncpu = timing.host_cpu_busy(str(stat))
  # user + nice + system + irq + softirq + steal of each CPU, in 1/100 s; idle and iowait are
  # not busy.
  assert busy == pytest.approx(2 * (1000 + 5 + 500 + 0 + 20 + 80) / 100)
  assert ncpu == 2
  assert timing.host_cpu_busy(str(tmp_path / 'missing')) is None
  (tmp_path / 'bad').write_text('intr 1 2 3\n')
  assert timing.host_cpu_busy(str(tmp_path / 'bad')) is None


def test_host_cpu_busy_counts_only_the_cpus_this_process_may_use(tmp_path):
  stat = tmp_path / 'stat'
  stat.write_text('cpu  300 0 0 900 0 0 0 0 0 0\n'
                  'cpu0 100 0 0 450 0 0 0 0 0 0\n'
                  'cpu1 200 0 0 450 0 0 0 0 0 0\n')
  assert timing.host_cpu_busy(str(stat), {1}) == (pytest.approx(2.0), 1)
  assert timing.host_cpu_busy(str(stat), {0, 1}) == (pytest.approx(3.0), 2)
  assert timing.host_cpu_busy(str(stat), {5}) is None


class _Clock:
  """timing's `time` for other_cpu_load: wall and CPU seconds move only when a test says."""

  def __init__(self):
    self.wall, self.cpu = 100.0, 5.0

  def perf_counter(self):
    return self.wall

  def process_time(self):
    return self.cpu

  def advance(self, wall, cpu=0.0):
    self.wall += wall
    self.cpu += cpu


def test_other_cpu_load_is_the_busy_time_this_process_did_not_use(tmp_path, monkeypatch):
  monkeypatch.setattr(timing, '_usable_cpus', lambda: None)  # the fake file's 2 CPUs
  clock = _Clock()
  monkeypatch.setattr(timing, 'time', clock)  # only timing's clock; nothing sleeps
  stat = tmp_path / 'stat'
  _write(stat, user=1000)
  t0 = clock.perf_counter()
  with timing.other_cpu_load(str(stat), min_ticks=0) as load:
    clock.advance(wall=0.2)  # 0.2 s in which this process uses no CPU
    _write(stat, user=1000 + 10)  # 0.1 s more on each CPU: one CPU's worth for 0.2 s
  wall = clock.perf_counter() - t0
  # 0.2 s of other work over (wall x 2 CPUs).
  assert wall == pytest.approx(0.2)
  assert load['other_cpu_share'] == pytest.approx(0.2 / (wall * 2), abs=0.03)
  assert load['other_cpu_share'] > 0.25
  # Counters that did not move while this process computed: nobody else ran (never negative).
  with timing.other_cpu_load(str(stat), min_ticks=0) as quiet:
    clock.advance(wall=0.1, cpu=0.1)  # this process busy on one CPU for 0.1 s
  assert quiet['other_cpu_share'] == 0
  # A window too short for the counters' 1/100 s ticks is not measured.
  with timing.other_cpu_load(str(stat)) as short:
    clock.advance(wall=0.01)
    _write(stat, user=1000 + 40)
  assert short['other_cpu_share'] is None
  with timing.other_cpu_load(str(tmp_path / 'missing'), min_ticks=0) as none:
    clock.advance(wall=0.1)
  assert none['other_cpu_share'] is None


def test_sweep_records_other_load_from_around_the_timed_steps(monkeypatch):
  from experiments import seed  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import sweep  # pylint: disable=g-import-not-at-top
  cfg = seed.get_config('quick')
  cfg.kernel_sizes, cfg.batch_size, cfg.timed_steps, cfg.profile = (3,), 4, 2, False
  pt = sweep.validate(cfg)[0]
  # Fake counters: another process keeps every CPU busy the whole time (read a few
  # microseconds apart from the wall clock, hence the tolerance).
  monkeypatch.setattr(timing, 'host_cpu_busy',
                      lambda *a, **k: (time.perf_counter() * 2 + time.process_time(), 2))
  monkeypatch.setattr(timing, 'MIN_LOAD_TICKS', 0)
  rec = sweep.measure_point(pt, cfg)
  assert rec['other_cpu_share'] == pytest.approx(1.0, abs=0.01)
  # Counters that only ever show this process's own work: no other load.
  monkeypatch.setattr(timing, 'host_cpu_busy', lambda *a, **k: (time.process_time(), 2))
  assert sweep.measure_point(pt, cfg)['other_cpu_share'] == pytest.approx(0, abs=0.01)
  # Without profiling the record still says which implementation ran each convolution.
  assert rec['conv_impl'] and 'conv2/forward' in rec['conv_impl']
