"""Command-line plumbing shared by run.py and the benchmarks: one `error: ...` line and exit 2.

Flags themselves are defined only in run.py (and each benchmark's argparse);
this module turns bad input into one line and handles interrupts.
"""
from __future__ import annotations

import os
import re
import sys


def fail(msg: str) -> None:
  """Prints `error: <msg>` on stderr and exits 2 (bad input; nothing was measured)."""
  print(f'error: {msg}', file=sys.stderr)
  sys.exit(2)


def kernel_sizes(text: str, flag: str = '--kernel_sizes') -> list[int]:
  """A comma-separated list of distinct kernel sizes >= 1, or fail() naming the flag."""
  try:
    ks = [int(k) for k in text.split(',') if k.strip()]
  except ValueError:
    fail(f'{flag}: {text!r} is not a comma-separated list of integers')
  if not ks or min(ks) < 1:
    fail(f'{flag}: {text!r}: give one or more integers >= 1')
  if len(set(ks)) != len(ks):
    fail(f'{flag}: {text!r} lists a kernel size twice')
  return ks


def at_least(args, names, low: int = 1) -> None:
  """Makes args' fields `names` integers; fail() for the first that is not one >= `low`.

  Declare such flags without argparse's type=int, so that a bad value gets this
  module's one-line error rather than argparse's usage text.
  """
  for name in names:
    value = getattr(args, name)
    try:
      number = int(str(value).strip())
    except ValueError:
      number = None
    if number is None or number < low:
      fail(f'--{name}: {value!r} is not an integer >= {low}')
    setattr(args, name, number)


def one_line(e: Exception) -> str:
  """The gist of an error as one line (config loaders embed whole tracebacks)."""
  lines = [line.strip() for line in str(e).splitlines() if line.strip()]
  if any(line.startswith('Traceback') for line in lines):
    return f'{lines[0]} {lines[-1]}'
  return ' '.join(lines)


def unknown_field(e: Exception) -> str | None:
  """'--config.x: unknown field; did you mean --config.y?' for ml_collections' error, else None.

  ml_collections reports an override of a field the experiment does not have
  as AttributeError(KeyError("'x'\\nDid you mean ...")) or KeyError("'x'").
  """
  if not isinstance(e, (AttributeError, KeyError)):
    return None
  inner = e.args[0] if e.args else ''
  text = str(inner.args[0] if isinstance(inner, KeyError) and inner.args else inner)
  m = re.match(r"\"?'([\w.]+)'\"?(?:\s*Did you mean \"([\w.]+)\")?", text)
  if not m:
    return None
  hint = f'; did you mean --config.{m.group(2)}?' if m.group(2) else ''
  return (f'--config.{m.group(1)}: unknown field{hint} (the experiment file, --config, lists '
          'its fields)')


