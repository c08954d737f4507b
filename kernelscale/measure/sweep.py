"""The sweep: for every point, build, compile, time, analyse, append a record.

`validate(config)` checks every field and every point's shapes before anything
compiles; `run(config, workdir)` then measures point by point and appends each
record to `<workdir>/results.jsonl` as soon as the point finishes.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import platform as _platform
import time
import traceback
from typing import Callable

import jax
import jaxlib

from kernelscale import records
from kernelscale.data import source
from kernelscale.measure import ceilings, hlo_labels, host, profiling, timing, training
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
  batch_size: int
  dtype: str
  features: tuple[int, ...] | None = None  # conv widths; None: the model's own
  repeat: int = 0                          # which re-timing of the point (config.repeats)

  @property
  def name(self) -> str:
    return (f'{self.model}-k{self.kernel_size}-{self.padding}-{self.dtype}-b{self.batch_size}'
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
  for k in ks:
    if not _is_int(k) or k < 1:
      raise ConfigError(f'config.kernel_sizes: {k!r} is not an integer >= 1')
  dup = sorted({k for k in ks if ks.count(k) > 1}, key=str)
  if dup:
    raise ConfigError(f'config.kernel_sizes: {dup[0]!r} is listed twice; each point is measured once')
  pads = _as_tuple(config.paddings)
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
  if not isinstance(config.learning_rate, (int, float)) or config.learning_rate <= 0:
    raise ConfigError(f'config.learning_rate: {config.learning_rate!r} is not a number > 0')
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
  pts = [Point(m, k, p, config.batch_size, config.dtype, f, rep)
         for rep in range(repeats)
         for p, k, f, m in itertools.product(pads, ks, feats, names)]
  for pt in pts:
    features = pt.features or models.MODELS[pt.model].keywords['features']
    try:
      shapes.conv_ops(features, pt.kernel_size, pt.padding, *_input_hw_c(spec),
                      block=shapes.block_of(pt.model))
    except shapes.ShapeError as e:
      raise shapes.ShapeError(f'config.kernel_sizes: {e}'
                              + (f' (model {pt.model})' if len(names) > 1 else '')) from None
  return pts


def _input_hw_c(spec) -> tuple[int, int]:
  return spec.image_shape[0], spec.image_shape[2]


def check_workdir(workdir: str) -> str:
  """Creates the workdir and proves it writable, before any measurement.

  Raises:
    ConfigError: naming --workdir when it cannot be created or written, or
      when it already holds a run's results.jsonl (appending a second run
      would mix two runs in one analysis).
  """
  if os.path.exists(os.path.join(workdir, 'results.jsonl')):
    raise ConfigError(f'--workdir: {workdir!r} already holds a results.jsonl; give a new '
                      'folder, or use --report_only to rebuild the report from it')
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, '.write_test')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise ConfigError(f'--workdir: cannot write to {workdir!r}: {e.strerror or e}') from None
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

  # On CPU, other processes compete with the step itself: measure how much they took.
  with timing.other_cpu_load() as load:
    state, metrics, first, times, faults = timing.run_steps(
        compiled, state, batch, config.warmup_steps, config.timed_steps)
  rec['other_cpu_share'] = load['other_cpu_share']
  rec['first_step_s'] = first
  rec['minor_faults_per_step'] = faults
  rec.update(timing.step_stats(times))
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
    state, prof, n3 = profiling.profile_point(
        compiled, state, batch, compiled.as_text(), jax.default_backend(),
        config.profile_steps, os.path.join(workdir, 'tensorboard', pt.name), workdir, med)
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
        on_record: Callable[[int, int, dict], None] | None = None) -> list[dict]:
  """Measures every point of the sweep, appending each record as it finishes.

  Args:
    config: an experiment config (see experiments/seed.py).
    workdir: output folder; results.jsonl is appended to there.
    log: where progress lines go.
    extra_context: fields added to every record (run.py passes the CPU conv
      decision made before jax initialised).
    on_record: called with (i, n, record) after each point is appended (run.py
      prints report.terminal's progress line).

  Returns:
    The records written by this run, in order.
  """
  pts = validate(config)
  check_workdir(workdir)
  # Compile time must be the real compile, not a cache hit.
  jax.config.update('jax_enable_compilation_cache', False)
  ctx = context()
  ctx.update(extra_context or {})
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
           'warmup_steps': config.warmup_steps, 'seed': config.seed}
    rec.update(ctx)
    try:
      rec.update(measure_fn(pt, config))
      rec['status'], rec['error'] = 'ok', None
    except Exception as e:  # pylint: disable=broad-except
      # One failed point (e.g. out of memory) must not lose the others.
      rec['status'] = 'failed'
      rec['error'] = f'{type(e).__name__}: {e}'
      rec.setdefault('notes', []).append(traceback.format_exc(limit=3))
    rec['point_wall_s'] = time.perf_counter() - t0
    records.append(path, rec)
    out.append(rec)
    if on_record is not None:
      on_record(i, len(pts), rec)
  return out
