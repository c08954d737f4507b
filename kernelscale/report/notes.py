"""Sentences report.md must say about the machine and backend the records ran on.

The CPU conv path and its measured speed, convolutions XLA:CPU ran as its own
unoptimized loop, what host malloc did, other load while the steps were
timed; GPU precision and autotuning; TPU's bfloat16 passes and channel padding.
Everything comes from the records (measure.host wrote the machine's facts into
them), so a report can be rebuilt anywhere.
"""
from __future__ import annotations

import re
import statistics

from kernelscale import records
from kernelscale.analysis import claims
from kernelscale.report import devices

# glibc's largest mmap threshold on 64-bit: blocks above it are mapped afresh per malloc.
GLIBC_MMAP_THRESHOLD_MAX = 32 * 2**20


def _unoptimized_convs(ok: list[dict]) -> str | None:
  """The convolutions XLA:CPU ran as its own unoptimized loop instead of Eigen, with their profiled rate."""
  def rate(r, label):
    t = (r.get('phase_s') or {}).get(label)
    f = (r.get('analytic_phase_flops') or {}).get(label)
    return f / t if t and f else None

  items = []
  for r in ok:
    impls = r.get('conv_impl') or {}
    slow = records.unoptimized_convs(r)
    fast = [x for x in (rate(r, l) for l in impls if l not in slow) if x]
    for label in slow:
      impl = impls[label]
      m = re.search(re.escape(records.UNOPTIMIZED_CPU_CONV) + r' \(([^)]*)\)', impl)
      why = (m.group(1) if m else 'no reason given') + (
          '; other convolutions share this phase' if ' + ' in impl else '')
      got = rate(r, label)
      speed = ''
      if got:
        speed = f'; {got / 1e9:.1f} GFLOP/s in the profile'
        if fast:
          speed += (f', against {statistics.median(fast) / 1e9:.1f} GFLOP/s for the step\'s '
                    'other convolutions (median)')
      items.append(f'{records.point_label(r)} {label} ({why}{speed})')
  if not items:
    return None
  return ('XLA:CPU did not hand every convolution to a conv library (Eigen or YNNPACK); it ran '
          f'{"these" if len(items) > 1 else "this one"} as its own unoptimized loop: '
          f'{"; ".join(items)}. XLA rewrites a gradient convolution into this form when, for '
          'example, the kernel is larger than the layer\'s output (VALID padding); '
          '`conv_algo=auto` computes such layers another way. Scaling fits says how the '
          'predictions treat these points.')


def _malloc_note(ok: list[dict]) -> str:
  """What host malloc did to the CPU steps: the mode and the page faults it left."""
  mode = ok[0].get('malloc_mode')
  faults = sorted(r['minor_faults_per_step'] for r in ok
                  if r.get('minor_faults_per_step') is not None)
  temp = [r['temp_bytes'] for r in ok if r.get('temp_bytes')]
  if mode == 'retain':
    line = ('Host memory: glibc kept freed memory for reuse (mallopt: one arena, no mmap per '
            f'block, no trim; config.malloc={ok[0].get("malloc") or "retain"}).')
  elif mode == 'system':
    line = ('Host memory: the C library\'s default malloc '
            f'({ok[0].get("malloc_reason") or "config.malloc=system"}).')
    if temp and max(temp) > GLIBC_MMAP_THRESHOLD_MAX:
      line += (' Under glibc, a block above its mmap threshold (at most 32 MiB) is mapped afresh '
               'and unmapped on free, so a scratch buffer that large is faulted in again every '
               'step; config.malloc=retain keeps it.')
  else:
    return 'Host memory: these records predate config.malloc; how malloc ran is unknown.'
  if faults:
    lo, hi = faults[0], faults[-1]
    span = f'{lo:,.0f}' if round(lo) == round(hi) else f'{lo:,.0f}-{hi:,.0f}'
    line += f' Timed steps averaged {span} minor page faults per step (whole process)'
    if temp:
      lo_t, hi_t = f'{min(temp) / 2**20:.0f}', f'{max(temp) / 2**20:.0f}'
      page = ok[0].get('page_bytes')
      line += f'; XLA\'s scratch buffer per step was {lo_t if lo_t == hi_t else lo_t + "-" + hi_t} MiB'
      if page:  # the measuring machine's page size (records before it was recorded: unknown)
        line += f' (up to {max(temp) / page:,.0f} pages of {page // 1024} KiB)'
    line += '.'
  speed = ok[0].get('malloc_speedup_vs_default')
  if speed is not None:
    line += (f' Measured on this machine (benchmarks/malloc.py, seed net, batch 128, k=3-11, '
             f'{ok[0].get("malloc_measured_when") or "date unknown"}), the train step ran a '
             f'median {speed:.2f}x as fast with memory kept as under glibc\'s defaults.')
  else:
    line += (' This machine has no side-by-side measurement yet: `python benchmarks/malloc.py` '
             'times both modes in alternating processes.')
  return line


def _load_note(ok: list[dict]) -> str | None:
  """What other processes took of the CPU while the steps were timed; None when not measured."""
  got = [(r, r['other_cpu_share']) for r in ok if r.get('other_cpu_share') is not None]
  if not got:
    return None
  missing = len(ok) - len(got)
  unmeasured = (f' Not measured at {missing} of the {len(ok)} points (window too short for '
                '/proc/stat\'s counters, or no /proc/stat).' if missing else '')
  hot = [(r, s) for r, s in got if s >= claims.CONTENDED_SHARE]
  if not hot:
    return (f'Other load: while the steps of the {len(got)} measured points were timed, other '
            f'processes took at most {max(s for _, s in got):.1%} of the CPUs this program ran on '
            f'(/proc/stat; below the {claims.CONTENDED_SHARE:.0%} this report flags), so those step times '
            'are this program\'s own.' + unmeasured)
  pts = ', '.join(f'{records.point_label(r)} ({s:.0%})' for r, s in hot)
  return (f'**Other load may have inflated some step times.** While their steps were timed, other '
          f'processes (or the hypervisor, as steal time) took {claims.CONTENDED_SHARE:.0%} or more of '
          f'the CPUs this program ran on at {len(hot)} of {len(got)} measured points: {pts}. Those '
          'step times, and the fits and verdicts that use them, can overstate what this program '
          'needs: rerun on a quiet machine (`top` shows what else runs).' + unmeasured)


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
    slow = _unoptimized_convs(ok)
    if slow:
      notes.append(slow)
    notes.append(_malloc_note(ok))
    load = _load_note(ok)
    if load:
      notes.append(load)
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
    notes += [n for n in [devices.mxu_padding_note(ok)] if n]  # counted per k
  return notes
