"""Input pipeline: seeded shuffle, full batches, normalisation, prefetch to the device.

    batches = host_batches(images_u8, labels, 128, seed=0, epoch=e, mean=m, std=s)
    with Prefetcher(batches, depth=2) as it:
      for batch in it:                 # {'image': f32[B,H,W,C], 'label': i32[B]} on device
        state, metrics = step(state, batch)
    it.wait_s                          # seconds the host waited for a batch

The dataset lives in host memory as uint8 arrays (tfds_data caches them), so a
batch is a gather, a multiply-add and a device_put. A background thread does
that for the next `depth` batches while the step runs; `wait_s` measures what
is left over, i.e. how long the training loop was starved.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Iterable, Iterator

import jax
import numpy as np


def channel_stats(images_u8_NxHxWxC: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std of images scaled to [0, 1] (computed on the train split).

  Returns:
    (mean f32[C], std f32[C]); a constant channel gets std 1.
  """
  x = images_u8_NxHxWxC
  c = x.shape[-1]
  flat = x.reshape(-1, c)
  # Sums in float64 over uint8: exact, and no float copy of the whole set.
  n = flat.shape[0]
  s1 = flat.sum(axis=0, dtype=np.float64)
  s2 = np.einsum('ij,ij->j', flat, flat, dtype=np.float64)
  mean = s1 / n
  var = np.maximum(s2 / n - mean ** 2, 0.0)
  std = np.sqrt(var)
  std[std == 0] = 255.0
  return (mean / 255.0).astype(np.float32), (std / 255.0).astype(np.float32)


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
  """How many batches one pass over n examples yields."""
  return n // batch_size if drop_remainder else -(-n // batch_size)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
  """The example order of one epoch: a permutation that depends only on (seed, epoch)."""
  if not shuffle:
    return np.arange(n)
  return np.random.default_rng((seed, epoch)).permutation(n)


def host_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, *, seed: int,
                 epoch: int, mean: np.ndarray, std: np.ndarray, shuffle: bool = True,
                 drop_remainder: bool = True) -> Iterator[dict]:
  """One epoch of normalised numpy batches in the batch contract.

  Args:
    images: u8[N, H, W, C].
    labels: integer [N].
    batch_size: examples per batch.
    seed, epoch: the shuffle order depends on both and on nothing else.
    mean, std: per-channel, in [0, 1] units (see channel_stats).
    shuffle: False keeps the stored order (evaluation).
    drop_remainder: True yields only full batches, so every batch has the
      static shape the compiled step was built for.

  Yields:
    {'image': f32[B, H, W, C], 'label': i32[B]}.
  """
  order = epoch_order(len(labels), seed, epoch, shuffle)
  # (x / 255 - mean) / std as one multiply-add per pixel.
  scale = (1.0 / (255.0 * std)).astype(np.float32)
  shift = (mean / std).astype(np.float32)
  for b in range(num_batches(len(labels), batch_size, drop_remainder)):
    idx = order[b * batch_size:(b + 1) * batch_size]
    image = images[idx].astype(np.float32)
    image *= scale
    image -= shift
    yield {'image': image, 'label': labels[idx].astype(np.int32)}


class _Failed:
  def __init__(self, exc: BaseException):
    self.exc = exc


_DONE = object()


class Prefetcher:
  """Iterates `batches` with `depth` of them already on the device.

  A daemon thread pulls host batches, `jax.device_put`s them and queues them;
  the consumer's time blocked on the queue is `wait_s`. An exception in the
  thread is re-raised in the consumer. Use as a context manager (or call
  `close`) so a loop that stops early also stops the thread.
  """

  def __init__(self, batches: Iterable[dict], depth: int = 2, device=None):
    if depth < 1:
      raise ValueError(f'prefetch depth must be >= 1, got {depth}')
    self.wait_s = 0.0
    self.batches = 0
    self._queue: queue.Queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()
    self._device = device or jax.devices()[0]
    self._thread = threading.Thread(target=self._fill, args=(iter(batches),), daemon=True,
                                    name='kernelscale-prefetch')
    self._thread.start()

  def _put(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _fill(self, it: Iterator[dict]) -> None:
    try:
      for batch in it:
        if not self._put(jax.device_put(batch, self._device)):
          return
      self._put(_DONE)
    except BaseException as e:  # pylint: disable=broad-except
      # Handed to the consumer, which re-raises it where it can be seen.
      self._put(_Failed(e))

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    t0 = time.perf_counter()
    item = self._queue.get()
    self.wait_s += time.perf_counter() - t0
    if item is _DONE:
      self._queue.put(_DONE)  # later calls stop too
      raise StopIteration
    if isinstance(item, _Failed):
      raise item.exc
    self.batches += 1
    return item

  def close(self) -> None:
    """Stops the thread and drops what it queued."""
    self._stop.set()
    while True:
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._thread.join(timeout=5)
    try:
      self._queue.put_nowait(_DONE)  # next() after close ends instead of blocking
    except queue.Full:
      pass

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class Inline:
  """No prefetch: each batch is made and put on the device when asked for.

  The baseline that shows what the Prefetcher hides (benchmarks/input_wait.py);
  same interface, `wait_s` is the whole cost of making the batches.
  """

  def __init__(self, batches: Iterable[dict], device=None):
    self.wait_s = 0.0
    self.batches = 0
    self._it = iter(batches)
    self._device = device or jax.devices()[0]

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    t0 = time.perf_counter()
    try:
      batch = jax.block_until_ready(jax.device_put(next(self._it), self._device))
    finally:
      self.wait_s += time.perf_counter() - t0
    self.batches += 1
    return batch

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    pass