def parse_absl_flags(argv):
  """absl's parser, but any bad flag or config file is one line and exit 2."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  try:
    return flags.FLAGS(argv)
  except SystemExit:
    # absl exits 1 after printing --help; asking for help is not an error.
    if any(a in ('-h', '--help', '--helpshort', '--helpfull', '-?') for a in argv[1:]):
      sys.exit(0)
    raise
  except Exception as e:  # pylint: disable=broad-except
    bad = unknown_field(e)
    if bad:
      fail(bad)
    if isinstance(e, flags.Error):
      fail(one_line(e))
    # Anything else came from loading the --config file (syntax error, its own raise).
    fail(f'--config: {type(e).__name__}: {one_line(e)}')


def load_config(config_flag):
  """The parsed config; a missing/broken file or unknown field is one line, exit 2."""
  try:
    config = config_flag.value
    _ = config.name  # a file that failed to load raises only when touched
  except Exception as e:  # pylint: disable=broad-except
    # Loading a config file can raise anything (missing file, syntax error,
    # an unknown --config.<field>): name the flag and the cause.
    fail(f'--config: {type(e).__name__}: {one_line(e)}')
  return check_fields(config)


# Fields every experiment has (experiments/seed.py); the sweep reads them all.
REQUIRED_FIELDS = ('name', 'model', 'kernel_sizes', 'paddings', 'batch_size', 'dtype',
                   'precision', 'learning_rate', 'seed', 'data', 'warmup_steps', 'timed_steps',
                   'train_examples', 'cpu_conv', 'malloc')


def check_fields(config):
  """The config, or fail() naming the first field the experiment file lacks."""
  for field in REQUIRED_FIELDS:
    if field not in config:
      fail(f'config.{field}: the experiment file does not set it (experiments/seed.py '
           'shows every field; a variant derives from it)')
  return config


def prepare(name: str, from_idx: str | None, data_dir: str | None) -> None:
  """--prepare: writes the dataset and exits; bad input is one line, exit 2."""
  if not from_idx:
    fail(f'--from_idx: --prepare={name} needs --from_idx=DIR, the folder of its '
         'IDX files (Fashion-MNIST: apt-get install dataset-fashion-mnist, then '
         '--from_idx=/usr/share/datasets/fashion-mnist)')
  from kernelscale.data import prepare as prep  # pylint: disable=g-import-not-at-top
  try:
    out = prep.prepare_from_idx(name, from_idx, data_dir)
  except prep.PrepareError as e:
    fail(str(e))
  print(f'prepared: {out}')


def stop(msg) -> None:
  """Prints `error: <msg>` on stderr and exits 1 (a run that cannot go on; its records stand)."""
  print(f'error: {msg}', file=sys.stderr)
  sys.exit(1)


def config_given(flag_values) -> bool:
  """Whether the command line set --config or any --config.<field>."""
  return any((name == 'config' or name.startswith('config.')) and flag_values[name].present
             for name in flag_values)


def resume_config(workdir: str | None, config_flag, given: bool):
  """--resume's config: the run's own (config.json) unless the command line gives one."""
  if not workdir:
    fail('--resume: needs the --workdir of the run to continue')
  if given:
    return load_config(config_flag)
  from kernelscale.measure import resume  # pylint: disable=g-import-not-at-top  (no jax)
  try:
    return check_fields(resume.config_of(workdir))
  except resume.WorkdirError as e:
    fail(str(e))


def writing(fn, *args, records_from_file: bool = False):
  """fn(*args), with a workdir that cannot be written (read-only, full) as one line, exit 1.

  With records_from_file (--report_only), a record that lacks a field the report
  needs is one line too: the file may come from another version or be edited.
  """
  try:
    return fn(*args)
  except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
    if not records_from_file:
      raise
    stop(f'--workdir: its results.jsonl has a record the report cannot use ({type(e).__name__}: '
         f'{one_line(e)}); was it written by this version of kernelscale, and not edited?')
  except OSError as e:
    stop(f'--workdir: cannot write {e.filename or "the report"}: {e.strerror or e}; the records '
         'are kept (copy the folder somewhere writable and rerun with --report_only there)')


_SIGNAL_WORKDIR: list = [None]


def on_signals(workdir: str | None) -> None:
  """Ctrl-C (SIGINT) and SIGTERM, at any phase, end the run with `interrupted`'s one line."""
  import signal  # pylint: disable=g-import-not-at-top
  _SIGNAL_WORKDIR[0] = workdir
  for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda signum, _: interrupted(_SIGNAL_WORKDIR[0], signum))


def interrupted(workdir: str | None, signum: int = 2) -> None:
  """Ctrl-C or SIGTERM: say what was kept and how to go on; exit 130 (SIGINT) or 143 (SIGTERM)."""
  name = {2: 'Ctrl-C', 15: 'SIGTERM'}.get(signum, f'signal {signum}')
  n = 0
  path = os.path.join(workdir, 'results.jsonl') if workdir else None
  try:
    if path and os.path.exists(path):
      with open(path, encoding='utf-8', errors='replace') as f:
        n = sum(1 for line in f if line.strip())
  except OSError:
    pass
  if path and (n or os.path.exists(os.path.join(workdir, 'config.json'))):
    print(f'\ninterrupted ({name}): {n} finished point(s) kept in {os.path.abspath(path)}; '
          f'continue the sweep with: python run.py --resume --workdir={workdir}'
          + (f'; build their report with: python run.py --report_only --workdir={workdir}'
             if n else ''), file=sys.stderr)
  else:
    print(f'\ninterrupted ({name}) before any point was measured', file=sys.stderr)
  sys.stdout.flush()
  sys.stderr.flush()
  from kernelscale.measure import resume  # pylint: disable=g-import-not-at-top  (no jax)
  resume.release_locks()
  # Records are fsynced already. Skip interpreter teardown: with a step or a
  # profiler session cut off mid-way, XLA's runtime can crash while exiting.
  os._exit(128 + signum)
