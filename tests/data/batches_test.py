"""The input pipeline: seeded order, full batches, normalisation, prefetch that hides waiting."""
import threading

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


class _Clock:
  """batches' `time`: moves only when a producer or the consumer says it worked.

  Each read that starts a wait (the first of a pair: before and after the queue)
  releases `asked`, so a producer can begin a batch exactly when the consumer
  starts waiting for it. Nothing sleeps: the test does not depend on the machine's load.
  """

  def __init__(self):
    self.now = 0.0
    self.reads = 0
    self.asked = threading.Semaphore(0)
    self._lock = threading.Lock()

  def perf_counter(self):
    with self._lock:
      self.reads += 1
      if self.reads % 2:
        self.asked.release()
      return self.now

  def advance(self, secs):
    with self._lock:
      self.now += secs


def _batch():
  return {'image': np.zeros((1, 2, 2, 1), np.float32), 'label': np.zeros((1,), np.int32)}


def _producer(n, secs, clock, go, made):
  """n batches, each taking `secs` on the clock once `go` is released; counts them in `made`."""
  for _ in range(n):
    assert go.acquire(timeout=30), 'the consumer never asked for a batch'
    clock.advance(secs)
    yield _batch()
    with made:  # resumed: the batch just yielded is on the queue
      made.n += 1
      made.notify_all()


def _made():
  made = threading.Condition()
  made.n = 0
  return made


def test_wait_s_measures_starvation_and_prefetch_hides_it(monkeypatch):
  clock = _Clock()
  monkeypatch.setattr(batches, 'time', clock)
  # Producer slower than the consumer: each batch (0.04 s) is made only once the
  # consumer waits for it, so the consumer waits the producer's whole time.
  with batches.Prefetcher(_producer(5, 0.04, clock, clock.asked, _made())) as it:
    list(it)
  assert it.wait_s >= 0.15
  assert it.wait_s == pytest.approx(5 * 0.04)
  # Producer (0.01 s per batch) faster than the consumer (0.04 s per step): the
  # first batch is waited for, each later one is made while the step before it runs.
  clock = _Clock()
  monkeypatch.setattr(batches, 'time', clock)
  step, made = threading.Semaphore(0), _made()
  first = threading.Thread(target=lambda: clock.asked.acquire() and step.release(), daemon=True)
  first.start()  # batch 0 starts when the consumer first waits
  with batches.Prefetcher(_producer(8, 0.01, clock, step, made), depth=2) as it:
    for i, _ in enumerate(it):
      step.release()  # the producer makes the next batch during this step
      clock.advance(0.04)
      with made:
        # The next batch is on the queue before the step ends: prefetch hid it.
        assert made.wait_for(lambda: made.n >= min(i + 2, 8), timeout=30)
  first.join()
  assert it.wait_s < 0.1
  assert it.wait_s == pytest.approx(0.01)  # the first batch only
