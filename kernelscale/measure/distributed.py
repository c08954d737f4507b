"""Many devices and many processes: the devices axis, host devices, jax.distributed, a launcher.

run.py defines the flags (--coordinator, --num_processes, --process_id,
--local_processes) and hands them here:

- `setup` runs before jax initialises: it checks the flags, gives XLA:CPU enough
  host devices for the largest `config.devices` (`--xla_force_host_platform_device_count`,
  CPU only, and only when more than one is needed, so a default run's XLA_FLAGS do
  not change), makes the CPU-only process settings (host.configure) and joins the
  processes with `jax.distributed.initialize` (gloo collectives on CPU).
- `launch_local` is `--local_processes=P`: P copies of the same command on
  127.0.0.1, waited for; when one fails the others are stopped (process groups,
  SIGTERM then SIGKILL), so none is left behind.
- Every process measures every point (the collectives need all of them);
  process 0 alone writes the workdir (`is_writer`), and `gather` gives it every
  process's step time.

Forced host devices share the machine's cores: their step times show the
program's overheads, not a hardware speed-up (kernelscale/report/devices.py).
This module must not import jax at module level.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from kernelscale import cli

BATCH_SCALINGS = ('strong', 'weak')
HOST_DEVICES_FLAG = '--xla_force_host_platform_device_count'
# An unreachable coordinator fails within a minute (the tests shorten it through the environment).
INIT_TIMEOUT_S = int(os.environ.get('KERNELSCALE_INIT_TIMEOUT_S', '50'))
HEARTBEAT_S = 30       # a process that stops answering is noticed by the others
STOP_GRACE_S = 10      # SIGTERM, then SIGKILL after this long


class SetupError(ValueError):
  """Bad distributed flags or devices field; the message names them."""


def _ints(v) -> tuple:
  items = tuple(v) if isinstance(v, (list, tuple)) else (v,)
  out = []
  for x in items:
    out += [p.strip() for p in x.split(',') if p.strip()] if isinstance(x, str) else [x]
  return tuple(out)


def device_axis(config, device_count: int | None = None,
                n_processes: int = 1) -> list[tuple[int, str, int]]:
  """The sweep's devices axis: (n_devices, batch_scaling, global batch) per combination.

  Args:
    config: with `devices` (one count or several; default 1), `batch_scaling`
      ('strong': batch_size is the global batch; 'weak': per device; or both,
      'strong,weak') and `batch_size`.
    device_count: devices that exist (all processes'); None: not checked.
    n_processes: processes in the run; each count must split evenly over them.

  Raises:
    SetupError: naming config.devices / config.batch_scaling / config.batch_size.
  """
  devices = _ints(config.get('devices', (1,)))
  if not devices:
    raise SetupError('config.devices: empty; give one or more device counts, e.g. 1,2,4,8')
  for n in devices:
    if isinstance(n, str) and n.lstrip('-').isdigit():
      n = int(n)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
      raise SetupError(f'config.devices: {n!r} is not an integer >= 1')
  devices = tuple(int(n) for n in devices)
  if len(set(devices)) != len(devices):
    raise SetupError(f'config.devices: a count is listed twice in {devices}')
  scalings = _ints(config.get('batch_scaling', 'strong'))
  for s in scalings or ('',):
    if s not in BATCH_SCALINGS:
      raise SetupError(f'config.batch_scaling: unknown value {s!r}; use strong (batch_size is '
                       'the global batch), weak (batch_size per device) or strong,weak')
  if config.get('epochs', 0) and max(devices) > 1:
    raise SetupError('config.devices: the accuracy mode (config.epochs > 0) trains on one '
                     'device; use devices=1 there')
  if device_count is not None and max(devices) > device_count:
    raise SetupError(f'config.devices: {max(devices)} devices asked for, {device_count} exist')
  out = []
  for s in scalings:
    for n in devices:
      if n % n_processes:
        raise SetupError(f'config.devices: {n} does not split over {n_processes} processes')
      glob = config.batch_size * n if s == 'weak' else config.batch_size
      if glob % n:
        raise SetupError(f'config.batch_size: the global batch {glob} does not split over '
                         f'{n} devices (strong scaling: batch_size is the global batch)')
      out.append((n, s, glob))
  return out


def check_flags(coordinator: str | None, num_processes: int | None, process_id: int | None,
                local_processes: int | None) -> None:
  """One-line errors for the distributed flags, before anything starts."""
  if local_processes is not None and local_processes < 1:
    raise SetupError(f'--local_processes: {local_processes} is not an integer >= 1')
  if local_processes and (coordinator or num_processes or process_id is not None):
    raise SetupError('--local_processes: starts its own processes; leave out --coordinator, '
                     '--num_processes and --process_id')
  if num_processes is not None and num_processes < 1:
    raise SetupError(f'--num_processes: {num_processes} is not an integer >= 1')
  if process_id is not None and (process_id < 0 or process_id >= (num_processes or 1)):
    raise SetupError(f'--process_id: {process_id} is not in 0..{(num_processes or 1) - 1} '
                     f'(--num_processes={num_processes or 1})')
  if coordinator not in (None, 'auto') and (':' not in coordinator
                                  or not coordinator.rsplit(':', 1)[1].isdigit()):
    raise SetupError(f'--coordinator: {coordinator!r} is not HOST:PORT (or auto: a TPU pod '
                     'slice or SLURM, where jax.distributed finds its own settings)')
  if (num_processes or 1) > 1 and (coordinator is None or process_id is None) \
      and coordinator != 'auto':
    raise SetupError('--num_processes: needs --coordinator=HOST:PORT and --process_id=I '
                     '(or use --local_processes=P on one machine)')


def setup(config, coordinator=None, num_processes=None, process_id=None) -> dict:
  """run.py: everything that must happen before jax initialises; returns the host's record fields.

  Bad flags or fields end the process with one line (cli.fail, exit 2).
  """
  try:
    return _setup(config, coordinator, num_processes, process_id)
  except (SetupError, ValueError) as e:  # host.DeviceConfigError is a ValueError
    cli.fail(str(e))


def _setup(config, coordinator, num_processes, process_id) -> dict:
  from kernelscale.measure import host  # pylint: disable=g-import-not-at-top  (no jax)
  procs = num_processes or 1
  device_axis(config, None, procs)
  on_cpu = host.accelerator_expected() is None
  per_process = -(-max(n for n, _, _ in device_axis(config, None, procs)) // procs)
  if on_cpu and per_process > 1:
    flags = [f for f in os.environ.get('XLA_FLAGS', '').split()
             if not f.startswith(HOST_DEVICES_FLAG)]
    os.environ['XLA_FLAGS'] = ' '.join(flags + [f'{HOST_DEVICES_FLAG}={per_process}'])
  fields = host.configure(config.cpu_conv, config.malloc)
  if procs > 1 or coordinator:
    initialize(coordinator, procs, process_id, on_cpu)
  return fields


def initialize(coordinator, num_processes, process_id, on_cpu: bool) -> None:
  """jax.distributed.initialize, with gloo collectives on CPU; a timeout is one SetupError."""
  if coordinator == 'auto':  # TPU pod slice, SLURM: jax.distributed finds every setting
    coordinator = num_processes = process_id = None
  elif coordinator and process_id:
    # jaxlib aborts the whole process (no Python exception) when it cannot reach the
    # coordinator: find out first, with a plain TCP connection, and say so in one line.
    wait_for(coordinator, INIT_TIMEOUT_S)
  import jax  # pylint: disable=g-import-not-at-top
  if on_cpu:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(coordinator, num_processes, process_id,
                               initialization_timeout=INIT_TIMEOUT_S,
                               heartbeat_timeout_seconds=HEARTBEAT_S)
  except Exception as e:  # pylint: disable=broad-except  (jaxlib raises its own types)
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise SetupError(f'--coordinator: could not join {coordinator} as process {process_id} '
                     f'of {num_processes} within {INIT_TIMEOUT_S} s ({first[:200]})') from None


def launch(argv: list[str], workdir: str, coordinator, num_processes, process_id,
           local_processes) -> None:
  """run.py: checks the distributed flags; with --local_processes runs them here and exits."""
  try:
    check_flags(coordinator, num_processes, process_id, local_processes)
  except SetupError as e:
    cli.fail(str(e))
  if local_processes:
    sys.exit(launch_local(local_processes, argv, workdir))


def banner(workdir: str, backend: dict) -> str:
  """run.py's first lines: the workdir, the processes, and the CPU-only settings on CPU only."""
  import jax  # pylint: disable=g-import-not-at-top
  lines = [f'workdir: {os.path.abspath(workdir)}']
  if jax.process_count() > 1:
    lines.append(f'process {jax.process_index()} of {jax.process_count()}; '
                 f'{jax.local_device_count()} local devices, {jax.device_count()} in all')
  if backend.get('cpu_conv_path') is not None:
    lines.append(f'cpu conv path: {backend["cpu_conv_path"]} ({backend["cpu_conv_reason"]})')
  if jax.default_backend() == 'cpu':
    lines.append(f'malloc: {backend["malloc_mode"]} ({backend["malloc_reason"]})')
  return '\n'.join(lines)


def exit_unless_writer() -> None:
  """Ends a process other than 0 after the sweep: process 0 writes the results and report."""
  if not is_writer():
    sys.exit(0)


def wait_for(coordinator: str, timeout_s: float) -> None:
  """Returns once HOST:PORT accepts a TCP connection; SetupError after timeout_s."""
  host, port = coordinator.rsplit(':', 1)
  end = time.time() + timeout_s
  while True:
    try:
      with socket.create_connection((host, int(port)), timeout=2):
        return
    except OSError as e:
      if time.time() >= end:
        raise SetupError(f'--coordinator: {coordinator} did not answer within {timeout_s:.0f} s '
                         f'({e.strerror or e}); is process 0 running there?') from None
      time.sleep(0.5)


def is_writer() -> bool:
  """True in process 0 (or a single process): the one that writes the workdir."""
  import jax  # pylint: disable=g-import-not-at-top
  return jax.process_index() == 0


def process_fields() -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  return {'n_processes': jax.process_count(), 'process_index': jax.process_index()}


def gather(value: float) -> list[float]:
  """`value` from every process, in process order (a collective: every process must call it)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() == 1:
    return [float(value)]
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return [float(v) for v in np.ravel(multihost_utils.process_allgather(np.float64(value)))]


STEP_FIELDS = ('step_s_median', 'step_s_p10', 'step_s_p90', 'step_s_min')


def slowest_process(rec: dict) -> dict:
  """The step-time fields of the process with the slowest median, and each process's median.

  A collective; every process calls it. Returns {step_s_*: the slowest's,
  'step_s_median_by_process': [...], 'slowest_process': its index}.
  """
  got = {f: gather(rec[f]) for f in STEP_FIELDS}
  by = got['step_s_median']
  worst = max(range(len(by)), key=by.__getitem__)
  return {**{f: got[f][worst] for f in STEP_FIELDS}, 'step_s_median_by_process': by,
          'slowest_process': worst}


def trace_subdir() -> str:
  """'' in process 0; 'process<i>' elsewhere, so that processes' traces do not collide."""
  import jax  # pylint: disable=g-import-not-at-top
  return '' if jax.process_index() == 0 else f'process{jax.process_index()}'


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _without(argv: list[str], names: tuple[str, ...]) -> list[str]:
  out, skip = [], False
  for a in argv:
    if skip:
      skip = False
      continue
    name = a.split('=', 1)[0].lstrip('-')
    if name in names:
      skip = '=' not in a
      continue
    out.append(a)
  return out


def launch_local(n: int, argv: list[str], workdir: str, poll_s: float = 0.2) -> int:
  """--local_processes=N: N copies of this command on 127.0.0.1; returns the exit status.

  Each child gets --coordinator, --num_processes, --process_id and the same
  --workdir. When one exits non-zero, the others are stopped (their process
  groups get SIGTERM, then SIGKILL after STOP_GRACE_S); Ctrl-C stops them all.
  Records are whole lines written by process 0 alone, so a stop leaves every
  finished point once and no half record.
  """
  args = _without(argv[1:], ('local_processes', 'coordinator', 'num_processes', 'process_id',
                             'workdir'))
  coord = f'127.0.0.1:{free_port()}'
  procs = []
  for i in range(n):
    cmd = [sys.executable, argv[0]] + args + [
        f'--coordinator={coord}', f'--num_processes={n}', f'--process_id={i}',
        f'--workdir={workdir}']
    # Their own process group: stopping one stops what it started too.
    procs.append(subprocess.Popen(cmd, start_new_session=True,
                                  stdout=None if i == 0 else subprocess.DEVNULL))
  status = 0
  try:
    while True:
      alive = [p for p in procs if p.poll() is None]
      bad = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode not in (None, 0)]
      if bad:
        # A killed process often takes process 0 down with it (jax's coordination
        # service aborts the others): name every one that failed, the first poll's order.
        status = bad[0][1]
        print(f'error: process {bad[0][0]} of {n} exited with status {status}'
              + ''.join(f'; process {i} with {rc}' for i, rc in bad[1:])
              + '; stopping the others', file=sys.stderr)
        break
      if not alive:
        break
      time.sleep(poll_s)
  except KeyboardInterrupt:
    status = 130
  stop(procs)
  status = status or next((p.returncode for p in procs if p.returncode), 0)
  return 128 - status if status < 0 else status  # killed by signal N: 128 + N, as a shell says


def stop(procs: list[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
  """SIGTERM to each live child's process group, SIGKILL after grace_s; waits for all."""
  for sig in (signal.SIGTERM, signal.SIGKILL):
    live = [p for p in procs if p.poll() is None]
    for p in live:
      try:
        os.killpg(p.pid, sig)
      except ProcessLookupError:
        pass
    end = time.time() + grace_s
    while any(p.poll() is None for p in live) and time.time() < end:
      time.sleep(0.1)
  for p in procs:
    p.wait()
