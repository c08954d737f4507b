"""A workdir's run state: the lock held while a run writes there, its run id and config, --resume.

No jax here: run.py's signal handlers and the tests use it before (or without)
jax. Files in <workdir>/: `lock.pid` (the pid of the run writing there, while it
runs) and `config.json` (the run's id and config, so --resume can continue it).
"""
from __future__ import annotations

import atexit
import datetime
import json
import os
import socket

from kernelscale import records

LOCK_FILE = 'lock.pid'
CONFIG_FILE = 'config.json'


class WorkdirError(ValueError):
  """The workdir cannot be used as asked; the message starts with the flag to change."""


_held: set[str] = set()  # lock files this process holds


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # someone else's process: it exists
    return True
  return True


def acquire_lock(workdir: str, log=print) -> None:
  """Takes <workdir>/lock.pid for this process; again by the same process is a no-op.

  Raises:
    WorkdirError: naming the pid when another live process holds the lock.
  """
  path = os.path.join(workdir, LOCK_FILE)
  if os.path.abspath(path) in _held:
    return
  for _ in range(3):
    try:
      fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      owner = _read_lock(path)
      pid, host = owner.get('pid'), owner.get('host')
      if isinstance(pid, int) and pid != os.getpid() and (
          host not in (None, socket.gethostname()) or _alive(pid)):
        raise WorkdirError(f'--workdir: {workdir!r} is in use by another run (pid {pid}'
                           + (f' on {host}' if host not in (None, socket.gethostname()) else '')
                           + f'); wait for it to finish, or give another --workdir '
                           f'(a lock left by a finished run: remove {path})') from None
      log(f'note: taking over the stale lock of {workdir!r} (pid {pid}, no longer running)')
      try:
        os.remove(path)
      except FileNotFoundError:
        pass
      continue
    with os.fdopen(fd, 'w') as f:
      json.dump({'pid': os.getpid(), 'host': socket.gethostname()}, f)
    _held.add(os.path.abspath(path))
    return
  raise WorkdirError(f'--workdir: {workdir!r}: another run keeps taking its lock; give another '
                     '--workdir')


def _read_lock(path: str) -> dict:
  try:
    with open(path, encoding='utf-8') as f:
      owner = json.load(f)
    return owner if isinstance(owner, dict) else {}
  except (OSError, ValueError):
    return {}  # empty or garbled: written by a process killed mid-write, so stale


def release_locks() -> None:
  """Removes every lock this process holds (at exit, and before an interrupted run exits)."""
  for path in list(_held):
    try:
      if _read_lock(path).get('pid') == os.getpid():
        os.remove(path)
    except OSError:
      pass
    _held.discard(path)


atexit.register(release_locks)


def saved(workdir: str) -> dict | None:
  """config.json of the run in workdir ({'run_id', 'config'}), or None when there is none.

  Raises:
    WorkdirError: when it exists but cannot be read as such.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding='utf-8') as f:
      out = json.load(f)
    if not isinstance(out, dict) or not isinstance(out.get('config'), dict):
      raise ValueError('no config in it')
  except (OSError, ValueError) as e:
    raise WorkdirError(f'--resume: {path} cannot be read ({e}); start a new run in another '
                       '--workdir') from None
  return out


def save(workdir: str, config, run_id: str) -> None:
  """Writes config.json (through a rename, so it is never half written)."""
  path = os.path.join(workdir, CONFIG_FILE)
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    json.dump({'run_id': run_id, 'config': as_dict(config)}, f, indent=1)
  os.replace(path + '.tmp', path)


def as_dict(config) -> dict:
  """A config as plain JSON values (tuples as lists)."""
  return json.loads(config.to_json()) if hasattr(config, 'to_json') else json.loads(
      json.dumps(dict(config)))


def new_run_id() -> str:
  """A run's id: start time and pid, e.g. '20261202-031500-4711'."""
  return f'{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}'


def check_same_config(workdir: str, config) -> None:
  """--resume: refuses a config that differs from the run's in workdir, naming the first field.

  Raises:
    WorkdirError: naming the field, both values and what to do.
  """
  old = saved(workdir)
  if old is None:
    return
  now = as_dict(config)
  for key in sorted(set(old['config']) | set(now)):
    a, b = old['config'].get(key), now.get(key)
    if a != b:
      raise WorkdirError(f'config.{key}: {b!r} differs from {a!r} of the run in {workdir!r}; '
                         'resume it without --config (its own config is used), or give a new '
                         '--workdir')


def config_of(workdir: str):
  """The saved config of the run in workdir as a ConfigDict (for --resume without --config).

  Raises:
    WorkdirError: when the workdir holds no config.json.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  old = saved(workdir)
  if old is None:
    raise WorkdirError(f'--resume: {workdir!r} holds no config.json of an earlier run; give its '
                       '--config too, or start a new run')
  return ml_collections.ConfigDict(old['config'])


def begin(workdir: str, config, resume: bool, write: bool = True) -> tuple[str, set[str]]:
  """The run id and the names of the points already ok (resume), saving config.json.

  A fresh run gets a new id; --resume keeps the id of the run it continues, so
  a point it re-runs (failed or skipped before) replaces the earlier record.
  """
  old = saved(workdir) if resume else None
  run_id = old['run_id'] if old and old.get('run_id') else new_run_id()
  done: set[str] = set()
  path = os.path.join(workdir, 'results.jsonl')
  if resume and os.path.exists(path):
    done = {r.get('point') for r in records.load(path) if r.get('status') == 'ok'}
  if not old and write:  # write=False: a process other than 0 of a distributed run
    save(workdir, config, run_id)
  return run_id, done
