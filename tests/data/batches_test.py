"""The input pipeline: seeded order, full batches, normalisation, prefetch that hides waiting."""
import time

import jax
import numpy as np
import pytest

from kernelscale.data import batches


def _data(n=10, hw=4, c=3, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, size=(n, hw, hw, c), dtype=np.uint8),
          np.arange(n, dtype=np.int64))


def _labels(batches):
  return [b['label'].tolist() for b in batches]


def test_order_depends_on_seed_and_epoch_only():
  x, y = _data(50)
  m, s = batches.channel_stats(x)
  run = lambda seed, epoch: _labels(batches.host_batches(x, y, 8, seed=seed, epoch=epoch,
                                                          mean=m, std=s))
  assert run(0, 0) == run(0, 0)
  assert run(0, 0) != run(0, 1) and run(0, 0) != run(1, 0)
  flat = sum(run(3, 2), [])
  assert len(set(flat)) == len(flat) == 48  # a permutation, remainder dropped


def test_drop_remainder_and_eval_order():
  x, y = _data(10)
  m, s = batches.channel_stats(x)
  full = list(batches.host_batches(x, y, 4, seed=0, epoch=0, mean=m, std=s))
  assert [b['image'].shape for b in full] == [(4, 4, 4, 3)] * 2 == [(4, 4, 4, 3)] * \
      batches.num_batches(10, 4)
  ev = list(batches.host_batches(x, y, 4, seed=0, epoch=0, mean=m, std=s, shuffle=False,
                                  drop_remainder=False))
  assert _labels(ev) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
  assert batches.num_batches(10, 4, drop_remainder=False) == 3


def test_normalisation_contract():
  x, y = _data(64, c=3)
  x[..., 2] = 7  # a constant channel must not divide by zero
  m, s = batches.channel_stats(x)
  np.testing.assert_allclose(m[:2], x[..., :2].reshape(-1, 2).mean(0) / 255, rtol=1e-5)
  (b,) = batches.host_batches(x, y, 64, seed=0, epoch=0, mean=m, std=s)
  assert b['image'].dtype == np.float32 and b['label'].dtype == np.int32
  np.testing.assert_allclose(b['image'][..., :2].mean(axis=(0, 1, 2)), 0, atol=1e-4)
  np.testing.assert_allclose(b['image'][..., :2].std(axis=(0, 1, 2)), 1, atol=1e-3)
  assert np.isfinite(b['image']).all()


def test_prefetcher_yields_the_same_batches_on_device():
  x, y = _data(30)
  m, s = batches.channel_stats(x)
  host = list(batches.host_batches(x, y, 4, seed=1, epoch=0, mean=m, std=s))
  with batches.Prefetcher(batches.host_batches(x, y, 4, seed=1, epoch=0, mean=m, std=s),
                           depth=2) as it:
    dev = list(it)
  assert it.batches == len(dev) == len(host) == 7
  for h, d in zip(host, dev):
    assert isinstance(d['image'], jax.Array)
    np.testing.assert_array_equal(np.asarray(d['image']), h['image'])
    np.testing.assert_array_equal(np.asarray(d['label']), h['label'])
  with pytest.raises(StopIteration):
    next(it)


def test_prefetcher_reraises_producer_errors():
  def bad():
    yield {'image': np.zeros((1, 2, 2, 1), np.float32), 'label': np.zeros((1,), np.int32)}
    raise RuntimeError('broken reader')
  with batches.Prefetcher(bad()) as it:
    next(it)
    with pytest.raises(RuntimeError, match='broken reader'):
      next(it)


def test_prefetcher_close_stops_an_endless_producer():
  def endless():
    while True:
      yield {'image': np.zeros((1, 2, 2, 1), np.float32), 'label': np.zeros((1,), np.int32)}
  it = batches.Prefetcher(endless(), depth=2)
  next(it)
  it.close()
  assert not it._thread.is_alive()


def _sleepy(n, secs):
  for _ in range(n):
    time.sleep(secs)
    yield {'image': np.zeros((1, 2, 2, 1), np.float32), 'label': np.zeros((1,), np.int32)}


def test_wait_s_measures_starvation_and_prefetch_hides_it():
  # Producer slower than the consumer: the consumer waits ~ the producer's time.
  with batches.Prefetcher(_sleepy(5, 0.04)) as it:
    list(it)
  assert it.wait_s >= 0.15
  # Producer (0.01 s per batch) faster than the consumer (0.04 s per step): after
  # the first batch, the next one is always ready.
  with batches.Prefetcher(_sleepy(8, 0.01), depth=2) as it:
    for _ in it:
      time.sleep(0.04)
  assert it.wait_s < 0.1
