"""Compile and step timing, and XLA's own analyses of the compiled step.

Compile is measured ahead of time: `jit(f).lower(...)` then `.compile()`, each
timed, with jax.monitoring's backend-compile event as a cross-check. Step time
is warm, blocked, repeated and reported as a median with spread; the first call
never enters the step statistics. `time_optimizer_update` times the optimizer's
update alone, so its share of the step can be read even without traces.
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

BACKEND_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'


@contextlib.contextmanager
def backend_compile_events():
  """Collects (fun_name, seconds) of every backend compile inside the block."""
  events: list[tuple[str, float]] = []

  def listener(event, duration, **kwargs):
    if event == BACKEND_COMPILE_EVENT:
      events.append((str(kwargs.get('fun_name', '')), float(duration)))

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield events
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def compile_aot(fn: Callable, args: tuple, donate_argnums=(0,)) -> dict:
  """Lowers and compiles `fn(*args)` once, timing each part.

  Returns:
    {'compiled', 'lowered', 'lower_s', 'compile_s', 'monitor_compile_s'};
    monitor_compile_s is None when jax.monitoring reported no compile of `fn`.
  """
  name = getattr(fn, '__name__', '')
  # The state is donated: its buffers are reused for the new state.
  jitted = jax.jit(fn, donate_argnums=donate_argnums)
  with backend_compile_events() as events:
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
  # The event names the function as 'jit(train_step)'.
  mine = [d for n, d in events if n in (name, f'jit({name})')]
  return {'compiled': compiled, 'lowered': lowered, 'lower_s': t1 - t0,
          'compile_s': t2 - t1, 'monitor_compile_s': sum(mine) if mine else None}


def minor_faults() -> int | None:
  """Minor page faults of this process so far (all threads); None where unsupported."""
  try:
    import resource  # pylint: disable=g-import-not-at-top
  except ImportError:  # not Unix
    return None
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _usable_cpus() -> set[int] | None:
  """The CPUs this process may run on (Linux affinity), or None where that is unknown."""
  try:
    return set(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    return None


def host_cpu_busy(stat_path: str = '/proc/stat',
                  cpus: set[int] | None = None) -> tuple[float, int] | None:
  """(busy CPU seconds since boot, number of CPUs counted), from Linux's /proc/stat.

  Busy = user + nice + system + irq + softirq + steal (guest time is already
  inside user and nice); steal is time the hypervisor gave this virtual
  machine's CPUs to someone else. `cpus`: count only these CPUs (the ones this
  process may run on); None: all. None where the file is missing or
  unreadable (not Linux).
  """
  try:
    with open(stat_path, encoding='ascii') as f:
      lines = f.read().splitlines()
  except OSError:
    return None
  busy, n = 0, 0
  for line in lines:
    m = re.match(r'cpu(\d+)\s+(.*)', line)
    if not m or (cpus is not None and int(m.group(1)) not in cpus):
      continue
    try:
      fields = [int(v) for v in m.group(2).split()[:8]]
    except ValueError:
      return None
    fields += [0] * (8 - len(fields))
    user, nice, system, _, _, irq, softirq, steal = fields
    busy += user + nice + system + irq + softirq + steal
    n += 1
  if not n:
    return None
  return busy / os.sysconf('SC_CLK_TCK'), n


# Fewer counter ticks than this in a window (wall x CPUs x ticks per second)
# and /proc/stat's 1/100 s counters cannot tell a few percent of other load
# from rounding: other_cpu_load gives None.
MIN_LOAD_TICKS = 50


@contextlib.contextmanager
def other_cpu_load(stat_path: str = '/proc/stat', min_ticks: int | None = None):
  """Measures how much of this process's CPUs others used while the block ran.

  Yields a dict whose `other_cpu_share` is set on exit: (the busy time of the
  CPUs this process may run on, minus this process's CPU time) / (wall time x
  those CPUs), i.e. the share of them that other processes (or the
  hypervisor, as steal) took while this process was being timed. None where
  /proc/stat is not readable, or the window is too short for its 1/100 s
  counters (fewer than `min_ticks`, default MIN_LOAD_TICKS, ticks in all); a few percent is still
  within rounding: the report flags a point from claims.CONTENDED_SHARE.
  A CPU quota (cgroup cpu.max) is not seen here. Off CPU (jax on a GPU or
  TPU) the step does not run on these CPUs, so nothing is measured (None).
  """
  out: dict = {'other_cpu_share': None}
  if jax.default_backend() != 'cpu':
    yield out
    return
  cpus = _usable_cpus()
  b0, p0, t0 = host_cpu_busy(stat_path, cpus), time.process_time(), time.perf_counter()
  yield out
  b1, p1, wall = host_cpu_busy(stat_path, cpus), time.process_time(), time.perf_counter() - t0
  if b0 is None or b1 is None or wall <= 0:
    return
  if wall * b1[1] * os.sysconf('SC_CLK_TCK') < (MIN_LOAD_TICKS if min_ticks is None else min_ticks):
    return
  other = (b1[0] - b0[0]) - (p1 - p0)
  out['other_cpu_share'] = min(1.0, max(0.0, other / (wall * b1[1])))


def time_calls(call: Callable[[], Any], n: int, budget_s: float | None = None,
               after: Callable[[int], Any] | None = None) -> list[float]:
  """Seconds of each of `n` calls of `call`: the one timing loop every measurement uses.

  `call` must return only once its work is done (jax: block_until_ready on its
  result; torch: synchronize the device), so each figure is the whole call.
  With `budget_s`, stops after the call that takes the total past it (at least one call).
  `after(i)` runs after call i's clock has stopped (e.g. a progress tick).
  """
  times: list[float] = []
  start = time.perf_counter()
  for _ in range(n):
    t0 = time.perf_counter()
    call()
    times.append(time.perf_counter() - t0)
    if after is not None:
      after(len(times) - 1)
    if budget_s is not None and time.perf_counter() - start > budget_s:
      break
  return times


def summary(times: Sequence[float]) -> dict:
  """{'median', 'p10', 'p90', 'min', 'n'} of a list of seconds."""
  a = np.asarray(times, dtype=np.float64)
  return {'median': float(np.median(a)), 'p10': float(np.percentile(a, 10)),
          'p90': float(np.percentile(a, 90)), 'min': float(a.min()), 'n': int(a.size)}


def run_steps(compiled: Callable, state: Any, batch: dict, warmup: int,
              steps: int, on_step: Callable[[int], Any] | None = None):
  """Runs the first step, `warmup` warm steps and `steps` timed steps.

  Each step is blocked with block_until_ready before the clock stops.

  Returns:
    (state, metrics of the last step, first_step_s, list of timed seconds,
    minor page faults per timed step: the process's, None where the OS does
    not count them). With glibc's default malloc, XLA:CPU's scratch buffer
    faults in afresh every step (host.configure_malloc).
  """
  t0 = time.perf_counter()
  state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  first = time.perf_counter() - t0
  for _ in range(warmup):
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
  out = [state, metrics]

  def step():
    # The state is donated: each step rebinds it.
    out[:] = compiled(out[0], batch)
    jax.block_until_ready(out)

  faults0 = minor_faults()
  times = time_calls(step, steps, after=on_step)
  state, metrics = out
  faults = (minor_faults() - faults0) / steps if faults0 is not None and steps else None
  return state, metrics, first, times, faults


def step_stats(times: list[float]) -> dict:
  """Median, p10, p90 and min of the timed steps, in seconds."""
  s = summary(times)
  return {'step_s_median': s['median'], 'step_s_p10': s['p10'], 'step_s_p90': s['p90'],
          'step_s_min': s['min'], 'steps_timed': s['n']}


def cost_analysis(compiled) -> tuple[dict, list[str]]:
  """xla_flops, xla_bytes_accessed, xla_transcendentals, with None + notes when missing.

  `cost_analysis()` may return a dict, a one-element list of dicts, or None,
  or raise on backends that do not implement it.
  """
  keys = {'xla_flops': 'flops', 'xla_bytes_accessed': 'bytes accessed',
          'xla_transcendentals': 'transcendentals'}
  out = {k: None for k in keys}
  notes = []
  try:
    ca = compiled.cost_analysis()
  except Exception as e:  # pylint: disable=broad-except
    return out, [f'cost_analysis raised {type(e).__name__}: {e}']
  if isinstance(ca, (list, tuple)):
    ca = ca[0] if ca else None
  if not ca:
    return out, ['cost_analysis returned nothing on this backend']
  for key, xla_key in keys.items():
    if xla_key in ca and ca[xla_key] is not None and ca[xla_key] >= 0:
      out[key] = float(ca[xla_key])
    elif key == 'xla_transcendentals' and 'flops' in ca:
      # XLA omits the key when the program has none.
      out[key] = 0.0
    else:
      notes.append(f'cost_analysis has no {xla_key!r}')
  return out, notes


def memory_analysis(compiled) -> tuple[dict, list[str]]:
  """temp/argument/output/alias/generated-code bytes, None + notes when missing."""
  keys = ('temp', 'argument', 'output', 'alias', 'generated_code')
  out = {f'{k}_bytes': None for k in keys}
  try:
    ma = compiled.memory_analysis()
  except Exception as e:  # pylint: disable=broad-except
    return out, [f'memory_analysis raised {type(e).__name__}: {e}']
  if ma is None:
    return out, ['memory_analysis returned None on this backend']
  notes = []
  for k in keys:
    v = getattr(ma, f'{k}_size_in_bytes', None)
    if v is None:
      notes.append(f'memory_analysis has no {k}_size_in_bytes')
    else:
      out[f'{k}_bytes'] = int(v)
  return out, notes


def _optimizer_only_step(state, grads):
  # The same update the train step applies, without forward or backward.
  return state.apply_gradients(grads=grads), {}


def time_optimizer_update(state, warmup: int = 3, steps: int = 20) -> dict:
  """Times the optimizer update alone on this state's parameters.

  Works on a copy, so the caller's state stays usable. Gradients are a scaled
  copy of the parameters: the update's arithmetic does not depend on their
  values. The update runs as its own jitted call, so the figure includes one
  dispatch that the fused train step does not pay.

  Returns:
    {'optimizer_update_s': median seconds per update, 'optimizer_update_s_p90'}.
  """
  # Copied through the host: eager device ops would each compile (~0.3 s).
  state = jax.tree_util.tree_map(lambda x: jax.device_put(np.array(x)), state)
  grads = jax.tree_util.tree_map(lambda p: jax.device_put(np.array(p) * 1e-3), state.params)
  comp = compile_aot(_optimizer_only_step, (state, grads))
  _, _, _, times, _ = run_steps(comp['compiled'], state, grads, warmup, steps)
  stats = step_stats(times)
  return {'optimizer_update_s': stats['step_s_median'],
          'optimizer_update_s_p90': stats['step_s_p90']}
