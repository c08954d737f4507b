"""Device ceilings (small sizes), their cache, and the optimizer-only timing."""
import json

import jax
import numpy as np

from kernelscale import ceilings, models, train


def test_matmul_and_copy_report_positive_rates():
  mm = ceilings.matmul_flops_per_s(128, np.float32, repeats=3)
  assert mm['flops_per_s'] > 0 and mm['n'] == 128 and 1 <= mm['calls'] <= 3
  assert mm['flops_per_s'] >= mm['median_flops_per_s']  # best >= median
  cp = ceilings.copy_bytes_per_s(1 << 16, repeats=3)
  assert cp['bytes_per_call'] == 2 * 4 * (1 << 16)  # read + write
  assert cp['bytes_per_s'] >= cp['median_bytes_per_s'] > 0


def test_load_or_measure_caches_per_device(tmp_path, monkeypatch):
  calls = []

  def fake():
    calls.append(1)
    return {'ceiling_flops_per_s': 1e9, 'ceiling_bytes_per_s': 1e8}

  monkeypatch.setattr(ceilings, 'measure_ceilings', fake)
  a = ceilings.load_or_measure(str(tmp_path))
  b = ceilings.load_or_measure(str(tmp_path))
  assert a == b and len(calls) == 1
  key = ceilings.device_key(jax.devices()[0].platform, jax.devices()[0].device_kind)
  assert list(json.load(open(tmp_path / 'ceilings.json'))) == [key]
  assert ceilings.load(str(tmp_path / 'nowhere')) == {}


def test_optimizer_update_timed_without_consuming_state():
  module = models.build('seed', 3, 'SAME', 'float32')
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), (28, 28, 1))
  before = np.array(state.params['conv1']['kernel'])
  out = ceilings.time_optimizer_update(state, warmup=1, steps=3)
  assert 0 < out['optimizer_update_s'] <= out['optimizer_update_s_p90']
  # The caller's state was neither donated nor updated.
  np.testing.assert_array_equal(np.array(state.params['conv1']['kernel']), before)
