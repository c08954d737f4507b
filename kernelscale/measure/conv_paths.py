"""Side-by-side comparison of the CPU conv paths, each in its own process.

XLA_FLAGS is read once per process, so each path runs as a child
`run.py --config=experiments/seed.py --config.cpu_conv=<path>`; the paths
alternate round by round so that drifting machine load hits both alike. The
children's records are merged into the parent's results.jsonl, and the
measured speed ratio is cached so that `cpu_conv=auto` follows it.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from typing import Callable

import numpy as np

from kernelscale import records
from kernelscale.measure import host, sweep


_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Fields of the comparison config that are not fields of the child experiment.
_OWN_FIELDS = ('compare_cpu_conv', 'rounds', 'child_config', 'cache_decision')


def _override(key: str, value) -> str:
  if isinstance(value, (list, tuple)):
    value = ','.join(str(v) for v in value)
  return f'--config.{key}={value}'


def child_command(config, path: str, workdir: str) -> list[str]:
  """The run.py command line that measures one conv path."""
  args = [sys.executable, os.path.join(_ROOT, 'run.py'),
          f'--config={os.path.join(_ROOT, config.child_config)}', f'--workdir={workdir}']
  for key, value in config.items():
    if key in _OWN_FIELDS or key == 'cpu_conv' or value is None:
      continue
    args.append(_override(key, value))
  args.append(f'--config.cpu_conv={path}')
  return args


def check(config) -> None:
  """Checks an experiments/backends.py config before any child starts.

  Raises:
    sweep.ConfigError: naming the field; shapes.ShapeError for a kernel that does not fit.
  """
  for path in config.compare_cpu_conv:
    if path not in host.CPU_CONV_CHOICES[1:]:
      raise sweep.ConfigError(f'config.compare_cpu_conv: unknown path {path!r}; use ynnpack '
                              'and/or eigen')
  if config.cpu_conv != 'auto':
    raise sweep.ConfigError(f'config.cpu_conv: {config.cpu_conv!r} has no effect here: this '
                            'experiment runs each path of config.compare_cpu_conv in turn')
  pts = sweep.validate(config)  # the children's fields
  if len({pt.model for pt in pts}) > 1:
    raise sweep.ConfigError(
        f'config.model: {config.model!r}: this experiment compares conv paths on one network '
        '(its speed-up, cached for cpu_conv=auto, is a median over points); give one model')


def compare(config, workdir: str, log: Callable[[str], None] = print) -> list[dict]:
  """Runs each path of config.compare_cpu_conv for config.rounds alternating rounds.

  Returns:
    All child records (each with `cpu_conv_path` and `round`), also appended
    to <workdir>/results.jsonl.

  Raises:
    RuntimeError: when a child run fails; its last error line is included.
  """
  out_path = os.path.join(workdir, 'results.jsonl')
  merged = []
  for r in range(config.rounds):
    for path in config.compare_cpu_conv:
      child_wd = os.path.join(workdir, f'{path}-round{r}')
      log(f'round {r + 1}/{config.rounds}: cpu_conv={path} -> {child_wd}')
      env = dict(os.environ)
      env.pop('XLA_FLAGS', None)  # the child sets the conv flag itself
      p = subprocess.run(child_command(config, path, child_wd), env=env, text=True,
                         capture_output=True, check=False)
      if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ['(no output)'])[-1]
        raise RuntimeError(f'cpu_conv={path} run failed (exit {p.returncode}): {last}')
      for rec in records.load(os.path.join(child_wd, 'results.jsonl')):
        rec['round'] = r
        records.append(out_path, rec)
        merged.append(rec)
  return merged


def speed_table(recs: list[dict]) -> tuple[list[dict], float | None]:
  """Per (k, padding): median step per path over rounds, and ynnpack/eigen ratio.

  Returns:
    (rows, geometric-mean speed-up of eigen over ynnpack across points, or None).
  """
  by = {}
  for r in recs:
    if r.get('status') == 'ok':
      by.setdefault((r['padding'], r['kernel_size']), {}).setdefault(
          r['cpu_conv_path'], []).append(r['step_s_median'])
  rows, ratios = [], []
  for (pad, k), paths in sorted(by.items()):
    row = {'padding': pad, 'kernel_size': k}
    for path, ts in paths.items():
      row[f'{path}_step_s'] = float(np.median(ts))
    if 'ynnpack_step_s' in row and 'eigen_step_s' in row:
      row['speedup_eigen'] = row['ynnpack_step_s'] / row['eigen_step_s']
      ratios.append(row['speedup_eigen'])
    rows.append(row)
  geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if ratios else None
  return rows, geo


def run(config, workdir: str,
        log: Callable[[str], None] = print) -> tuple[list[dict], list[dict], float | None]:
  """compare(), then cpu_conv=auto's cached decision; returns (records, speed rows, geo mean)."""
  recs = compare(config, workdir, log)
  rows, geo = speed_table(recs)
  algo = config.conv_algo
  if (config.cache_decision and geo is not None
      and {'ynnpack', 'eigen'} <= set(config.compare_cpu_conv)):
    modes = {r.get('malloc_mode') for r in recs if r.get('status') == 'ok'}
    if algo == 'xla' and len(modes) == 1 and modes <= {'retain', 'system'}:
      mode = modes.pop()
      cache = host.record_measurement(geo, {'rows': rows, 'source': 'experiments/backends.py'},
                                        mode)
      log(f'cached the measured speed-up for cpu_conv=auto under malloc={mode} in {cache}')
    elif algo == 'xla':
      log(f'not cached: the runs report malloc modes {sorted(map(str, modes))}; cpu_conv=auto '
          'follows a measurement taken under one known mode')
    else:
      # cpu_conv=auto's cache is the choice for nn.Conv's convolutions.
      log(f'not cached: measured with conv_algo={algo}; cpu_conv=auto follows a '
          'conv_algo=xla measurement')
  return recs, rows, geo
