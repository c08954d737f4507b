"""Prepares a TFDS dataset from local IDX files, without TensorFlow and offline.

    python run.py --prepare=fashion_mnist --from_idx=/usr/share/datasets/fashion-mnist

writes `<data_dir>/fashion_mnist/3.0.1/` in the official TFDS layout
(dataset_info.json, features.json, label.labels.txt and
`fashion_mnist-{train,test}.array_record-00000-of-00001`), so that
`tfds.data_source('fashion_mnist', data_dir=...)` reads it like a download.

The builder used is TFDS's own (`tensorflow_datasets.image_classification.mnist`),
so name, version, features and the example order are the official ones; only
where the examples come from is replaced: IDX files on disk instead of a URL.
Images are PNG-encoded with PIL (TFDS encodes numpy images through TensorFlow,
which is not installed); PNG is lossless, so the decoded pixels are the IDX pixels.

Debian's `dataset-fashion-mnist` package holds the Fashion-MNIST IDX files:
`apt-get install dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist/.
"""
from __future__ import annotations

import gzip
import io
import os
import shutil
import tempfile
import zlib
from typing import Callable

import numpy as np

# (images, labels) file stems per split, as published by LeCun and Zalando.
IDX_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
# Datasets published as IDX files with the layout above, and their TFDS builder class.
SUPPORTED = {'mnist': 'MNIST', 'fashion_mnist': 'FashionMNIST'}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
               0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


class PrepareError(ValueError):
  """Bad --prepare input; the message starts with the flag it concerns."""


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file (optionally gzipped) into an array of its own shape.

  Raises:
    PrepareError: when the file is not a valid IDX file.
  """
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      buf = f.read()
  except (OSError, EOFError, zlib.error) as e:  # missing, truncated or corrupt .gz
    raise PrepareError(f'--from_idx: cannot read {path}: {e}') from None
  if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] not in _IDX_DTYPES:
    raise PrepareError(f'--from_idx: {path} is not an IDX file (bad magic number)')
  dtype, ndim = np.dtype(_IDX_DTYPES[buf[2]]), buf[3]
  if len(buf) < 4 + 4 * ndim:
    raise PrepareError(f'--from_idx: {path}: cut short inside its header ({len(buf)} bytes)')
  dims = tuple(int(d) for d in np.frombuffer(buf, '>u4', count=ndim, offset=4))
  offset = 4 + 4 * ndim
  if len(buf) - offset != int(np.prod(dims)) * dtype.itemsize:
    raise PrepareError(f'--from_idx: {path}: header says {dims} but the file holds '
                       f'{len(buf) - offset} bytes of data')
  return np.frombuffer(buf, dtype, offset=offset).reshape(dims)


def write_idx(path: str, array: np.ndarray) -> str:
  """Writes a uint8 array as an IDX file (gzipped when `path` ends in .gz).

  Used by the tests and CI to make tiny datasets on the spot.
  """
  array = np.ascontiguousarray(array, np.uint8)
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, '>u4').tobytes()
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(header + array.tobytes())
  return path


def find_idx(idx_dir: str, stem: str) -> str:
  """The path of `stem` or `stem.gz` in idx_dir (also accepts '.' for '-' as some mirrors do)."""
  for name in (stem, stem + '.gz', stem.replace('-idx', '.idx'),
               stem.replace('-idx', '.idx') + '.gz'):
    path = os.path.join(idx_dir, name)
    if os.path.isfile(path):
      return path
  raise PrepareError(f'--from_idx: {idx_dir} has no {stem}[.gz]; it needs '
                     f'{", ".join(s for pair in IDX_FILES.values() for s in pair)} '
                     '(gzipped or not)')


def load_idx_split(idx_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Images u8[N, 28, 28] and labels u8[N] of one split, checked against each other."""
  img_stem, lab_stem = IDX_FILES[split]
  images = read_idx(find_idx(idx_dir, img_stem))
  labels = read_idx(find_idx(idx_dir, lab_stem))
  if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
    raise PrepareError(f'--from_idx: {img_stem} holds {images.dtype}{list(images.shape)}, '
                       'not uint8 images [N, 28, 28]')
  if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise PrepareError(f'--from_idx: {lab_stem} holds {labels.shape} labels for '
                       f'{images.shape[0]} images')
  if labels.size and int(labels.max()) > 9:
    raise PrepareError(f'--from_idx: {lab_stem} has label {int(labels.max())}; expected 0..9')
  return images, labels


