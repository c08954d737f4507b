"""Micro-benchmarks measured apart from the train step.

Device ceilings (for the roofline): float32 matmul FLOP/s at a size that fills
the device, bfloat16 matmul FLOP/s (measured and recorded even where it is
emulated and slow), and memory bandwidth from a large element-wise copy,
counting the bytes read plus the bytes written. They are measured once per
device and cached in `<workdir>/ceilings.json`, keyed by `device_key()`.

`conv_phases_alone` times each conv layer's forward and gradient convolutions
alone (benchmarks/step_vs_ceiling.py): how fast this XLA's own conv kernels run on
the network's shapes, against which the whole step can be read; with `traced`,
also under the profiler, so that a traced step's phases can be compared like
for like (`conv_alone_fields`, the sweep's record fields).

Nothing here is imported by the analysis; the analysis reads the files only.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from kernelscale import records
from kernelscale.measure import timing
from kernelscale.net import convs, shapes


# Matmul side and copy length per platform: large enough to leave the caches
# and keep every core busy, small enough that each repeat takes well under a
# second on that platform.
MATMUL_N = {'cpu': 1024, 'gpu': 8192, 'tpu': 8192}
COPY_ELEMENTS = {'cpu': 32 * 2**20, 'gpu': 256 * 2**20, 'tpu': 256 * 2**20}
# A bf16 matmul slower than this per call is not repeated further (CPUs may
# emulate bf16); its single timing is still recorded.
SLOW_CALL_S = 1.0
# conv_phases_alone: calls of each program before it is timed, and turns over the programs.
CONV_WARM_CALLS = 3
CONV_PASSES = 3


def _time_calls(fn, args, repeats: int, budget_s: float) -> list[float]:
  """Seconds per blocked call of an already compiled fn; stops early past budget_s."""
  jax.block_until_ready(fn(*args))  # warm (first run may touch fresh pages)
  times = timing.time_calls(lambda: jax.block_until_ready(fn(*args)), repeats, budget_s)
  return times


def matmul_flops_per_s(n: int, dtype, repeats: int = 30, budget_s: float = 1.0) -> dict:
  """Best FLOP/s of an n×n @ n×n matmul (2·n³ FLOPs per call).

  Returns:
    {'flops_per_s', 'median_flops_per_s', 'n', 'calls', 'dtype'}.
  """
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32).astype(dtype)
  f = jax.jit(jnp.matmul).lower(a, b).compile()
  t0 = time.perf_counter()
  jax.block_until_ready(f(a, b))
  first = time.perf_counter() - t0
  if first > SLOW_CALL_S:
    times = [first]
  else:
    times = _time_calls(f, (a, b), repeats, budget_s)
  work = 2.0 * n ** 3
  # The ceiling is the best the device showed (other processes only ever slow
  # a call down); the median says how steady it was.
  return {'flops_per_s': work / min(times), 'median_flops_per_s': work / float(np.median(times)),
          'n': n, 'calls': len(times), 'dtype': jnp.dtype(dtype).name}


def copy_bytes_per_s(n: int, repeats: int = 30, budget_s: float = 1.0) -> dict:
  """Best bytes/s of x = x + 1 over n float32 elements (reads n·4, writes n·4 bytes).

  `+ 1` rather than a bare copy because XLA may elide an identity. The input is
  donated and the result rebound, so XLA writes in place: a fresh output buffer
  each call would time the page faults of a new allocation (about 10x slower on
  CPU), not memory bandwidth.
  """
  x = jnp.zeros((n,), jnp.float32)
  f = jax.jit(lambda v: v + 1.0, donate_argnums=(0,)).lower(x).compile()
  buf = [jax.block_until_ready(f(x))]  # warm; x is donated, so each call rebinds it

  def call():
    buf[0] = jax.block_until_ready(f(buf[0]))
  times = timing.time_calls(call, repeats, budget_s)
  moved = 2.0 * 4 * n
  return {'bytes_per_s': moved / min(times), 'median_bytes_per_s': moved / float(np.median(times)),
          'elements': n, 'bytes_per_call': moved, 'calls': len(times)}


def measure_ceilings() -> dict:
  """Measures this device's ceilings (a few seconds on a 2-core CPU).

  Returns:
    A flat dict: ceiling_flops_per_s (float32 matmul), ceiling_bf16_flops_per_s
    (None with a note when it could not be measured), ceiling_bytes_per_s, the
    sizes used, the method, and the device's identity.
  """
  dev = jax.devices()[0]
  plat = dev.platform
  n = MATMUL_N.get(plat, 4096)
  m = COPY_ELEMENTS.get(plat, 64 * 2**20)
  notes = []
  f32 = matmul_flops_per_s(n, jnp.float32)
  try:
    # bf16 on CPU may be emulated: a smaller size keeps it to about a second.
    bf = matmul_flops_per_s(n if plat != 'cpu' else n // 2, jnp.bfloat16)
    bf_flops, bf_n = bf['flops_per_s'], bf['n']
    if plat == 'cpu':
      notes.append('bf16 matmul on CPU may be emulated; it is recorded, the roofline uses float32')
  except Exception as e:  # pylint: disable=broad-except
    bf_flops, bf_n = None, None
    notes.append(f'bf16 matmul failed: {type(e).__name__}: {e}')
  cp = copy_bytes_per_s(m)
  return {
      'device_key': records.device_key(plat, dev.device_kind), 'platform': plat,
      'device_kind': dev.device_kind, 'jax_version': jax.__version__,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'ceiling_flops_per_s': f32['flops_per_s'],
      'ceiling_flops_per_s_median': f32['median_flops_per_s'],
      'matmul_n': n, 'matmul_calls': f32['calls'],
      'ceiling_bf16_flops_per_s': bf_flops, 'bf16_matmul_n': bf_n,
      'ceiling_bytes_per_s': cp['bytes_per_s'],
      'ceiling_bytes_per_s_median': cp['median_bytes_per_s'],
      'copy_elements': m, 'copy_bytes_per_call': cp['bytes_per_call'], 'copy_calls': cp['calls'],
      'method': (f'best of up to 30 blocked calls (1 s budget each) after one warm call: jnp.matmul {n}x{n} '
                 f'@ {n}x{n} (2*n^3 FLOPs); x = x + 1 (donated, in place) over {m} float32 elements '
                 '(bytes read + bytes written)'),
      'measured_at': time.strftime('%Y-%m-%dT%H:%M:%S'),
      'notes': notes,
  }


def load_or_measure(workdir: str) -> dict:
  """This device's ceilings: from the workdir's cache, else measured and cached.

  Returns:
    The entry for the current device (see measure_ceilings).
  """
  dev = jax.devices()[0]
  key = records.device_key(dev.platform, dev.device_kind)
  cache = records.load_ceilings(workdir)
  if key in cache:
    return cache[key]
  cache[key] = measure_ceilings()
  path = os.path.join(workdir, records.CEILINGS_FILE)
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    json.dump(cache, f, indent=1)
  os.replace(path + '.tmp', path)
  return cache[key]


def _conv_passes(progs, repeats: int, budget_s: float) -> list[list[float]]:
  """Seconds of each call of each (fn, args), timed in CONV_PASSES turns over the programs.

  Each program gets about repeats / CONV_PASSES calls (and budget_s / CONV_PASSES
  seconds) per turn, so that a burst of other load, or a slow stretch, falls on
  a few calls of several programs rather than on most calls of one.
  """
  per = -(-repeats // CONV_PASSES)
  out: list[list[float]] = [[] for _ in progs]
  for _ in range(CONV_PASSES):
    for i, (fn, args) in enumerate(progs):
      out[i] += timing.time_calls(lambda f=fn, a=args: jax.block_until_ready(f(*a)), per,
                                  budget_s / CONV_PASSES)
  return out


def _traced_passes(progs, repeats: int, budget_s: float) -> list[list[float]] | None:
  """`_conv_passes` run under the profiler, with the step trace's options; None if it cannot start.

  The trace goes to a temporary folder, deleted afterwards: only the calls' wall time is kept.
  """
  from kernelscale.measure import profiling  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as d:
    try:
      jax.profiler.start_trace(d, profiler_options=profiling.profile_options())
    except Exception:  # pylint: disable=broad-except  (another session active, no profiler)
      return None
    try:
      return _conv_passes(progs, repeats, budget_s)
    finally:
      jax.profiler.stop_trace()


def conv_phases_alone(features, kernel_size: int, padding: str, batch_size: int,
                      input_hw: int = 28, channels: int = 1, dtype=jnp.float32,
                      repeats: int = 15, budget_s: float = 2.0, traced: bool = False) -> list[dict]:
  """Each conv layer's convolutions, as nn.Conv's train step runs them, timed alone.

  Per layer (shapes.conv_layers' shapes): `forward` (lax.conv, nn.Conv's
  NHWC/HWIO form), `backward_input` (its input gradient; not for the first
  layer, whose input is the data, as in flops.py) and `backward_filter` (its
  kernel gradient), each from jax.vjp, each compiled alone with the process's
  XLA flags (so on the same CPU conv path as the step). Each is called
  CONV_WARM_CALLS times, then timed as the median of up to `repeats` blocked
  calls (within `budget_s` each), in CONV_PASSES turns over the phases.

  With `traced`, each is timed again the same way under the profiler (the
  step trace's options): the profiler slows some convolutions far more than
  others (those Eigen splits into many short pool tasks), so a traced step's
  phase is compared like for like against `traced_seconds`.

  Returns:
    One dict per (layer, phase): layer, phase, seconds (median), traced_seconds
    (median under the profiler; None without `traced` or when the profiler
    could not start), xla_flops (XLA's cost analysis of that program alone;
    None where it has none), shape (B, H, W, C_in, C_out) and output_shape (what
    the phase computes: the layer's output, its input's gradient or its kernel's gradient).
  """
  conv = lambda x, w: convs.xla_conv(x, w, padding)  # noqa: E731
  phases = {
      'forward': lambda x, w, g: conv(x, w),
      'backward_input': lambda x, w, g: jax.vjp(lambda x_: conv(x_, w), x)[1](g)[0],
      'backward_filter': lambda x, w, g: jax.vjp(lambda w_: conv(x, w_), w)[1](g)[0],
  }
  out, progs = [], []
  layers = shapes.conv_layers(features, kernel_size, padding, input_hw, channels)
  for i, layer in enumerate(layers):
    keys = jax.random.split(jax.random.PRNGKey(i), 3)
    x = jax.random.normal(keys[0], (batch_size, layer.in_hw, layer.in_hw, layer.c_in), dtype)
    w = jax.random.normal(keys[1], (kernel_size, kernel_size, layer.c_in, layer.c_out), dtype)
    g = jax.random.normal(keys[2], (batch_size, layer.out_hw, layer.out_hw, layer.c_out), dtype)
    for phase, fn in phases.items():
      if phase == 'backward_input' and i == 0:
        continue
      compiled = jax.jit(fn).lower(x, w, g).compile()
      progs.append((compiled, (x, w, g)))
      out.append({'layer': layer.name, 'phase': phase,
                  'xla_flops': timing.cost_analysis(compiled)[0]['xla_flops'],
                  'shape': (batch_size, layer.in_hw, layer.in_hw, layer.c_in, layer.c_out),
                  'output_shape': tuple(jax.eval_shape(fn, x, w, g).shape)})
  # The first calls after compiling can run slower: up to 2x over the first
  # few calls on the 2-core VMs, mostly with one core idle.
  for fn, args in progs:
    for _ in range(CONV_WARM_CALLS):
      jax.block_until_ready(fn(*args))
  times = _conv_passes(progs, repeats, budget_s)
  traced_times = _traced_passes(progs, repeats, budget_s) if traced else None
  for j, d in enumerate(out):
    d['seconds'] = float(np.median(times[j]))
    d['traced_seconds'] = float(np.median(traced_times[j])) if traced_times else None
  return out


def conv_alone_fields(features, kernel_size: int, padding: str, batch_size: int, input_hw: int,
                      channels: int, dtype, budget_s: float = 0.5) -> dict:
  """The record fields of `conv_phases_alone` (traced too), keyed like a record's phase_s.

  The sweep records them beside a profiled point, so that each conv phase's
  profiled time can be checked against it (analysis/profile.py).

  Returns:
    {'conv_alone_s': {'conv2/backward_input': s, ...}, 'conv_alone_traced_s':
    the same under the profiler (None when it could not start),
    'conv_alone_other_cpu_share': the share of the CPUs other processes took
    while they were timed (timing.other_cpu_load; None where unknown)}.
  """
  with timing.other_cpu_load() as load:
    got = conv_phases_alone(features, kernel_size, padding, batch_size, input_hw, channels,
                            dtype, budget_s=budget_s, traced=True)
  traced = {f'{d["layer"]}/{d["phase"]}': d['traced_seconds'] for d in got}
  return {'conv_alone_s': {f'{d["layer"]}/{d["phase"]}': d['seconds'] for d in got},
          'conv_alone_traced_s': traced if None not in traced.values() else None,
          'conv_alone_other_cpu_share': load['other_cpu_share']}
