"""records.py: whole-line appends (disk full cuts back), the torn-line and mixed-run loader."""
import errno
import json
import os

import pytest

from kernelscale import records


def _rec(k, run_id='r1', status='ok', **kw):
  return dict({'point': f'seed-k{k}-SAME', 'padding': 'SAME', 'kernel_size': k, 'model': 'seed',
               'status': status, 'run_id': run_id, 'step_s_median': 0.01}, **kw)


def test_append_load_round_trip_with_run_id(tmp_path):
  path = str(tmp_path / 'results.jsonl')
  records.append(path, _rec(3, x=float('nan')))
  records.append(path, _rec(5))
  recs = records.load(path)
  assert [r['kernel_size'] for r in recs] == [3, 5]
  assert recs[0]['x'] is None and recs[0]['run_id'] == 'r1'


@pytest.mark.parametrize('written', [0, 7])
def test_disk_full_cuts_back_to_the_last_whole_line(tmp_path, monkeypatch, written):
  path = str(tmp_path / 'results.jsonl')
  records.append(path, _rec(3))
  before = open(path, 'rb').read()
  calls = []

  def full(fd, data):
    calls.append(len(data))
    if len(calls) == 1 and written:
      return os.write(fd, data[:written])  # a partial write, then the disk is full
    raise OSError(errno.ENOSPC, 'No space left on device')
  monkeypatch.setattr(records, '_write', full)
  with pytest.raises(records.WriteError) as e:
    records.append(path, _rec(5))
  assert 'No space left on device' in str(e.value) and path in str(e.value)
  assert '\n' not in str(e.value.strerror)
  assert open(path, 'rb').read() == before
  monkeypatch.undo()
  records.append(path, _rec(5))
  assert [r['kernel_size'] for r in records.load(path)] == [3, 5]


def test_torn_last_line_is_left_out_and_named(tmp_path):
  path = tmp_path / 'results.jsonl'
  path.write_text(json.dumps(_rec(3)) + '\n' + json.dumps(_rec(5))[:40])
  notes = []
  recs = records.load(str(path), warn=notes.append)
  assert [r['kernel_size'] for r in recs] == [3]
  assert len(notes) == 1 and f'{path}:2: torn last line' in notes[0]


def test_a_bad_line_before_the_last_is_refused_naming_it(tmp_path):
  path = tmp_path / 'results.jsonl'
  path.write_text(json.dumps(_rec(3)) + '\n{oops\n' + json.dumps(_rec(5)) + '\n')
  with pytest.raises(ValueError, match=r'results.jsonl:2: not a JSON record'):
    records.load(str(path))


def test_same_point_from_two_runs_is_refused(tmp_path):
  path = str(tmp_path / 'results.jsonl')
  for rec in (_rec(3), _rec(5), _rec(3, run_id='r2')):
    records.append(path, rec)
  with pytest.raises(ValueError, match=r':3: point .* also on line 1 from another run'):
    records.load(path)


def test_a_point_rerun_by_resume_keeps_its_last_record(tmp_path):
  path = str(tmp_path / 'results.jsonl')
  for rec in (_rec(3, status='failed'), _rec(5), _rec(3)):
    records.append(path, rec)
  recs = records.load(path)
  assert [(r['kernel_size'], r['status']) for r in recs] == [(5, 'ok'), (3, 'ok')]


def test_records_without_run_id_load_as_before(tmp_path):
  path = str(tmp_path / 'results.jsonl')
  for rec in (_rec(3, run_id=None), _rec(3, run_id=None)):
    records.append(path, rec)
  assert len(records.load(path)) == 2


def test_corrupt_ceilings_cache_reads_as_empty(tmp_path, capsys):
  (tmp_path / records.CEILINGS_FILE).write_text('{"cpu/cpu": {"matmul')
  assert records.load_ceilings(str(tmp_path)) == {}
  assert 'measured again' in capsys.readouterr().err
  (tmp_path / records.CEILINGS_FILE).write_text('[1, 2]')
  assert records.load_ceilings(str(tmp_path)) == {}
