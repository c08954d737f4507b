"""The TFDS read path (tfds.testing.mock_data), its errors, and failing fast offline."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from kernelscale.data import tfds_source


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize('name,shape', [('mnist', (28, 28, 1)), ('cifar10', (32, 32, 3))])
def test_mocked_dataset_reads_into_the_contract(tmp_path, name, shape):
  with tfds.testing.mock_data(num_examples=20):
    ds = tfds_source.spec(name, str(tmp_path))
    assert ds.image_shape == shape and ds.num_classes == 10 and ds.version
    images, labels, cache = tfds_source.load_split(ds, 'train', str(tmp_path))
  assert images.shape == (20,) + shape and images.dtype == np.uint8
  assert labels.shape == (20,) and labels.dtype == np.int32
  assert ((0 <= labels) & (labels < 10)).all()
  assert cache == 'off'  # mocked data has no shard files to key a cache on
  assert images.std() > 0


def test_missing_dataset_fails_fast_and_says_how_to_get_it(tmp_path):
  t0 = time.perf_counter()
  with pytest.raises(tfds_source.DataError) as e:
    tfds_source.spec('fashion_mnist', str(tmp_path / 'empty'))
  assert time.perf_counter() - t0 < 5
  msg = str(e.value)
  assert msg.startswith('config.data: fashion_mnist 3.0.1 is not prepared')
  assert '--config.download=True' in msg and '--prepare=fashion_mnist --from_idx=' in msg
  assert 'apt-get install dataset-fashion-mnist' in msg
  assert '\n' not in msg


@pytest.mark.parametrize('name,text', [
    ('no_such_dataset', 'neither "synthetic" nor a TFDS dataset'),
    ('imagenet2012', 'static [H, W, C]'),  # images of varying size
])
def test_unusable_datasets(tmp_path, name, text):
  with pytest.raises(tfds_source.DataError) as e:
    tfds_source.spec(name, str(tmp_path))
  assert str(e.value).startswith('config.data:') and text in str(e.value)


def _run(*args):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  t0 = time.perf_counter()
  p = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'), *args],
                     capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
  return p, time.perf_counter() - t0


@pytest.mark.slow  # run.py subprocess per case
@pytest.mark.parametrize('config', ['experiments/accuracy.py:quick', 'experiments/seed.py:quick'])
def test_cli_missing_dataset_is_one_line_exit_2_fast(tmp_path, config):
  p, wall = _run(f'--config={os.path.join(ROOT, config)}', '--config.data=fashion_mnist',
                 f'--config.data_dir={tmp_path / "empty"}', f'--workdir={tmp_path / "wd"}')
  lines = [l for l in p.stderr.splitlines() if l.strip()]
  assert p.returncode == 2 and len(lines) == 1, p.stderr
  assert lines[0].startswith('error: config.data: fashion_mnist 3.0.1 is not prepared')
  assert '--prepare=fashion_mnist' in lines[0]
  assert not (tmp_path / 'wd' / 'results.jsonl').exists()
  # The whole process, interpreter and jax import included, before any compile.
  assert wall < 5, wall