def _png(image_HxW: np.ndarray) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buf = io.BytesIO()
  Image.fromarray(image_HxW).save(buf, format='png')
  return buf.getvalue()


def _builder_class(name: str):
  """TFDS's own builder for `name`, with examples read from IDX files."""
  from tensorflow_datasets.image_classification import mnist  # pylint: disable=g-import-not-at-top
  official = getattr(mnist, SUPPORTED[name])

  class IdxBuilder(official, skip_registration=True):
    """The official builder; `_split_generators` reads `idx_dir` instead of downloading."""

    def __init__(self, *, idx_dir: str, **kwargs):
      self._idx_dir = idx_dir
      super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
      del dl_manager  # nothing to download
      return {split: self._examples(split) for split in IDX_FILES}

    def _examples(self, split):  # pylint: disable=arguments-differ
      images, labels = load_idx_split(self._idx_dir, split)
      # Keys are the example indices, as in the official generator, so the
      # shuffled order on disk is the official one.
      for i, (image, label) in enumerate(zip(images, labels)):
        yield i, {'image': _png(image), 'label': int(label)}

  IdxBuilder.name = name
  IdxBuilder.__name__ = f'{SUPPORTED[name]}FromIdx'
  # dataset_info.json records the builder's module; the official one keeps the
  # prepared files identical to a download's, and TFDS from warning on every read.
  IdxBuilder.__module__ = official.__module__
  return IdxBuilder


def prepare_from_idx(name: str, idx_dir: str, data_dir: str | None = None,
                     log: Callable[[str], None] = print) -> str:
  """Writes `name` in the official TFDS array_record layout from IDX files.

  Args:
    name: a key of SUPPORTED ('fashion_mnist' or 'mnist').
    idx_dir: folder with the four IDX files (gzipped or not).
    data_dir: TFDS data dir; None means TFDS's default (~/tensorflow_datasets
      or $TFDS_DATA_DIR).
    log: where progress lines go.

  Returns:
    The prepared dataset's folder, e.g. <data_dir>/fashion_mnist/3.0.1.

  Raises:
    PrepareError: naming the flag (--prepare, --from_idx, --data_dir).
  """
  if name not in SUPPORTED:
    raise PrepareError(f'--prepare: {name!r} cannot be prepared from IDX files; '
                       f'supported: {", ".join(sorted(SUPPORTED))}')
  if not os.path.isdir(idx_dir):
    hint = (' (for Fashion-MNIST: apt-get install dataset-fashion-mnist, then '
            '--from_idx=/usr/share/datasets/fashion-mnist)')
    raise PrepareError(f'--from_idx: {idx_dir!r} is not a directory{hint}')
  for split in IDX_FILES:  # fail on a missing or broken file before writing anything
    load_idx_split(idx_dir, split)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  kwargs = {'data_dir': os.path.abspath(os.path.expanduser(data_dir))} if data_dir else {}
  try:
    builder = _builder_class(name)(idx_dir=idx_dir, file_format='array_record', **kwargs)
  except OSError as e:
    raise PrepareError(f'--data_dir: cannot use {data_dir!r}: {e}') from None
  out = os.fspath(builder.data_dir)
  if builder.is_prepared():
    log(f'{name} {builder.version} is already prepared at {out}; delete that folder to redo it')
    return out
  log(f'preparing {name} {builder.version} from {idx_dir} into {out} ...')
  # The download dir is never used (nothing is downloaded); keep it out of data_dir.
  scratch = tempfile.mkdtemp(prefix='kernelscale-prepare-')
  try:
    builder.download_and_prepare(
        download_dir=scratch,
        download_config=tfds.download.DownloadConfig(
            try_download_gcs=False,  # offline: never ask GCS for a prepared copy
            compute_stats=tfds.download.ComputeStatsMode.SKIP))
  except OSError as e:
    raise PrepareError(f'--data_dir: cannot write {out}: {e}') from None
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  return out
