"""Disk full during a sweep (a patched writer), a trace that cannot be written, a point too big."""
import errno
import json
import os

import pytest

from experiments import seed
from kernelscale import records
from kernelscale.measure import memguard, profiling, sweep


def _cfg(**kw):
  cfg = seed.get_config('quick')
  cfg.profile = kw.pop('profile', False)
  cfg.warmup_steps, cfg.timed_steps = 1, 2
  for k, v in kw.items():
    cfg[k] = v
  return cfg


def test_disk_full_at_the_second_record_stops_with_the_first_whole(tmp_path, monkeypatch):
  real, calls = records._write, []  # pylint: disable=protected-access

  def full_on_second(fd, data):
    calls.append(1)
    if len(calls) == 1:
      return real(fd, data)
    real(fd, data[:10])  # part of the line reaches the disk, then no space is left
    raise OSError(errno.ENOSPC, 'No space left on device')
  monkeypatch.setattr(records, '_write', full_on_second)
  wd = str(tmp_path / 'wd')
  with pytest.raises(records.WriteError, match='No space left on device'):
    sweep.run(_cfg(), wd, log=lambda _: None)
  text = open(os.path.join(wd, 'results.jsonl'), encoding='utf-8').read()
  assert text.endswith('\n') and len(text.splitlines()) == 1
  assert json.loads(text)['kernel_size'] == 3
  monkeypatch.undo()
  recs = sweep.run(_cfg(), wd, log=lambda _: None, resume_run=True)  # --resume finishes it
  assert [(r['kernel_size'], r['status']) for r in recs] == [(3, 'ok'), (5, 'ok')]


def test_a_trace_that_cannot_be_written_keeps_the_point(tmp_path, monkeypatch):
  def no_space(*a, **k):
    raise OSError(errno.ENOSPC, 'No space left on device')
  monkeypatch.setattr(profiling, 'profile_point', no_space)
  recs = sweep.run(_cfg(profile=True, kernel_sizes=(3,)), str(tmp_path), log=lambda _: None)
  assert recs[0]['status'] == 'ok' and recs[0]['step_s_median'] > 0
  assert any('profile not written' in n for n in recs[0]['notes'])


def test_a_point_that_would_not_fit_is_skipped_with_its_figures(tmp_path, monkeypatch):
  monkeypatch.setattr(memguard, 'available_bytes', lambda: 3 * 2 ** 20)  # 3 MiB
  recs = sweep.run(_cfg(kernel_sizes=(3,)), str(tmp_path), log=lambda _: None)
  (r,) = recs
  assert r['status'] == 'skipped' and r['error'].startswith('does not fit in memory')
  assert r['mem_available_bytes'] == 3 * 2 ** 20 and r['mem_needed_bytes'] > 3 * 2 ** 20
