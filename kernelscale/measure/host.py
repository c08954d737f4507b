"""Process choices that must be made before jax initialises: the CPU conv path and malloc.

On CPU, jaxlib 0.10.2 sends convolutions to a YNNPACK fusion by default; the
flag below sends them to XLA's Eigen path instead. XLA reads XLA_FLAGS once,
when the backend initialises, so the choice is made in run.py before anything
touches a device, and `auto` measures both paths in child processes.

XLA:CPU allocates each step's scratch buffer (tens of MiB for the seed
network) with the C library's malloc. glibc serves blocks above its mmap
threshold (at most 32 MiB) with a fresh mmap and unmaps them on free, so
every step page-faults its whole scratch buffer in again (benchmarks/malloc.py
measures what that costs; figures in docs/methods.md). `configure_malloc`
tells glibc to keep freed memory instead.

This module must not import jax at module level.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import platform
import sys
import time


EIGEN_FLAG = '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution'
CPU_CONV_CHOICES = ('auto', 'ynnpack', 'eigen')
_YNN_FLAG_PREFIX = '--xla_cpu_experimental_ynn_fusion_type'

RULE_REASON = ('auto: rule for jaxlib 0.10.2 on CPU: Eigen, faster than the YNNPACK default on '
               'the seed train step where it was measured (docs/methods.md); run '
               'experiments/backends.py to measure this machine instead')


MALLOC_CHOICES = ('auto', 'retain', 'system')
# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_RETAIN = ((_M_ARENA_MAX, 1),            # one arena: XLA's threads share its kept memory
           (_M_MMAP_MAX, 0),             # no block gets its own mmap (unmapped on free)
           (_M_TRIM_THRESHOLD, 2 ** 31 - 1))  # never hand the heap's top back to the OS
_malloc_applied = False  # mallopt cannot be undone: once retained, the process stays so


class DeviceConfigError(ValueError):
  """A bad backend choice; the message names the config field."""


CPU_CONV_CACHE, MALLOC_CACHE = 'cpu_conv.json', 'malloc.json'


def _cache_path(name: str = CPU_CONV_CACHE) -> str:
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'kernelscale', name)


def machine_key() -> str:
  """What the decision depends on: CPU model, core count, jaxlib version."""
  model = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      for line in f:
        if line.startswith('model name'):
          model = line.split(':', 1)[1].strip()
          break
  except OSError:
    pass
  try:
    from importlib.metadata import version
    jaxlib_v = version('jaxlib')
  except Exception:  # pylint: disable=broad-except
    jaxlib_v = 'unknown'
  return f'{model}|{os.cpu_count()} cores|jaxlib {jaxlib_v}'


def with_eigen(flags: str, eigen: bool) -> str:
  """XLA_FLAGS with the YNNPACK-conv flag set for the requested path."""
  kept = [f for f in flags.split() if not f.startswith(_YNN_FLAG_PREFIX)]
  if eigen:
    kept.append(EIGEN_FLAG)
  return ' '.join(kept)


def conv_path(flags: str) -> str:
  """The CPU conv path that XLA_FLAGS selects: 'eigen' or 'ynnpack' (jax's default)."""
  return 'eigen' if EIGEN_FLAG in flags.split() else 'ynnpack'


def _conv_key(mode: str) -> str:
  """cpu_conv.json's key: the machine and the malloc mode the paths were timed under.

  Host malloc changes both paths' step times (benchmarks/malloc.py), so a
  ratio measured under one mode does not decide for a process in the other.
  """
  return f'{machine_key()}|malloc {mode}'


def record_measurement(speedup_eigen: float, detail: dict, malloc: str) -> str:
  """Caches a measured Eigen/YNNPACK speed ratio for this machine; returns the path.

  experiments/backends.py calls this after timing both paths side by side,
  so that later `cpu_conv=auto` runs under the same malloc mode ('retain' or
  'system', what the timed runs ran with) follow this machine's own measurement.
  """
  if malloc not in ('retain', 'system'):
    raise ValueError(f'malloc mode {malloc!r}; expected retain or system')
  cache = _load_cache()
  cache[_conv_key(malloc)] = dict(detail, speedup_eigen=float(speedup_eigen), malloc_mode=malloc,
                                  when=time.strftime('%Y-%m-%dT%H:%M:%S'))
  _save_cache(cache)
  return _cache_path()


def configure_cpu_conv(choice: str) -> dict:
  """Sets XLA_FLAGS for the requested CPU conv path; call before jax initialises.

  Args:
    choice: 'auto', 'ynnpack' (jax's out-of-the-box default) or 'eigen'.
      'auto' follows this machine's own measurement when
      experiments/backends.py has cached one (~/.cache/kernelscale/
      cpu_conv.json, keyed by CPU model, cores, jaxlib version and the
      process's malloc mode, so call configure_malloc first); without one it
      follows the rule RULE_REASON gives, verified by experiments/backends.py
      (docs/methods.md).

  Returns:
    Record fields: cpu_conv, cpu_conv_path, cpu_conv_reason and
    cpu_conv_speedup_vs_default (eigen time ratio, None when never measured).

  Raises:
    DeviceConfigError: for an unknown choice.
  """
  fields = resolve_cpu_conv(choice, malloc_mode())
  flags = os.environ.get('XLA_FLAGS', '')
  os.environ['XLA_FLAGS'] = with_eigen(flags, fields['cpu_conv_path'] == 'eigen')
  return fields


def resolve_cpu_conv(choice: str, mode: str) -> dict:
  """configure_cpu_conv's decision for a process under malloc `mode`, without setting anything.

  benchmarks/malloc.py uses it to give both of its children the one path.

  Returns:
    configure_cpu_conv's record fields.
  """
  if choice not in CPU_CONV_CHOICES:
    raise DeviceConfigError(f'config.cpu_conv: unknown value {choice!r}; use one of '
                            f'{CPU_CONV_CHOICES}')
  flags = os.environ.get('XLA_FLAGS', '')
  cache = _load_cache()
  measured = cache.get(_conv_key(mode))
  other = 'system' if mode == 'retain' else 'retain'
  speedup = measured.get('speedup_eigen') if measured else None
  if choice == 'auto' and _YNN_FLAG_PREFIX in flags:
    path = conv_path(flags)
    reason = 'auto: XLA_FLAGS already chooses the conv path; left as set'
  elif choice == 'auto' and measured is not None:
    path = 'eigen' if speedup > 1.0 else 'ynnpack'
    reason = (f'auto: this machine measured Eigen at {speedup:.2f}x the speed of YNNPACK '
              f'(experiments/backends.py, {measured.get("when")}; cache {_cache_path()})')
  elif choice == 'auto':
    path = 'eigen'
    reason = RULE_REASON
    if _conv_key(other) in cache:
      reason += (f' (this machine\'s measurement was taken under malloc={other}, and this '
                 f'process runs malloc={mode})')
    elif any(key.startswith(machine_key()) for key in cache):
      reason += (' (this machine\'s cached measurement predates keying by malloc mode: '
                 'rerun experiments/backends.py)')
  else:
    path = choice
    reason = f'set by config.cpu_conv={choice}'
  return {'cpu_conv': choice, 'cpu_conv_path': path, 'cpu_conv_reason': reason,
          'cpu_conv_speedup_vs_default': speedup}


# jax plugins that mean the sweep will run on an accelerator, not on XLA:CPU
_ACCELERATOR_MODULES = ('jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm60_plugin',
                        'jax_rocm7_plugin', 'libtpu')


def _glibc():
  """The process's C library when it is glibc (has mallopt), else None."""
  if not sys.platform.startswith('linux'):
    return None
  try:
    libc = ctypes.CDLL(None)
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    libc.gnu_get_libc_version()
    return libc if hasattr(libc, 'mallopt') else None
  except Exception:  # pylint: disable=broad-except  (musl, odd builds: no glibc)
    return None


def _accelerator_expected() -> str | None:
  """Why jax will likely run on a GPU/TPU rather than XLA:CPU; None when it will run on CPU."""
  plats = os.environ.get('JAX_PLATFORMS', '').strip().lower()
  if plats:
    return None if plats.split(',')[0].strip() == 'cpu' else f'JAX_PLATFORMS={plats}'
  for mod in _ACCELERATOR_MODULES:
    try:
      if importlib.util.find_spec(mod) is not None:
        return f'{mod} is installed'
    except (ImportError, ValueError):
      continue
  return None


def accelerator_expected() -> str | None:
  """Why jax will run on a GPU/TPU (a line), or None on XLA:CPU; read before jax starts."""
  return _accelerator_expected()


def page_size() -> int:
  """The OS page size in bytes (4096 where it cannot be read)."""
  try:
    import resource  # pylint: disable=g-import-not-at-top
    return resource.getpagesize()
  except ImportError:
    return 4096


def record_malloc_measurement(speedup_retain: float, detail: dict) -> str:
  """Caches the measured speed of malloc=retain over glibc's defaults; returns the path.

  benchmarks/malloc.py calls this after timing both modes side by side, so
  that the report can state this machine's figure.
  """
  cache = _load_cache(MALLOC_CACHE)
  cache[machine_key()] = dict(detail, speedup_retain=float(speedup_retain),
                              when=time.strftime('%Y-%m-%dT%H:%M:%S'))
  _save_cache(cache, MALLOC_CACHE)
  return _cache_path(MALLOC_CACHE)


def configure_malloc(choice: str) -> dict:
  """Sets how the C library's malloc treats freed memory; call before jax initialises.

  Args:
    choice: 'retain' keeps freed memory in the process (glibc mallopt: one
      arena, no per-block mmap, no trimming), so each step reuses the pages
      of the step before instead of faulting in fresh ones; the process's
      resident memory then stays at its peak, and compiles ran slower here
      (one arena). 'system' leaves the C library's defaults (what jax gets
      out of the box). 'auto' (default): 'retain' where the C library is
      glibc and jax will run on CPU; 'system' where it is not glibc, or where
      an accelerator is expected (JAX_PLATFORMS, or a CUDA/ROCm/TPU plugin
      installed): there the step runs on the device and the slower host
      compiles would distort the compile-time figures.

  Returns:
    Record fields: malloc (the choice), malloc_mode ('retain' or 'system': what
    the process runs with), malloc_reason, and malloc_speedup_vs_default
    (retain's measured speed over glibc's defaults on this machine, from
    benchmarks/malloc.py's cache; None when never measured).

  Raises:
    DeviceConfigError: for an unknown choice, or 'retain' without glibc.
  """
  global _malloc_applied
  if choice not in MALLOC_CHOICES:
    raise DeviceConfigError(f'config.malloc: unknown value {choice!r}; use one of '
                            f'{MALLOC_CHOICES}')
  accelerator = _accelerator_expected() if choice == 'auto' else None
  libc = _glibc() if choice == 'retain' or (choice == 'auto' and not accelerator) else None
  if choice == 'retain' and libc is None:
    raise DeviceConfigError('config.malloc: retain needs glibc (Linux); this C library has no '
                            'mallopt; use auto or system')
  if libc is not None:
    for param, value in _RETAIN:
      if libc.mallopt(param, value) != 1:
        raise DeviceConfigError(f'config.malloc: glibc refused mallopt({param}, {value})')
    _malloc_applied = True
    reason = ('glibc keeps freed memory (mallopt: 1 arena, no mmap per block, no trim); '
              f'set by config.malloc={choice}')
  elif _malloc_applied:
    reason = (f'config.malloc={choice}, but an earlier call in this process set glibc to keep '
              'freed memory, which cannot be undone')
  elif choice == 'system':
    reason = 'set by config.malloc=system'
  elif accelerator:
    reason = (f'auto: the C library\'s defaults, as an accelerator is expected ({accelerator}); '
              'retain helps XLA:CPU steps and slows host compiles')
  else:
    reason = 'auto: not glibc, so the C library\'s defaults'
  measured = _load_cache(MALLOC_CACHE).get(machine_key())
  return {'malloc': choice, 'malloc_mode': malloc_mode(), 'malloc_reason': reason,
          'malloc_speedup_vs_default': measured.get('speedup_retain') if measured else None,
          'malloc_measured_when': measured.get('when') if measured else None}


def configure(cpu_conv: str, malloc: str = 'auto') -> dict:
  """Both process settings, as run.py makes them: configure_cpu_conv's and configure_malloc's fields.

  malloc first: cpu_conv=auto follows a measurement taken under the same malloc mode.
  A user's XLA_FLAGS is checked first (check_user_xla_flags).
  """
  check_user_xla_flags(cpu_conv)
  mem = configure_malloc(malloc)
  away = _accelerator_expected()
  if away:  # the Eigen flag is an XLA:CPU flag: on a GPU/TPU it is neither set nor reported
    resolve_cpu_conv(cpu_conv, mem['malloc_mode'])  # a bad choice still fails
    return {'cpu_conv': cpu_conv, 'cpu_conv_path': None, 'cpu_conv_speedup_vs_default': None,
            'cpu_conv_reason': f'not on CPU ({away}): no CPU conv flag set', **mem}
  return {**configure_cpu_conv(cpu_conv), **mem}


def malloc_mode() -> str:
  """'retain' once configure_malloc has set glibc to keep freed memory, else 'system'."""
  return 'retain' if _malloc_applied else 'system'


def _load_cache(name: str = CPU_CONV_CACHE) -> dict:
  try:
    with open(_cache_path(name), encoding='utf-8') as f:
      cache = json.load(f)
  except (OSError, ValueError):
    return {}  # missing or corrupt: measured again when needed
  return cache if isinstance(cache, dict) else {}


def _save_cache(cache: dict, name: str = CPU_CONV_CACHE) -> None:
  path = _cache_path(name)
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
      json.dump(cache, f, indent=1)
    os.replace(tmp, path)
  except OSError:
    pass  # an unwritable cache only means measuring again next time


def check_user_xla_flags(cpu_conv: str) -> None:
  """One line, before jax starts, for a user's XLA_FLAGS that would fail or fight the tool's.

  XLA aborts the process (no Python error) on a flag it does not know, so a
  non-empty XLA_FLAGS is first tried in a child process (about a second).

  Raises:
    DeviceConfigError: for a conv-path flag that contradicts config.cpu_conv,
      or a flag XLA does not know.
  """
  flags = os.environ.get('XLA_FLAGS', '').strip()
  if not flags:
    return
  if cpu_conv in ('eigen', 'ynnpack') and _YNN_FLAG_PREFIX in flags and conv_path(flags) != cpu_conv:
    raise DeviceConfigError(f'XLA_FLAGS: {flags!r} chooses the {conv_path(flags)} conv path, '
                            f'config.cpu_conv={cpu_conv} the other; drop one of them')
  import subprocess  # pylint: disable=g-import-not-at-top
  try:
    p = subprocess.run([sys.executable, '-c', 'import jax; jax.devices("cpu")'],
                       capture_output=True, text=True, timeout=120, check=False,
                       env=dict(os.environ, JAX_PLATFORMS='cpu'))
  except (OSError, subprocess.TimeoutExpired):
    return  # the check itself could not run: XLA will say what it says
  bad = [line for line in p.stderr.splitlines() if 'Unknown flag' in line]
  if p.returncode != 0 and bad:
    raise DeviceConfigError(f'XLA_FLAGS: {bad[-1].split("]", 1)[-1].strip()}; remove it '
                            '(this jaxlib\'s XLA does not know it)')


def platform_error(e: Exception) -> str:
  """One line for jax finding no backend it was told to use (JAX_PLATFORMS naming a missing one)."""
  plats = os.environ.get('JAX_PLATFORMS', '')
  first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
  return (f'JAX_PLATFORMS={plats}: {first}' if plats else f'jax found no backend: {first}') + (
      '; unset JAX_PLATFORMS (or set it to cpu) to run where this machine can')
