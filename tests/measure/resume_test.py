"""measure/resume.py: the workdir lock, config.json and what --resume keeps."""
import json
import os
import subprocess
import sys

import ml_collections
import pytest

from kernelscale import records
from kernelscale.measure import resume


@pytest.fixture(autouse=True)
def _release():
  yield
  resume.release_locks()


def test_lock_is_taken_and_reentrant_and_released(tmp_path):
  resume.acquire_lock(str(tmp_path))
  resume.acquire_lock(str(tmp_path))
  lock = tmp_path / resume.LOCK_FILE
  assert json.loads(lock.read_text())['pid'] == os.getpid()
  resume.release_locks()
  assert not lock.exists()


def test_a_live_owner_is_refused_naming_its_pid(tmp_path):
  other = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
  try:
    (tmp_path / resume.LOCK_FILE).write_text(json.dumps({'pid': other.pid}))
    with pytest.raises(resume.WorkdirError, match=f'in use by another run \\(pid {other.pid}\\)'):
      resume.acquire_lock(str(tmp_path))
  finally:
    other.kill()
    other.wait()


@pytest.mark.parametrize('content', ['{"pid": DEAD}', '', '{"pi', '[]'])
def test_a_stale_or_garbled_lock_is_taken_over_with_a_note(tmp_path, content):
  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()
  (tmp_path / resume.LOCK_FILE).write_text(content.replace('DEAD', str(dead.pid)))
  notes = []
  resume.acquire_lock(str(tmp_path), log=notes.append)
  assert notes and 'taking over the stale lock' in notes[0]
  assert json.loads((tmp_path / resume.LOCK_FILE).read_text())['pid'] == os.getpid()


def _config(**kw):
  c = ml_collections.ConfigDict(dict({'name': 'seed', 'kernel_sizes': (3, 5),
                                      'batch_size': 8, 'learning_rate': 1e-3}, **kw))
  return c


def test_begin_saves_the_config_and_resume_keeps_the_run_id_and_ok_points(tmp_path):
  wd = str(tmp_path)
  run_id, done = resume.begin(wd, _config(), resume=False)
  assert done == set() and json.loads((tmp_path / 'config.json').read_text())['run_id'] == run_id
  records.append(os.path.join(wd, 'results.jsonl'), {'point': 'a', 'status': 'ok', 'run_id': run_id})
  records.append(os.path.join(wd, 'results.jsonl'), {'point': 'b', 'status': 'failed',
                                                     'run_id': run_id})
  again, done = resume.begin(wd, _config(), resume=True)
  assert again == run_id and done == {'a'}
  assert resume.config_of(wd).kernel_sizes == [3, 5]


def test_a_differing_config_is_refused_naming_the_field(tmp_path):
  resume.begin(str(tmp_path), _config(), resume=False)
  resume.check_same_config(str(tmp_path), _config())
  with pytest.raises(resume.WorkdirError, match=r'^config.batch_size: 16 differs from 8'):
    resume.check_same_config(str(tmp_path), _config(batch_size=16))


def test_a_corrupt_config_json_is_one_line(tmp_path):
  (tmp_path / 'config.json').write_text('{"run_id": "x", "conf')
  with pytest.raises(resume.WorkdirError, match='cannot be read'):
    resume.config_of(str(tmp_path))
  with pytest.raises(resume.WorkdirError, match='holds no config.json'):
    resume.config_of(str(tmp_path / 'nothing'))
