"""TFDS image-classification datasets read through `tfds.data_source` (no TensorFlow).

`tfds.data_source` reads the array_record format with random access and needs
no TensorFlow. Offline by default: a dataset that is not prepared fails at once
(`DataError`, message starting 'config.data:') and says how to get it. With
`download=True` TFDS's `download_and_prepare` runs first, as in a Colab
session with network and TensorFlow.

Decoding PNG-encoded images takes seconds per dataset, so the decoded arrays of
a split are cached (`.npy` files keyed by the shard files' names, sizes and
modification times): a second run loads them without decoding anything.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import os
import re
import time
from typing import Callable

import numpy as np
from absl import logging

from kernelscale.data import prepare


_DECODE_CHUNK = 4096


class DataError(ValueError):
  """A dataset that cannot be used; the message starts with the config field."""


@dataclasses.dataclass(frozen=True)
class Spec:
  """What the model needs to know about a dataset, from its TFDS features."""
  name: str
  version: str
  image_shape: tuple[int, int, int]
  num_classes: int
  image_key: str = 'image'
  label_key: str = 'label'


def how_to_get(name: str) -> str:
  """The ways to get `name` prepared, as one sentence."""
  ways = ['--config.download=True (needs network and TensorFlow, e.g. in Colab)']
  if name in prepare.SUPPORTED:
    ways.append(f'offline: python run.py --prepare={name} --from_idx=DIR with its IDX files'
                + (' (apt-get install dataset-fashion-mnist gives '
                   'DIR=/usr/share/datasets/fashion-mnist)' if name == 'fashion_mnist' else ''))
  return 'get it with ' + ', or '.join(ways)


def _tfds():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


@contextlib.contextmanager
def _quiet():
  """TFDS logs each dataset_info read and probe of a missing folder; our errors say it all."""
  old = logging.get_verbosity()
  logging.set_verbosity(min(old, logging.ERROR))  # absl: larger is more verbose
  try:
    yield
  finally:
    logging.set_verbosity(old)


def _builder(name: str, data_dir: str | None):
  tfds = _tfds()
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(f'config.data: {name!r} is neither "synthetic" nor a TFDS dataset known to '
                    f'tensorflow-datasets {tfds.__version__} (e.g. mnist, fashion_mnist, '
                    'cifar10)') from None
  except Exception as e:  # pylint: disable=broad-except
    # A bad name can fail in many ways inside TFDS (config, version syntax ...).
    first = str(e).strip().splitlines()[0] if str(e).strip() else ''
    raise DataError(f'config.data: cannot open TFDS dataset {name!r}: '
                    f'{type(e).__name__}: {first}') from None


@_quiet()
def spec(name: str, data_dir: str | None = None, download: bool = False) -> Spec:
  """Checks that `name` is usable and returns its shapes; fast when it is not.

  Args:
    name: TFDS dataset name, e.g. 'fashion_mnist'.
    data_dir: TFDS data dir; None means TFDS's default.
    download: run TFDS's download_and_prepare (array_record) when not prepared.

  Returns:
    The dataset's Spec.

  Raises:
    DataError: the dataset is unknown, does not fit the batch contract, or is
      not prepared (the message says how to get it).
  """
  builder = _builder(name, data_dir)
  info = builder.info
  image_key, label_key = 'image', 'label'
  keys = info.supervised_keys
  if isinstance(keys, (tuple, list)) and len(keys) == 2 and all(isinstance(k, str) for k in keys):
    image_key, label_key = keys
  tfds = _tfds()
  feats = info.features
  image = feats[image_key] if image_key in feats else None
  label = feats[label_key] if label_key in feats else None
  if not isinstance(image, tfds.features.Image) or not isinstance(label, tfds.features.ClassLabel):
    raise DataError(f'config.data: {name} has no (Image, ClassLabel) pair of features '
                    f'({image_key!r}, {label_key!r}); it does not fit the batch contract')
  shape = tuple(image.shape)
  if len(shape) != 3 or any(d is None for d in shape) or np.dtype(image.np_dtype) != np.uint8:
    raise DataError(f'config.data: {name} images are {np.dtype(image.np_dtype).name}'
                    f'{list(shape)}; the batch '
                    'contract needs uint8 images of one static [H, W, C] shape')
  if download:
    _download(builder, name)
  _open(name, 'train', data_dir, builder)
  return Spec(name, str(builder.version), shape, int(label.num_classes), image_key, label_key)


# Where TFDS downloads from; reached (or not) within this many seconds before downloading.
_NETWORK_PROBE = ('storage.googleapis.com', 443)
_NETWORK_TIMEOUT_S = 10


def _download(builder, name: str) -> None:
  tfds = _tfds()
  import socket  # pylint: disable=g-import-not-at-top
  try:  # without a network TFDS retries for minutes: fail in seconds instead
    socket.create_connection(_NETWORK_PROBE, timeout=_NETWORK_TIMEOUT_S).close()
  except OSError as e:
    raise DataError(f'config.download: no network ({_NETWORK_PROBE[0]}: {e.strerror or e}); '
                    f'{how_to_get(name)}') from None
  try:
    builder.download_and_prepare(file_format='array_record')
  except Exception as e:  # pylint: disable=broad-except
    # Anything from no network to no TensorFlow: say which, in one line.
    first = str(e).strip().splitlines()[0] if str(e).strip() else ''
    raise DataError(f'config.download: download_and_prepare of {name} (tensorflow-datasets '
                    f'{tfds.__version__}) failed: {type(e).__name__}: {first}') from None


def _open(name: str, split: str, data_dir: str | None, builder=None):
  """tfds.data_source for one split, never downloading; errors say how to get the data."""
  tfds = _tfds()
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # pylint: disable=broad-except
    builder = builder or _builder(name, data_dir)
    where = os.fspath(builder.data_path)
    if not builder.is_prepared():
      raise DataError(f'config.data: {name} {builder.version} is not prepared in {where} '
                      f'(config.data_dir={data_dir!r}); {how_to_get(name)}') from None
    fmt = builder.info.file_format
    if fmt is not None and getattr(fmt, 'value', fmt) != 'array_record':
      raise DataError(f'config.data: {name} in {where} is prepared as '
                      f'{getattr(fmt, "value", fmt)}, which tfds.data_source cannot read; '
                      f'prepare it as array_record into another data_dir: {how_to_get(name)}'
                      ) from None
    first = str(e).strip().splitlines()[0] if str(e).strip() else ''
    raise DataError(f'config.data: cannot read split {split!r} of {name} in {where}: '
                    f'{type(e).__name__}: {first}') from None


def _fingerprint(data_path: str, name: str, split: str) -> str | None:
  """Hash of the split's shard files (name, size, mtime); None when there are none."""
  shards = sorted(glob.glob(os.path.join(data_path, f'{name}-{split}.array_record-*')))
  if not shards:
    return None
  h = hashlib.sha256()
  for path in shards:
    st = os.stat(path)
    h.update(f'{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns};'.encode())
  return h.hexdigest()[:16]


