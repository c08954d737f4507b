"""Progress with an ETA: a tqdm bar on a terminal, plain lines otherwise (logs, pipes, tests).

    bar = progress.Bar(total=8, desc='sweep', unit='point')
    bar.update(line='[1/8] k=3 SAME ...')   # the line stays above the bar; ETA from the rate
    bar.close()

No jax, no report: measure (training epochs) and run.py (the sweep) both use it.
"""
from __future__ import annotations

import os
import sys
import time


def _eta(seconds: float) -> str:
  seconds = max(0, int(round(seconds)))
  return f'{seconds // 60}:{seconds % 60:02d}' if seconds >= 60 else f'{seconds} s'


def _terminal(stream) -> bool:
  """A terminal with a width (a pty of zero columns would show an empty bar and no ETA)."""
  try:
    return stream.isatty() and os.get_terminal_size(stream.fileno()).columns > 0
  except (AttributeError, OSError, ValueError):
    return False


class Bar:
  """A progress bar over `total` units, with an ETA.

  On a TTY (stderr) it is tqdm's bar, drawn on stderr, and `line`s are written
  above it; elsewhere each `line` is printed on stdout with ', ETA ...'
  appended (when `plain` is True, the default), and nothing else.
  """

  def __init__(self, total: int, desc: str = '', unit: str = 'it', plain: bool = True,
               stream=None):
    self.total, self.n, self.plain = total, 0, plain
    self._t0 = time.perf_counter()
    self._tty = _terminal(stream or sys.stderr)
    self._bar = None
    if self._tty:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      self._bar = tqdm(total=total, desc=desc, unit=unit, file=stream or sys.stderr,
                       leave=False, dynamic_ncols=True)

  def eta(self) -> str | None:
    """Time left at the mean rate so far, e.g. '42 s' or '3:05'; None before the first unit."""
    if not self.n or self.n >= self.total:
      return None
    return _eta((time.perf_counter() - self._t0) / self.n * (self.total - self.n))

  def update(self, n: int = 1, line: str | None = None, total: int | None = None) -> None:
    """Counts `n` units done and shows `line` (if any) with the ETA."""
    if total is not None and total != self.total:
      self.total = total
      if self._bar is not None:
        self._bar.total = total
    self.n += n
    if self._bar is not None:
      if line:
        self._bar.write(line, file=sys.stdout)
      self._bar.update(n)
    elif line and self.plain:
      eta = self.eta()
      print(line + (f', ETA {eta}' if eta else ''), flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
