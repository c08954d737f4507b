"""Every file the tool reads, truncated or corrupt: one line (an exception naming it) or a fallback."""
import gzip
import os

import numpy as np
import pytest

from kernelscale import records
from kernelscale.data import prepare, tfds_source
from kernelscale.measure import host

_IMAGES = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)


def _idx_bytes():
  buf = bytearray(b'\x00\x00\x08\x03')
  for d in _IMAGES.shape:
    buf += int(d).to_bytes(4, 'big')
  return bytes(buf) + _IMAGES.tobytes()


@pytest.mark.parametrize('name,content', [
    ('x.idx', _idx_bytes()[:-5]),                          # truncated data
    ('x.idx', _idx_bytes()[:6]),                           # truncated header
    ('x.idx', b''),                                        # empty
    ('x.idx', b'\x01\x02\x03\x04' + _idx_bytes()[4:]),     # bad magic
    ('x.idx.gz', gzip.compress(_idx_bytes())[:-20]),       # .gz cut short
    ('x.idx.gz', gzip.compress(_idx_bytes())[:10] + b'\xff' * 40),  # corrupt deflate stream
    ('x.idx.gz', b'not gzip at all'),
    ('x.idx.gz', gzip.compress(_idx_bytes()[:-5])),        # whole .gz of a truncated IDX
])
def test_corrupt_idx_files_are_one_error_naming_the_file(tmp_path, name, content):
  path = tmp_path / name
  path.write_bytes(content)
  with pytest.raises(prepare.PrepareError) as e:
    prepare.read_idx(str(path))
  assert str(path) in str(e.value) and '\n' not in str(e.value)


def test_a_corrupt_decoded_array_cache_is_decoded_again(tmp_path):
  rng = np.random.default_rng(0)
  os.makedirs(tmp_path / 'idx')
  for split, n in (('train', 20), ('test', 8)):
    img_stem, lab_stem = prepare.IDX_FILES[split]
    prepare.write_idx(str(tmp_path / 'idx' / img_stem), rng.integers(0, 256, (n, 28, 28), np.uint8))
    prepare.write_idx(str(tmp_path / 'idx' / lab_stem), rng.integers(0, 10, (n,), np.uint8))
  data_dir = str(tmp_path / 'tfds')
  prepare.prepare_from_idx('fashion_mnist', str(tmp_path / 'idx'), data_dir, log=lambda s: None)
  ds = tfds_source.spec('fashion_mnist', data_dir)
  x1, y1, c1 = tfds_source.load_split(ds, 'train', data_dir)
  assert c1 == 'miss'
  cache = os.path.join(data_dir, 'kernelscale_cache', 'fashion_mnist', '3.0.1')
  npy = [os.path.join(cache, f) for f in os.listdir(cache) if f.endswith('.images.npy')][0]
  for corrupt in (open(npy, 'rb').read()[:200], b'garbage'):
    with open(npy, 'wb') as f:
      f.write(corrupt)
    logs = []
    x2, y2, c2 = tfds_source.load_split(ds, 'train', data_dir, log=logs.append)
    assert c2 == 'miss' and any('decoding again' in line for line in logs)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize('content', ['', '{"a": ', '[1, 2]', '\x00\x01'])
def test_corrupt_cached_measurements_read_as_none(tmp_path, monkeypatch, content):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  for name in (host.CPU_CONV_CACHE, host.MALLOC_CACHE):
    path = host._cache_path(name)  # pylint: disable=protected-access
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
      f.write(content)
  assert host.resolve_cpu_conv('auto', 'retain')['cpu_conv_path'] == 'eigen'
  (tmp_path / 'ceilings.json').write_text(content)
  assert records.load_ceilings(str(tmp_path)) == {}


def test_download_without_network_fails_within_30_s(monkeypatch):
  import time  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(tfds_source, '_NETWORK_PROBE', ('192.0.2.1', 9))  # TEST-NET: unroutable
  monkeypatch.setattr(tfds_source, '_NETWORK_TIMEOUT_S', 2)

  class Builder:
    def download_and_prepare(self, **_):
      raise AssertionError('downloaded without a network')
  t0 = time.time()
  with pytest.raises(tfds_source.DataError, match='config.download: no network'):
    tfds_source._download(Builder(), 'fashion_mnist')  # pylint: disable=protected-access
  assert time.time() - t0 < 30
