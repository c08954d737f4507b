"""The sweep: for every point, build, compile, time, analyse, append a record.

`validate(config)` checks every field and every point's shapes before anything
compiles; `run(config, workdir)` then measures point by point and appends each
record to `<workdir>/results.jsonl` as soon as the point finishes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
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
from kernelscale.net import convs, flops, models, shapes, train


# Matmul/conv precision for f32 on GPU/TPU ('default' lets XLA pick, e.g. TF32
# on recent NVIDIA GPUs); passed to jax.default_matmul_precision.
PRECISIONS = ('default', 'tensorfloat32', 'highest')


class ConfigError(ValueError):
  """A bad config field; the message starts with the field's name."""


@dataclasses.dataclass(frozen=True)
class Point:
  """One configuration measured."""
  model: str
  kernel_size: int
  padding: str
  batch_size: int   # the global batch
  dtype: str
  n_devices: int = 1  # data-parallel devices (kernelscale/measure/distributed.py)
  batch_scaling: str = 'strong'
  features: tuple[int, ...] | None = None  # conv widths; None: the model's own
  repeat: int = 0                          # which re-timing of the point (config.repeats)

  @property
  def name(self) -> str:
    return (f'{self.model}-k{self.kernel_size}-{self.padding}-{self.dtype}-b{self.batch_size}'
            + ('' if (self.n_devices, self.batch_scaling) == (1, 'strong')
               else f'-d{self.n_devices}-{self.batch_scaling}')
            + (f'-f{"x".join(map(str, self.features))}' if self.features else '')
            + (f'-r{self.repeat}' if self.repeat else ''))


def parse_features(v) -> tuple:
  """config.features ('16,32;32,64' or None) as a tuple of width tuples, or (None,)."""
  if v is None or v == '':
    return (None,)
  try:
    out = tuple(tuple(int(x) for x in part.split(',') if x.strip())
                for part in str(v).split(';') if part.strip())
  except ValueError:
    out = ()
  if not out or any(not f or min(f) < 1 for f in out):
    raise ConfigError(f'config.features: {v!r} is not widths like "16,32;32,64" (one conv width '
                      'per layer, several sets separated by ";")')
  return out


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _as_tuple(v) -> tuple:
  items = tuple(v) if isinstance(v, (list, tuple)) else (v,)
  out = []
  for x in items:
    if isinstance(x, str):
      # --config.paddings=SAME,VALID arrives as one string 'SAME,VALID'.
      out += [p.strip() for p in x.split(',') if p.strip()]
    else:
      out.append(x)
  return tuple(out)


def validate_models(config) -> tuple[str, ...]:
  """config.model as a tuple of MODELS names (one name, or several separated by commas).

  Raises:
    ConfigError: naming config.model, for an empty, unknown or repeated name.
  """
  names = _as_tuple(config.model)
  if not names:
    raise ConfigError('config.model: empty; give a model name, or several separated by commas')
  for m in names:
    if m not in models.MODELS:
      raise ConfigError(f'config.model: unknown model {m!r}; use one of '
                        f'{tuple(models.MODELS)}')
  if len(set(names)) != len(names):
    raise ConfigError(f'config.model: a model is listed twice in {names}')
  return names


