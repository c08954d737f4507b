"""Backend choices that must be made before jax initialises: the CPU conv path.

On CPU, jaxlib 0.10.2 sends convolutions to a YNNPACK fusion by default; the
flag below sends them to XLA's Eigen path instead. XLA reads XLA_FLAGS once,
when the backend initialises, so the choice is made in run.py before anything
touches a device, and `auto` measures both paths in child processes.

This module must not import jax at module level.
"""
from __future__ import annotations

import json
import os
import platform
import time

EIGEN_FLAG = '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution'
CPU_CONV_CHOICES = ('auto', 'ynnpack', 'eigen')
_YNN_FLAG_PREFIX = '--xla_cpu_experimental_ynn_fusion_type'

RULE_REASON = ('auto: rule for jaxlib 0.10.2 on CPU: Eigen, measured 1.4-2.2x faster than the '
               'YNNPACK default on the seed train step (experiments/backends.py, WORKSPACE.md); '
               'run experiments/backends.py to measure this machine instead')


class DeviceConfigError(ValueError):
  """A bad backend choice; the message names the config field."""


def _cache_path() -> str:
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'kernelscale', 'cpu_conv.json')


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


def record_measurement(speedup_eigen: float, detail: dict) -> str:
  """Caches a measured Eigen/YNNPACK speed ratio for this machine; returns the path.

  experiments/backends.py calls this after timing both paths side by side,
  so that later `cpu_conv=auto` runs follow this machine's own measurement.
  """
  cache = _load_cache()
  cache[machine_key()] = dict(detail, speedup_eigen=float(speedup_eigen),
                              when=time.strftime('%Y-%m-%dT%H:%M:%S'))
  _save_cache(cache)
  return _cache_path()


def configure_cpu_conv(choice: str) -> dict:
  """Sets XLA_FLAGS for the requested CPU conv path; call before jax initialises.

  Args:
    choice: 'auto', 'ynnpack' (jax's out-of-the-box default) or 'eigen'.
      'auto' follows this machine's own measurement when
      experiments/backends.py has cached one (~/.cache/kernelscale/
      cpu_conv.json, keyed by CPU model, cores and jaxlib version); without
      one it follows the rule RULE_REASON gives, verified by
      experiments/backends.py (see WORKSPACE.md).

  Returns:
    Record fields: cpu_conv, cpu_conv_path, cpu_conv_reason and
    cpu_conv_speedup_vs_default (eigen time ratio, None when never measured).

  Raises:
    DeviceConfigError: for an unknown choice.
  """
  if choice not in CPU_CONV_CHOICES:
    raise DeviceConfigError(f'config.cpu_conv: unknown value {choice!r}; use one of '
                            f'{CPU_CONV_CHOICES}')
  flags = os.environ.get('XLA_FLAGS', '')
  key = machine_key()
  cache = _load_cache()
  measured = cache.get(key)
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
  else:
    path = choice
    reason = f'set by config.cpu_conv={choice}'
  os.environ['XLA_FLAGS'] = with_eigen(flags, path == 'eigen')
  return {'cpu_conv': choice, 'cpu_conv_path': path, 'cpu_conv_reason': reason,
          'cpu_conv_speedup_vs_default': speedup}


def _load_cache() -> dict:
  try:
    with open(_cache_path(), encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _save_cache(cache: dict) -> None:
  path = _cache_path()
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
      json.dump(cache, f, indent=1)
    os.replace(tmp, path)
  except OSError:
    pass  # an unwritable cache only means measuring again next time


def platform_notes(recs: list[dict]) -> list[str]:
  """Sentences the report must say about the backend these records ran on.

  Covers the CPU conv path (and its measured speed against jax's default),
  GPU precision/autotuning, and TPU's bf16 default and channel padding.
  """
  ok = [r for r in recs if r.get('status') == 'ok']
  if not ok:
    return []
  r = ok[0]
  notes = []
  plat = r.get('platform')
  if plat == 'cpu':
    paths = sorted({x.get('cpu_conv_path') for x in ok if x.get('cpu_conv_path')})
    speed = r.get('cpu_conv_speedup_vs_default')
    line = (f'CPU convolutions ran on the {" and ".join(paths) or "unknown"} path '
            f'({r.get("cpu_conv_reason") or "XLA_FLAGS as set"}).')
    if speed is not None:
      line += (f' Measured on this machine, Eigen runs the seed step at {speed:.2f}x the '
               'speed of jax\'s out-of-the-box YNNPACK path.')
    elif 'eigen' in paths:
      line += (' This machine has no side-by-side measurement yet: run '
               '`python run.py --config=experiments/backends.py` for one.')
    notes.append(line)
  elif plat == 'gpu':
    level = r.get('xla_gpu_autotune_level')
    notes.append(
        f'GPU: matmul/conv precision `{r.get("precision")}` (jax `default` lets XLA use '
        'TF32 for float32 on Ampere and newer; `highest` forces full float32), compute dtype '
        f'`{r.get("dtype")}`, XLA autotune level '
        f'{level if level is not None else "default (XLA_FLAGS does not set it)"}. '
        'Autotuning tries several cuDNN algorithms per convolution at compile time, so '
        'compile time grows with the number and size of convolutions; see the compile-time fit.')
  elif plat == 'tpu':
    notes.append(
        'TPU: float32 matmuls and convolutions at `default` precision run as bfloat16 '
        'passes on the MXU (use precision=highest for full float32). The MXU works on '
        '128-wide tiles, so the seed network\'s small channel counts (1 input channel, 32 '
        'and 64 filters) are padded to 128: much of the hardware idles, and the FLOPs XLA '
        'reports for the padded shapes exceed the useful work.')
  return notes
