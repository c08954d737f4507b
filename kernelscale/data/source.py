"""Batches for the train step. Every source yields the same contract:

    {'image': f32[B, H, W, C], 'label': i32[B]}   with static shapes.

`synthetic` (the default) needs no files and no network. Any other
`config.data` is a TFDS dataset read offline through `tfds.data_source`
(see kernelscale.tfds_data); `spec(config)` gives its shapes, `load(config)`
its arrays, and kernelscale.pipeline batches them.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from kernelscale.data import batches, tfds_source


SYNTHETIC_SHAPE = (28, 28, 1)
SYNTHETIC_CLASSES = 10


def synthetic_batch(batch_size: int, seed: int,
                    image_shape: tuple[int, int, int] = SYNTHETIC_SHAPE,
                    num_classes: int = SYNTHETIC_CLASSES) -> dict:
  """One seeded batch, made once and placed on the default device.

  The timed loop reuses it, so what is timed is the step and not the host.
  """
  rng = np.random.default_rng(seed)
  image = rng.standard_normal((batch_size,) + tuple(image_shape), dtype=np.float32)
  label = rng.integers(0, num_classes, size=(batch_size,), dtype=np.int32)
  batch = {'image': jnp.asarray(image), 'label': jnp.asarray(label)}
  return jax.device_put(batch)


# --- TFDS datasets (kernelscale.tfds_data reads them; kernelscale.pipeline batches them) ---

DataError = tfds_source.DataError


def spec(config) -> tfds_source.Spec:
  """Image shape and class count of `config.data`; for TFDS, checks it is usable.

  Raises:
    DataError: naming the field, e.g. a dataset not prepared (says how to get
      it), within a fraction of a second and before anything compiles.
  """
  name = config.data
  if not isinstance(name, str) or not name:
    raise DataError(f'config.data: {name!r} is not "synthetic" or a TFDS dataset name')
  if name == 'synthetic':
    for field in ('data_dir', 'download'):
      if config.get(field):
        raise DataError(f'config.{field}: only read for TFDS data, and config.data is '
                        '"synthetic"; set --config.data=<TFDS name>, e.g. fashion_mnist, '
                        f'or drop config.{field}')
    return tfds_source.Spec('synthetic', '', SYNTHETIC_SHAPE, SYNTHETIC_CLASSES)
  data_dir, download = config.get('data_dir'), config.get('download', False)
  if data_dir is not None and not isinstance(data_dir, str):
    raise DataError(f'config.data_dir: {data_dir!r} is not a folder path')
  if not isinstance(download, bool):
    raise DataError(f'config.download: {download!r} is not True or False')
  ds = tfds_source.spec(name, data_dir, download)
  h, w, _ = ds.image_shape
  if h != w:
    raise DataError(f'config.data: {name} images are {h}x{w}; the seed family takes square images')
  return ds


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A TFDS dataset in host memory, with the train split's normalisation."""
  spec: tfds_source.Spec
  train_images: np.ndarray  # u8[N, H, W, C]
  train_labels: np.ndarray  # i32[N]
  test_images: np.ndarray
  test_labels: np.ndarray
  mean: np.ndarray  # f32[C], [0, 1] units
  std: np.ndarray
  cache: str  # 'hit' | 'miss' | 'off' (see tfds_source.load_split); 'miss' wins
  load_s: float


def load(config, log=print) -> Dataset:
  """Loads config.data's train and test splits (decoded-array cache first).

  Raises:
    DataError: as `spec`.
  """
  ds = spec(config)
  t0 = time.perf_counter()
  kw = {'data_dir': config.get('data_dir'), 'cache_dir': config.get('cache_dir'), 'log': log}
  x_tr, y_tr, c_tr = tfds_source.load_split(ds, 'train', **kw)
  x_te, y_te, c_te = tfds_source.load_split(ds, 'test', **kw)
  mean, std = batches.channel_stats(x_tr)
  cache = 'miss' if 'miss' in (c_tr, c_te) else ('hit' if c_tr == c_te == 'hit' else 'off')
  return Dataset(ds, x_tr, y_tr, x_te, y_te, mean, std, cache, time.perf_counter() - t0)


def first_batch(dset: Dataset, batch_size: int, seed: int) -> dict:
  """The first training batch of epoch 0, normalised and on the default device."""
  batch = next(batches.host_batches(dset.train_images, dset.train_labels, batch_size,
                                     seed=seed, epoch=0, mean=dset.mean, std=dset.std))
  return jax.device_put(batch)
