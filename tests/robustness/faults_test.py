"""Fault injection end to end: SIGKILL/SIGTERM then --resume, two runs into one workdir."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from benchmarks import kill_resume

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICK = ('--config=' + os.path.join(ROOT, 'experiments', 'seed.py') + ':quick',
         '--config.profile=False')


def _popen(*args):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  return subprocess.Popen([sys.executable, os.path.join(ROOT, 'run.py'), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_sigkill_at_random_moments_then_resume_keeps_every_point_once(tmp_path):
  res = kill_resume.run(kills=3, sig=signal.SIGKILL, max_delay_s=10.0, seed=1,
                        workdir=str(tmp_path / 'wd'), log=lambda _: None)
  assert res['final_rc'] == 0 and not res['problems'], res
  assert not res['tracebacks']


def test_sigterm_is_one_line_naming_resume_exit_143_and_resume_finishes(tmp_path):
  wd = tmp_path / 'wd'
  p = _popen(*QUICK, '--config.kernel_sizes=3,5,7', f'--workdir={wd}')
  deadline = time.time() + 120
  while time.time() < deadline and not (
      (wd / 'results.jsonl').exists() and (wd / 'results.jsonl').read_text().count('\n') >= 1):
    time.sleep(0.05)
  p.send_signal(signal.SIGTERM)
  out, err = p.communicate(timeout=60)
  assert p.returncode == 143, err
  assert 'Traceback' not in out + err
  last = err.strip().splitlines()[-1]
  assert last.startswith('interrupted (SIGTERM)') and f'--resume --workdir={wd}' in last
  assert not (wd / 'lock.pid').exists()
  p = _popen('--resume', f'--workdir={wd}')
  out, err = p.communicate(timeout=300)
  assert p.returncode == 0, err
  points = {f'seed-k{k}-SAME-float32-b8' for k in (3, 5, 7)}
  assert kill_resume.check(str(wd), points) == []


def test_of_two_concurrent_runs_into_one_workdir_the_second_is_refused(tmp_path):
  wd = tmp_path / 'wd'
  procs = [_popen(*QUICK, f'--workdir={wd}') for _ in range(2)]
  results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
  codes = sorted(rc for rc, _ in results)
  assert codes == [0, 2], results
  refused = next(err for rc, err in results if rc == 2)
  assert ('in use by another run (pid' in refused or 'already holds a results.jsonl' in refused)
  assert 'Traceback' not in refused
  recs = [json.loads(l) for l in (wd / 'results.jsonl').read_text().splitlines()]
  assert sorted(r['kernel_size'] for r in recs) == [3, 5]
  assert len({r['run_id'] for r in recs}) == 1
