"""The sweep's points, from a config: every field and every point's shapes checked before any compile.

`validate(config)` returns the points (kernel size x model x padding x devices x
features x repeat) or raises ConfigError naming the field; measure.sweep measures them.
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import jax

from kernelscale.data import source
from kernelscale.measure import distributed, host, memguard, training
from kernelscale.net import convs, flops, models, shapes


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
  features = pt.features or shapes.features_of(pt.model)
  return flops.param_count(features, pt.kernel_size, pt.padding, *_input_hw_c(spec),
                           num_classes=spec.num_classes, block=shapes.block_of(pt.model))


def _input_hw_c(spec) -> tuple[int, int]:
  return spec.image_shape[0], spec.image_shape[2]
