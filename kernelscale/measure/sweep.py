"""The sweep: for every point, build, compile, time, analyse, append a record.

`validate(config)` (measure.points) checks every field and every point's shapes
before anything compiles; `run(config, workdir)` then measures point by point and
appends each record to `<workdir>/results.jsonl` as soon as the point finishes.
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform as _platform
import time
import traceback
from typing import Callable

import jax
import jaxlib

from kernelscale import records
from kernelscale.data import source
from kernelscale.measure import (ceilings, collectives, distributed, hlo_labels, host, memguard,
                                 profiling, summaries, timing, training)
from kernelscale.measure import resume as runstate
from kernelscale.net import flops, models, shapes, train


# The points and their checks live in measure.points; the sweep's callers use them from here.
from kernelscale.measure.points import (  # pylint: disable=g-bad-import-order
    ConfigError, Point, _input_hw_c, validate)


def check_workdir(workdir: str, resume: bool = False, config=None) -> str:
  """Creates the workdir, proves it writable and locks it, before any measurement.

  Raises:
    ConfigError: naming --workdir when it cannot be created or written, when
      another run holds its lock, or when it already holds a run's
      results.jsonl (appending a second run would mix two runs in one
      analysis) unless `resume`; with `resume`, naming the config field that
      differs from the run's there.
  """
  path = os.path.join(workdir, 'results.jsonl')
  if os.path.exists(path) and not resume:
    raise ConfigError(f'--workdir: {workdir!r} already holds a results.jsonl; give a new '
                      'folder, use --resume to continue its sweep, or --report_only to rebuild '
                      'the report from it')
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f'.write_test.{os.getpid()}')  # processes of one run share W
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise ConfigError(f'--workdir: cannot write to {workdir!r}: {e.strerror or e}') from None
  if not distributed.is_writer():
    return workdir  # process 0 alone locks and writes the workdir
  try:
    runstate.acquire_lock(workdir)
    if resume:
      if config is not None:
        runstate.check_same_config(workdir, config)
      if os.path.exists(path):
        records.load(path)  # a file --resume cannot continue is refused now, not mid-sweep
  except ValueError as e:
    raise ConfigError(str(e)) from None
  return workdir


def context() -> dict:
  """Where the measurement ran: device, versions and the XLA flags in force."""
  dev = jax.devices()[0]
  return {'platform': dev.platform, 'device_kind': dev.device_kind,
          'device_count': jax.device_count(), 'jax_version': jax.__version__,
          'jaxlib_version': jaxlib.__version__,
          'xla_flags': os.environ.get('XLA_FLAGS', ''),
          'cpu_conv_path': (host.conv_path(os.environ.get('XLA_FLAGS', ''))
                            if dev.platform == 'cpu' else None),
          'malloc_mode': host.malloc_mode(),
          'xla_gpu_autotune_level': _flag_value('--xla_gpu_autotune_level'),
          'host': _platform.node(), 'cpu_count': os.cpu_count(),
          # The report's page-fault figures need the measuring machine's page size.
          'page_bytes': host.page_size()}


def _flag_value(name: str) -> int | None:
  """An integer XLA flag from XLA_FLAGS; None when unset (XLA's default applies)."""
  for f in os.environ.get('XLA_FLAGS', '').split():
    if f.startswith(name + '='):
      try:
        return int(f.split('=', 1)[1])
      except ValueError:
        return None
  return None


def measure_point(pt: Point, config, workdir: str | None = None,
                  dset: source.Dataset | None = None) -> dict:
  """Compiles and times one point; returns its record fields (no context).

  With `config.profile` and a workdir, a window of `config.profile_steps`
  steps is then traced to <workdir>/tensorboard/<point name>/. `dset` is the
  loaded TFDS dataset when config.data is not synthetic (run() loads it once).
  """
  notes: list[str] = []
  spec = source.spec(config)
  hw, c = _input_hw_c(spec)
  ncls = spec.num_classes
  module = models.build(pt.model, pt.kernel_size, pt.padding, pt.dtype, hw, c,
                        conv_algo=config.get('conv_algo', 'xla')).clone(num_classes=ncls)
  if pt.features:
    module = module.clone(features=tuple(pt.features))
  features = module.features
  per_layer = flops.layer_flops(features, pt.kernel_size, pt.padding, pt.batch_size, hw, c,
                                num_classes=ncls, block=module.block)
  # The input's side and channels: the analysis derives conv shapes from them (claims.py).
  rec: dict = {'conv_algos': models.layer_algos(module), 'input_hw': hw, 'input_channels': c}
  rec.update(flops.summarize(per_layer))
  rec['params'] = flops.param_count(features, pt.kernel_size, pt.padding, hw, c,
                                    num_classes=ncls, block=module.block)
  memguard.check_params(rec['params'])  # before the state is allocated
  # The analytic parameter count is cross-checked against the real model's.
  state = train.create_state(module, config.learning_rate,
                             jax.random.PRNGKey(config.seed), spec.image_shape)
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
  if n_params != rec['params']:
    notes.append(f'analytic params {rec["params"]} != model params {n_params}')
    rec['params'] = int(n_params)
  if config.data == 'synthetic':
    batch = source.synthetic_batch(pt.batch_size, config.seed)
  else:
    # The step's time does not depend on pixel values, but a real batch is what users expect.
    batch = source.first_batch(dset if dset is not None else source.load(config), pt.batch_size,
                             config.seed)
  rec.update(n_devices=pt.n_devices, batch_scaling=pt.batch_scaling, global_batch=pt.batch_size,
             per_device_batch=pt.batch_size // pt.n_devices,
             grad_bytes=int(sum(x.size * x.dtype.itemsize
                                for x in jax.tree_util.tree_leaves(state.params))))
  if pt.n_devices > 1 or jax.process_count() > 1:
    # Data parallel: the batch split on the mesh's 'data' axis, the state replicated.
    state, batch = train.shard_for_data_parallel(train.make_mesh(pt.n_devices), state, batch)

  # Precision is fixed at lowering time: it becomes an attribute of each
  # conv/dot in the HLO.
  with jax.default_matmul_precision(None if config.precision == 'default' else config.precision):
    comp = timing.compile_aot(train.train_step, (state, batch))
  compiled = comp['compiled']
  rec.update({k: comp[k] for k in ('lower_s', 'compile_s', 'monitor_compile_s')})
  if comp['monitor_compile_s'] is None:
    notes.append('jax.monitoring reported no backend compile for train_step')
  cost, n1 = timing.cost_analysis(compiled)
  mem, n2 = timing.memory_analysis(compiled)
  rec.update(cost)
  rec.update(mem)
  notes += n1 + n2
  memguard.check_compiled(rec)  # before the first step runs
  rec.update(collectives.collectives(compiled.as_text()))

  # On CPU, other processes compete with the step itself: measure how much they took.
  with (timing.other_cpu_load() if jax.default_backend() == 'cpu'
        else contextlib.nullcontext({'other_cpu_share': None})) as load:
    state, metrics, first, times, faults = timing.run_steps(
        compiled, state, batch, config.warmup_steps, config.timed_steps)
  rec['other_cpu_share'] = load['other_cpu_share']
  rec['first_step_s'] = first
  rec['minor_faults_per_step'] = faults
  rec.update(timing.step_stats(times))
  if jax.process_count() > 1:  # a synchronous step is as slow as its slowest process
    rec.update(distributed.slowest_process(rec))
  rec['final_loss'] = float(metrics['loss'])
  # The optimizer update timed alone, so its share of the step is measurable
  # without profiler traces.
  rec.update(timing.time_optimizer_update(state))
  med = rec['step_s_median']
  rec['achieved_flops_per_s'] = (rec['xla_flops'] / med) if rec['xla_flops'] else None
  if rec['xla_flops'] is None:
    notes.append('achieved_flops_per_s is null: no xla_flops')
  rec['steps_per_epoch'] = config.train_examples // pt.batch_size
  rec['epoch_s'] = rec['steps_per_epoch'] * med
  rec['epoch_s_kind'] = 'projected'
  rec['analytic_phase_flops'] = per_layer
  if not (config.get('profile', False) and workdir):
    # Which implementation ran each convolution, from the optimized HLO (the
    # profile computes it too): the analysis sets apart XLA's unoptimized loop.
    try:
      rec['conv_impl'] = hlo_labels.conv_impl_of(compiled.as_text(), jax.default_backend()) or None
    except Exception as e:  # pylint: disable=broad-except  (a timed point must not be lost)
      rec['conv_impl'] = None
      notes.append(f'conv_impl is null: reading the optimized HLO failed ({type(e).__name__}: {e})')
  else:
    try:
      state, prof, n3 = profiling.profile_point(
          compiled, state, batch, compiled.as_text(), jax.default_backend(),
          config.profile_steps,
          os.path.join(workdir, 'tensorboard', distributed.trace_subdir(), pt.name), workdir, med)
    except OSError as e:  # a trace that cannot be written (disk full) keeps the timed point
      prof, n3 = {}, [f'profile not written: {type(e).__name__}: {e}']
    rec.update(prof)
    notes += n3
    if config.get('conv_alone', False) and rec.get('phase_s') and module.block == 'plain' \
        and not shapes.substituted(rec['conv_algos'].values()):
      # Each conv phase timed alone, to cross-check its profiled time (analysis/profile.py).
      rec.update(ceilings.conv_alone_fields(features, pt.kernel_size, pt.padding,
                                            pt.batch_size, hw, c, models.DTYPES[pt.dtype]))
  rec['notes'] = notes
  return rec


def run(config, workdir: str, log: Callable[[str], None] = print,
        extra_context: dict | None = None,
        on_record: Callable[[int, int, dict], None] | None = None,
        resume_run: bool = False) -> list[dict]:
  """Measures every point of the sweep, appending each record as it finishes.

  Args:
    config: an experiment config (see experiments/seed.py).
    workdir: output folder; results.jsonl is appended to there.
    log: where progress lines go.
    extra_context: fields added to every record (run.py passes the CPU conv
      decision made before jax initialised).
    on_record: called with (i, n, record) after each point is appended (run.py
      prints report.terminal's progress line).
    resume_run: measure only the points not yet ok in workdir (--resume).

  Returns:
    The records written by this run, in order; with resume_run, every record
    of the workdir's run (records.load's view).

  Raises:
    records.WriteError: when a record cannot be written (disk full); the file
      keeps its earlier records whole.
  """
  pts = validate(config)
  check_workdir(workdir, resume_run, config)
  run_id, done = runstate.begin(workdir, config, resume_run, write=distributed.is_writer())
  if done:
    log(f'resuming run {run_id}: {sum(pt.name in done for pt in pts)} of {len(pts)} points '
        'already ok are kept')
  pts = [pt for pt in pts if pt.name not in done]
  # Compile time must be the real compile, not a cache hit.
  jax.config.update('jax_enable_compilation_cache', False)
  ctx = context()
  ctx.update(extra_context or {})
  ctx.update(distributed.process_fields())
  path = os.path.join(workdir, 'results.jsonl')
  out = []
  log(f'{len(pts)} points on {ctx["platform"]} ({ctx["device_kind"]}); '
      f'results -> {path}')
  # A real dataset is loaded (decoded or from its cache) once for all points.
  dset = None if config.data == 'synthetic' else source.load(config, log)
  measure_fn = functools.partial(measure_point, workdir=workdir, dset=dset)
  if config.get('epochs', 0):
    measure_fn = functools.partial(training.train_point, dset=dset)
  for i, pt in enumerate(pts, 1):
    t0 = time.perf_counter()
    rec = {'experiment': config.name, 'point': pt.name, 'model': pt.model,
           'block': shapes.block_of(pt.model), 'kernel_size': pt.kernel_size, 'padding': pt.padding,
           'batch_size': pt.batch_size, 'dtype': pt.dtype, 'precision': config.precision,
           'conv_algo': config.get('conv_algo', 'xla'),
           'features': ','.join(map(str, pt.features)) if pt.features else None,
           'repeat': pt.repeat,
           'warmup_steps': config.warmup_steps, 'seed': config.seed, 'run_id': run_id}
    rec.update(ctx)
    try:
      rec.update(measure_fn(pt, config))
      rec['status'], rec['error'] = 'ok', None
    except memguard.DoesNotFit as e:  # recorded with its figures; the sweep goes on
      rec.update(e.fields)
      rec['status'], rec['error'] = 'skipped', f'does not fit in memory: {e}'
    except Exception as e:  # pylint: disable=broad-except
      # One failed point (e.g. out of memory) must not lose the others.
      rec['status'] = 'failed'
      rec['error'] = f'{type(e).__name__}: {e}'
      rec.setdefault('notes', []).append(traceback.format_exc(limit=3))
    rec['point_wall_s'] = time.perf_counter() - t0
    if distributed.is_writer():  # every process measures; process 0 writes
      records.append(path, rec)
      for note in summaries.write_point(workdir, rec):  # TensorBoard's Scalars and HParams tabs
        log(note)
    out.append(rec)
    if on_record is not None:
      on_record(i, len(pts), rec)
  return records.load(path) if resume_run else out