def default_cache_dir(data_dir: str | None, name: str) -> str:
  """<TFDS data dir>/kernelscale_cache, beside the datasets it caches."""
  root = data_dir or os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets'
  return os.path.join(os.path.expanduser(root), 'kernelscale_cache', name)


@_quiet()
def load_split(ds: Spec, split: str, data_dir: str | None = None,
               cache_dir: str | None = None,
               log: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray, str]:
  """All examples of one split as arrays, from the decoded-array cache when it holds them.

  Args:
    ds: the dataset's Spec (from `spec`).
    split: 'train', 'test', or any TFDS split string.
    data_dir: TFDS data dir; None means TFDS's default.
    cache_dir: where decoded arrays are kept; None means `default_cache_dir`.
    log: where a line about decoding goes.

  Returns:
    (images u8[N, H, W, C], labels i32[N], cache) where cache is 'hit', 'miss'
    (decoded now and written) or 'off' (no shard files to key on, e.g. mocked
    data, or the cache folder is not writable).
  """
  source = _open(ds.name, split, data_dir)
  data_path = os.fspath(source.dataset_info.data_dir)
  fp = _fingerprint(data_path, ds.name, split)
  path = None
  if fp is not None:
    cdir = os.path.join(cache_dir or default_cache_dir(data_dir, ds.name), ds.version)
    stem = re.sub(r'[^A-Za-z0-9_.]', '_', split)  # 'train[:10%]' -> 'train__10__'
    path = os.path.join(cdir, f'{stem}-{fp}')
    if os.path.exists(path + '.labels.npy'):
      # Labels are written last, so their presence means both files are complete.
      try:
        images, labels = np.load(path + '.images.npy'), np.load(path + '.labels.npy')
      except (OSError, ValueError, EOFError) as e:  # truncated or corrupt: decode again
        if log:
          log(f'decoded-array cache {path}.*.npy unreadable ({type(e).__name__}); decoding again')
        images = labels = np.zeros((0,))
      if images.shape[1:] == ds.image_shape and len(images) == len(labels) == len(source):
        return images, labels, 'hit'
  t0 = time.perf_counter()
  images, labels = _decode_all(source, ds)
  if log:
    log(f'decoded {len(labels)} {ds.name}/{split} examples in {time.perf_counter() - t0:.1f} s')
  if path is None:
    return images, labels, 'off'
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for suffix, arr in (('.images.npy', images), ('.labels.npy', labels)):
      with open(path + suffix + '.tmp', 'wb') as f:
        np.save(f, arr)
      os.replace(path + suffix + '.tmp', path + suffix)
    # Entries keyed on older shard files (a dataset prepared again) are stale.
    for old in glob.glob(os.path.join(cdir, f'{stem}-*.npy')):
      if not old.startswith(path):
        os.remove(old)
  except OSError as e:
    if log:
      log(f'not caching decoded arrays in {os.path.dirname(path)}: {e.strerror or e}')
    return images, labels, 'off'
  return images, labels, 'miss'


def _decode_all(source, ds: Spec) -> tuple[np.ndarray, np.ndarray]:
  n = len(source)
  images = np.empty((n,) + ds.image_shape, np.uint8)
  labels = np.empty((n,), np.int32)
  for start in range(0, n, _DECODE_CHUNK):
    idx = list(range(start, min(start + _DECODE_CHUNK, n)))
    for i, ex in zip(idx, _read(source, idx)):
      images[i] = np.asarray(ex[ds.image_key]).reshape(ds.image_shape)
      labels[i] = ex[ds.label_key]
  return images, labels


def _read(source, idx: list[int]) -> list:
  """A batch read (about 1.6x faster than one by one), else one by one.

  Plain sequences have no `__getitems__`, and the one tfds.testing.mock_data
  installs (tfds 4.9.10) is not bound to its mock, so it raises TypeError.
  """
  try:
    return source.__getitems__(idx)
  except (AttributeError, TypeError):
    return [source[i] for i in idx]