def validate(config) -> list[Point]:
  """Checks the config and returns the sweep's points.

  Raises:
    ConfigError: naming the field (e.g. 'config.kernel_sizes') and the problem.
    shapes.ShapeError: when a kernel does not fit a layer, before any compile.
  """
  ks = _as_tuple(config.kernel_sizes)
  if not ks:
    raise ConfigError('config.kernel_sizes: empty; give at least one kernel size')
  # '--config.kernel_sizes=3,x' arrives as strings ('3', 'x'): name the one that is no number.
  for k in sorted(ks, key=lambda k: isinstance(k, str) and k.strip().isdigit()):
    if not _is_int(k) or k < 1:
      raise ConfigError(f'config.kernel_sizes: {k!r} is not an integer >= 1')
  dup = sorted({k for k in ks if ks.count(k) > 1}, key=str)
  if dup:
    raise ConfigError(f'config.kernel_sizes: {dup[0]!r} is listed twice; each point is measured once')
  pads = _as_tuple(config.paddings)
  if not pads:
    raise ConfigError(f'config.paddings: empty; give one or more of {shapes.PADDINGS}')
  if len(set(pads)) != len(pads):
    raise ConfigError(f'config.paddings: a padding is listed twice in {pads}')
  for p in pads:
    if p not in shapes.PADDINGS:
      raise ConfigError(f'config.paddings: unknown padding {p!r}; use one of {shapes.PADDINGS}')
  if not _is_int(config.batch_size) or config.batch_size < 1:
    raise ConfigError(f'config.batch_size: {config.batch_size!r} is not an integer >= 1')
  if config.dtype not in models.DTYPES:
    raise ConfigError(f'config.dtype: unknown dtype {config.dtype!r}; use one of '
                      f'{tuple(models.DTYPES)}')
  names = validate_models(config)
  check_numbers(config)
  if not isinstance(config.learning_rate, (int, float)) or config.learning_rate <= 0:
    raise ConfigError(f'config.learning_rate: {config.learning_rate!r} is not a number > 0')
  if not _is_int(config.seed) or config.seed < 0:
    raise ConfigError(f'config.seed: {config.seed!r} is not an integer >= 0')
  for field, low in (('warmup_steps', 0), ('timed_steps', 1), ('train_examples', 1)):
    v = config[field]
    if not _is_int(v) or v < low:
      raise ConfigError(f'config.{field}: {v!r} is not an integer >= {low}')
  if config.get('conv_algo', 'xla') not in convs.CONV_ALGOS:
    raise ConfigError(f'config.conv_algo: unknown value {config.conv_algo!r}; use one of '
                      f'{convs.CONV_ALGOS} (xla: nn.Conv as written; auto: a faster '
                      'algorithm per layer, see kernelscale/net/convs.py)')
  for m in names:
    try:
      shapes.check_algo(m, config.get('conv_algo', 'xla'))
    except ValueError as e:
      raise ConfigError(f'config.{e}') from None
  if config.get('malloc', 'auto') not in host.MALLOC_CHOICES:
    raise ConfigError(f'config.malloc: unknown value {config.malloc!r}; use one of '
                      f'{host.MALLOC_CHOICES}')
  if config.precision not in PRECISIONS:
    raise ConfigError(f'config.precision: unknown precision {config.precision!r}; use one of '
                      f'{PRECISIONS}')
  if not isinstance(config.get('profile', False), bool):
    raise ConfigError(f'config.profile: {config.profile!r} is not True or False')
  if config.get('profile', False) and (not _is_int(config.profile_steps) or config.profile_steps < 1):
    raise ConfigError(f'config.profile_steps: {config.profile_steps!r} is not an integer >= 1')
  if config.get('epochs', 0):
    try:
      training.validate(config)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  try:
    # A TFDS dataset that is not prepared fails here, fast, saying how to get it.
    spec = source.spec(config)
  except source.DataError as e:
    raise ConfigError(str(e)) from None
  # Several models (experiments/receptive_field.py): each k's designs run one after
  # another, so the ratios between them are not stretched by drift over the run.
  try:
    axis = distributed.device_axis(config)
    if max(n for n, _, _ in axis) > 1:  # only then is the backend asked how many devices exist
      axis = distributed.device_axis(config, jax.device_count(), jax.process_count())
  except distributed.SetupError as e:
    raise ConfigError(str(e)) from None

  feats = parse_features(config.get('features'))
  if feats != (None,) and (config.get('conv_algo', 'xla') != 'xla' or any(
      shapes.block_of(m) != 'plain' for m in names)):
    raise ConfigError('config.features: widths can be set only for plain models with '
                      'conv_algo=xla')
  repeats = config.get('repeats', 1)
  if not _is_int(repeats) or repeats < 1:
    raise ConfigError(f'config.repeats: {repeats!r} is not an integer >= 1')
  # Repeats re-time every point in interleaved order (all points, then all again),
  # so slow drift of the machine spreads over the points instead of biasing one.
  pts = [Point(m, k, p, glob, config.dtype, n_devices=n, batch_scaling=bs, features=f,
               repeat=rep)
         for rep in range(repeats)
         for p, k, (n, bs, glob), f, m in itertools.product(pads, ks, axis, feats, names)]
  for pt in pts:
    features = pt.features or models.MODELS[pt.model].keywords['features']
    try:
      shapes.conv_ops(features, pt.kernel_size, pt.padding, *_input_hw_c(spec),
                      block=shapes.block_of(pt.model))
    except shapes.ShapeError as e:
      raise shapes.ShapeError(f'config.kernel_sizes: {e}'
                              + (f' (model {pt.model})' if len(names) > 1 else '')) from None
  _check_params_fit(pts, spec)
  return pts


def check_numbers(config) -> None:
  """Refuses NaN and inf in every float field (they would run and give null losses)."""
  for key in config.keys():
    v = config[key]
    for x in (v if isinstance(v, (list, tuple)) else (v,)):
      if isinstance(x, float) and not math.isfinite(x):
        raise ConfigError(f'config.{key}: {x!r} is not a finite number')


def _check_params_fit(pts: list[Point], spec) -> None:
  """Refuses up front a point whose parameters alone exceed the memory available."""
  try:
    big = max(pts, key=lambda pt: _params(pt, spec))
    why = memguard.check_up_front(_params(big, spec), f'model {big.model} at k={big.kernel_size}')
  except RuntimeError as e:  # jax finds no backend: JAX_PLATFORMS names a missing platform
    raise ConfigError(host.platform_error(e)) from None
  if why:
    raise ConfigError(f'config.kernel_sizes: {why}; give smaller kernel sizes')


def _params(pt: Point, spec) -> int:
  features = models.MODELS[pt.model].keywords['features']
  return flops.param_count(features, pt.kernel_size, pt.padding, *_input_hw_c(spec),
                           num_classes=spec.num_classes, block=shapes.block_of(pt.model))


def _input_hw_c(spec) -> tuple[int, int]:
  return spec.image_shape[0], spec.image_shape[2]


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
    probe = os.path.join(workdir, '.write_test')
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
  rec: dict = {'conv_algos': models.layer_algos(module)}
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
      rec['conv_alone_s'] = ceilings.conv_alone_s(features, pt.kernel_size, pt.padding,
                                                  pt.batch_size, hw, c, models.DTYPES[pt.dtype])
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
