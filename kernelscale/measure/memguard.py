"""The memory guard: no point may need more memory than the machine has.

Before a point's state is allocated, its parameters (with their gradients and
Adam's two moments) are compared with the memory available; after the compile,
the parameter bytes plus XLA's memory_analysis (temp, arguments, outputs) are.
A point that would not fit raises DoesNotFit, which the sweep records as
status=skipped with these figures. Host RAM (MemAvailable) on CPU, the device's
free memory elsewhere.
"""
from __future__ import annotations

import os

import jax

PARAM_BYTES = 4      # parameters are float32 whatever the compute dtype
STATE_COPIES = 4     # parameters, gradients, Adam's mu and nu


class DoesNotFit(Exception):
  """A point that would need more memory than is available; `.fields` go into its record."""

  def __init__(self, msg: str, fields: dict):
    super().__init__(msg)
    self.fields = fields


def _gb(n: float) -> str:
  return f'{n / 1e9:.2f} GB'


def host_available_bytes() -> int | None:
  """MemAvailable from /proc/meminfo (Linux), else free physical pages; None when unknown."""
  try:
    with open('/proc/meminfo', encoding='utf-8') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  try:
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
  except (ValueError, OSError, AttributeError):
    return None


def available_bytes() -> int | None:
  """Memory a point may use now: host RAM on CPU, the device's free memory elsewhere."""
  dev = jax.devices()[0]
  if dev.platform == 'cpu':
    return host_available_bytes()
  try:
    stats = dev.memory_stats() or {}
    return int(stats['bytes_limit']) - int(stats.get('bytes_in_use', 0))
  except (KeyError, TypeError, ValueError, RuntimeError, AttributeError):
    return None


def check_params(params: int, avail: int | None = None) -> None:
  """Before allocating: the train state (parameters, gradients, two Adam moments) must fit."""
  avail = available_bytes() if avail is None else avail
  need = params * PARAM_BYTES * STATE_COPIES
  if avail is not None and need > avail:
    raise DoesNotFit(
        f'the train state needs {_gb(need)} ({params} parameters x {PARAM_BYTES} B x '
        f'{STATE_COPIES}: weights, gradients, Adam moments); {_gb(avail)} is available',
        {'mem_needed_bytes': need, 'mem_available_bytes': avail, 'mem_params_bytes':
         params * PARAM_BYTES})


def check_compiled(rec: dict, avail: int | None = None) -> None:
  """After compiling: parameter bytes plus memory_analysis's temp, argument and output bytes."""
  avail = available_bytes() if avail is None else avail
  parts = {'params': (rec.get('params') or 0) * PARAM_BYTES}
  parts.update({k: rec.get(f'{k}_bytes') or 0 for k in ('temp', 'argument', 'output')})
  need = sum(parts.values())
  if avail is not None and need > avail:
    raise DoesNotFit(
        f'the compiled step needs {_gb(need)} ('
        + ', '.join(f'{k} {_gb(v)}' for k, v in parts.items()) + f'); {_gb(avail)} is available',
        {'mem_needed_bytes': need, 'mem_available_bytes': avail,
         'mem_params_bytes': parts['params'],
         **{f'{k}_bytes': rec.get(f'{k}_bytes') for k in ('temp', 'argument', 'output')}})


def check_up_front(params: int, what: str) -> str | None:
  """None when the parameters alone fit in the memory available, else why not (one line)."""
  avail = available_bytes()
  need = params * PARAM_BYTES
  if avail is not None and need > avail:
    return (f'{what} has {params} parameters, {_gb(need)} alone, more than the {_gb(avail)} '
            'of memory available')
  return None
