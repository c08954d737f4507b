"""Offline preparation: tiny IDX files -> official TFDS array_record layout, read back by TFDS."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from kernelscale.data import prepare, tfds_source


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_idx(folder, n_train=40, n_test=12, seed=0, gz=True):
  """Writes the four IDX files of a tiny MNIST-like dataset; returns its arrays."""
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  out = {}
  for split, n in (('train', n_train), ('test', n_test)):
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    img_stem, lab_stem = prepare.IDX_FILES[split]
    ext = '.gz' if gz else ''
    prepare.write_idx(os.path.join(folder, img_stem + ext), images)
    prepare.write_idx(os.path.join(folder, lab_stem + ext), labels)
    out[split] = (images, labels)
  return out


def test_idx_round_trip(tmp_path):
  a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  for name in ('x.idx', 'x.idx.gz'):
    np.testing.assert_array_equal(prepare.read_idx(prepare.write_idx(str(tmp_path / name), a)), a)


@pytest.mark.parametrize('gz', [True, False])
def test_prepare_writes_official_layout_and_tfds_reads_it_back(tmp_path, gz):
  arrays = make_idx(tmp_path / 'idx', gz=gz)
  data_dir = str(tmp_path / 'tfds')
  out = prepare.prepare_from_idx('fashion_mnist', str(tmp_path / 'idx'), data_dir, log=lambda s: None)
  assert out == os.path.join(data_dir, 'fashion_mnist', '3.0.1')
  files = set(os.listdir(out))
  assert {'dataset_info.json', 'features.json', 'fashion_mnist-train.array_record-00000-of-00001',
          'fashion_mnist-test.array_record-00000-of-00001'} <= files
  info = json.load(open(os.path.join(out, 'dataset_info.json')))
  assert info['name'] == 'fashion_mnist' and info['version'] == '3.0.1'
  assert info['fileFormat'] == 'array_record'
  assert info['moduleName'] == 'tensorflow_datasets.image_classification.mnist'
  assert not os.path.exists(os.path.join(data_dir, 'downloads'))
  for split, (images, labels) in arrays.items():
    src = tfds.data_source('fashion_mnist', split=split, data_dir=data_dir, download=False)
    assert len(src) == len(labels)
    # TFDS shuffles the order on disk; match examples by content.
    got = sorted((src[i]['image'].tobytes(), int(src[i]['label'])) for i in range(len(src)))
    want = sorted((im[..., None].tobytes(), int(l)) for im, l in zip(images, labels))
    assert got == want


def test_load_split_caches_decoded_arrays(tmp_path, monkeypatch):
  arrays = make_idx(tmp_path / 'idx')
  data_dir = str(tmp_path / 'tfds')
  prepare.prepare_from_idx('fashion_mnist', str(tmp_path / 'idx'), data_dir, log=lambda s: None)
  ds = tfds_source.spec('fashion_mnist', data_dir)
  assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
  x1, y1, c1 = tfds_source.load_split(ds, 'train', data_dir)
  assert c1 == 'miss' and x1.dtype == np.uint8 and y1.dtype == np.int32
  assert sorted(y1.tolist()) == sorted(arrays['train'][1].tolist())
  cache = os.path.join(data_dir, 'kernelscale_cache', 'fashion_mnist', '3.0.1')
  assert any(f.endswith('.images.npy') for f in os.listdir(cache))

  def no_decoding(*a, **k):
    raise AssertionError('decoded PNGs although the cache holds the arrays')
  monkeypatch.setattr(tfds_source, '_decode_all', no_decoding)
  x2, y2, c2 = tfds_source.load_split(ds, 'train', data_dir)
  assert c2 == 'hit'
  np.testing.assert_array_equal(x1, x2)
  np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize('case,flag', [
    ('unsupported', '--prepare'), ('no_dir', '--from_idx'), ('missing_file', '--from_idx'),
    ('bad_magic', '--from_idx'), ('bad_label', '--from_idx')])
def test_prepare_bad_input_names_the_flag(tmp_path, case, flag):
  idx = tmp_path / 'idx'
  make_idx(idx, gz=False)
  name = 'fashion_mnist'
  if case == 'unsupported':
    name = 'cifar10'
  elif case == 'no_dir':
    idx = tmp_path / 'nope'
  elif case == 'missing_file':
    os.remove(idx / 't10k-labels-idx1-ubyte')
  elif case == 'bad_magic':
    (idx / 'train-images-idx3-ubyte').write_bytes(b'\x01\x02\x03\x04')
  elif case == 'bad_label':
    prepare.write_idx(str(idx / 't10k-labels-idx1-ubyte'), np.full((12,), 11, np.uint8))
  with pytest.raises(prepare.PrepareError) as e:
    prepare.prepare_from_idx(name, str(idx), str(tmp_path / 'tfds'), log=lambda s: None)
  assert str(e.value).startswith(flag + ':')
  assert not os.path.exists(tmp_path / 'tfds' / name)


def _run(*args):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'), *args],
                        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


@pytest.mark.slow  # five run.py subprocesses
def test_cli_prepare_and_its_errors(tmp_path):
  make_idx(tmp_path / 'idx')
  data_dir = tmp_path / 'tfds'
  p = _run('--prepare=mnist', f'--from_idx={tmp_path / "idx"}', f'--data_dir={data_dir}')
  assert p.returncode == 0, p.stderr
  assert (data_dir / 'mnist' / '3.0.1' / 'dataset_info.json').exists()
  assert f'prepared: {data_dir / "mnist" / "3.0.1"}' in p.stdout
  for args, flag in ((('--prepare=fashion_mnist',), '--from_idx'),
                     (('--prepare=fashion_mnist', f'--from_idx={tmp_path / "none"}'), '--from_idx'),
                     (('--prepare=imagenet2012', f'--from_idx={tmp_path / "idx"}'), '--prepare'),
                     ((f'--from_idx={tmp_path / "idx"}',), '--from_idx')):
    p = _run(*args, f'--data_dir={tmp_path / "other"}')
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith(f'error: {flag}:'), p.stderr
