"""Many devices and processes end to end: the devices axis, --local_processes, failures, bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kernelscale import records

pytestmark = pytest.mark.slow  # run.py in subprocesses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = '--config=' + os.path.join(ROOT, 'experiments', 'devices.py') + ':quick'


def _env(**kw):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XDG_CACHE_HOME='/nonexistent',
             KERNELSCALE_INIT_TIMEOUT_S='5', **kw)
  env.pop('XLA_FLAGS', None)
  return env


def _run(*args, timeout=300):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'), *args], capture_output=True,
                        text=True, cwd=ROOT, env=_env(), timeout=timeout)


def _procs_with(text: str) -> list[int]:
  out = []
  for pid in os.listdir('/proc'):
    try:
      with open(f'/proc/{pid}/cmdline', 'rb') as f:
        if text.encode() in f.read():
          out.append(int(pid))
    except OSError:
      continue
  return out


@pytest.mark.parametrize('args, says', [
    (('--config.devices=0',), 'config.devices: 0 is not an integer >= 1'),
    (('--config.devices=-1',), 'config.devices: -1 is not an integer >= 1'),
    (('--config.devices=3', '--config.batch_scaling=strong'), 'does not split over 3 devices'),
    (('--config.batch_scaling=both',), 'config.batch_scaling: unknown value'),
    (('--coordinator=127.0.0.1:1', '--num_processes=2', '--process_id=2'), '--process_id: 2'),
    (('--local_processes=0',), '--local_processes: 0'),
])
def test_bad_input_one_line(tmp_path, args, says):
  p = _run(QUICK, *args, f'--workdir={tmp_path / "wd"}')
  lines = [l for l in p.stderr.splitlines() if l.strip()]
  assert p.returncode == 2 and len(lines) == 1 and says in lines[0], p.stderr
  assert not (tmp_path / 'wd' / 'results.jsonl').exists()


def test_unreachable_coordinator_is_one_line_within_a_minute(tmp_path):
  t0 = time.time()
  p = _run(QUICK, '--config.devices=2', '--coordinator=127.0.0.1:1', '--num_processes=2',
           '--process_id=1', f'--workdir={tmp_path / "wd"}', timeout=120)
  lines = [l for l in p.stderr.splitlines() if l.strip()]
  assert p.returncode == 2 and len(lines) == 1 and '--coordinator: 127.0.0.1:1' in lines[0]
  assert time.time() - t0 < 60


def test_two_local_processes_finish_the_quick_sweep(tmp_path):
  wd = tmp_path / 'wd'
  p = _run(QUICK, '--config.devices=2,4', '--config.kernel_sizes=3',
           '--config.batch_scaling=strong', '--local_processes=2', f'--workdir={wd}')
  assert p.returncode == 0, p.stderr[-3000:]
  recs = records.load(str(wd / 'results.jsonl'))
  assert [r['n_devices'] for r in recs] == [2, 4]
  for r in recs:
    assert r['status'] == 'ok' and r['n_processes'] == 2
    assert len(r['step_s_median_by_process']) == 2
    assert r['step_s_median'] == max(r['step_s_median_by_process'])
    assert abs(r['collective_bytes'] - r['grad_bytes']) < 0.01 * r['grad_bytes']
  assert (wd / 'report.md').exists() and not _procs_with(str(wd))


def test_a_dying_process_stops_the_others(tmp_path):
  wd = tmp_path / 'wd'
  launcher = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'run.py'), QUICK, '--config.devices=2',
       '--config.kernel_sizes=3,5,7', '--config.timed_steps=30', '--local_processes=2',
       f'--workdir={wd}'], cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
      text=True)
  path = wd / 'results.jsonl'
  end = time.time() + 240
  while not path.exists() and time.time() < end and launcher.poll() is None:
    time.sleep(0.2)
  assert path.exists(), 'no record before the deadline'
  victim = [p for p in _procs_with(str(wd)) if p != launcher.pid
            and b'--process_id=1' in open(f'/proc/{p}/cmdline', 'rb').read()]
  assert victim
  os.kill(victim[0], signal.SIGKILL)
  t0 = time.time()
  _, err = launcher.communicate(timeout=90)
  assert time.time() - t0 < 60 and launcher.returncode != 0
  assert 'error: process' in err and ('process 1 of 2' in err or 'process 1 with' in err), err[-3000:]
  time.sleep(0.5)
  assert not _procs_with(str(wd)), 'a process was left behind'
  recs = records.load(str(path))  # every line is a whole record
  assert recs and len({r['point'] for r in recs}) == len(recs)
  assert all(json.dumps(r) for r in recs)
