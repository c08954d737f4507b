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
    fail(one_line(e))


def load_config(config_flag):
  """The parsed config; a missing/broken file or unknown field is one line, exit 2."""
  try:
    config = config_flag.value
    _ = config.name  # a file that failed to load raises only when touched
    return config
  except Exception as e:  # pylint: disable=broad-except
    # Loading a config file can raise anything (missing file, syntax error,
    # an unknown --config.<field>): name the flag and the cause.
    fail(f'--config: {type(e).__name__}: {one_line(e)}')


def interrupted(workdir: str) -> None:
  """Ctrl-C mid-sweep: say what was kept and how to use it, exit 130."""
  path = os.path.join(workdir, 'results.jsonl')
  n = 0
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      n = sum(1 for line in f if line.strip())
  print(f'\ninterrupted: {n} finished point(s) kept in {os.path.abspath(path)}'
        + (f'; build their report with: python run.py --report_only --workdir={workdir}'
           if n else ''), file=sys.stderr)
  sys.stdout.flush()
  sys.stderr.flush()
  # Records are fsynced already. Skip interpreter teardown: with a step or a
  # profiler session cut off mid-way, XLA's runtime can crash while exiting.
  os._exit(130)
