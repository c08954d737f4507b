"""Batches for the train step. Every source yields the same contract:

    {'image': f32[B, H, W, C], 'label': i32[B]}   with static shapes.

`synthetic` (the default) needs no files and no network.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

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
