"""Flag checks shared by the benchmark scripts: one `error: --flag: ...` line and exit 2."""
from __future__ import annotations

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
