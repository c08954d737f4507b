"""Train state and the pure train step (Adam, softmax cross-entropy).

The step is a module-level function of (state, batch); callers jit it with the
state donated (`donate_argnums=(0,)`) and always rebind the returned state.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """flax's TrainState: step, params, opt_state; apply_fn and tx are static."""


def create_state(module: nn.Module, learning_rate: float, rng: jax.Array,
                 image_shape: tuple[int, ...]) -> TrainState:
  """Initialises parameters from a one-example dummy input and an Adam state."""
  params = module.init(rng, jnp.zeros((1,) + tuple(image_shape), jnp.float32))['params']
  return TrainState.create(apply_fn=module.apply, params=params,
                           tx=optax.adam(learning_rate))


def loss_fn(params, apply_fn, batch):
  logits = apply_fn({'params': params}, batch['image'])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
  return loss, logits


def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
  """One Adam step on one batch. Returns the new state and {'loss', 'accuracy'}."""
  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params, state.apply_fn, batch)
  state = state.apply_gradients(grads=grads)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
  return state, {'loss': loss, 'accuracy': accuracy}


def eval_step(state: TrainState, batch: dict) -> dict:
  """Loss and number of correct predictions on one batch (no update)."""
  loss, logits = loss_fn(state.params, state.apply_fn, batch)
  correct = jnp.sum(jnp.argmax(logits, -1) == batch['label'])
  return {'loss': loss, 'correct': correct}


# --- data parallel: one Mesh axis 'data'; the batch is split on it, the state replicated.

DATA_AXIS = 'data'


def make_mesh(n_devices: int) -> jax.sharding.Mesh:
  """A 1-D Mesh of `n_devices` global devices, as many from each process, axis 'data'.

  Raises:
    ValueError: when fewer devices exist than asked for.
  """
  devs = jax.devices()
  if n_devices > len(devs):
    raise ValueError(f'{n_devices} devices asked for, {len(devs)} exist')
  procs = jax.process_count()
  if n_devices % procs:
    raise ValueError(f'{n_devices} devices do not split over {procs} processes')
  # The same number from every process: each one takes part in every step.
  mine = [d for p in range(procs) for d in
          [d for d in devs if d.process_index == p][:n_devices // procs]]
  return jax.sharding.Mesh(np.array(mine), (DATA_AXIS,))


def _put(x, sharding):
  """A global array from a host value every process holds in full (same seed, same data)."""
  x = np.asarray(jax.device_get(x))
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def shard_for_data_parallel(mesh: jax.sharding.Mesh, state: TrainState,
                            batch: dict) -> tuple[TrainState, dict]:
  """The state replicated on every mesh device, the batch split on its leading axis.

  jit then compiles the unchanged `train_step` for the mesh: each device computes
  its shard's gradients and XLA inserts the all-reduce that averages them (the
  loss is a mean over the global batch).
  """
  P = jax.sharding.PartitionSpec
  rep = jax.sharding.NamedSharding(mesh, P())
  split = jax.sharding.NamedSharding(mesh, P(DATA_AXIS))
  state = jax.tree_util.tree_map(lambda x: _put(x, rep), state)
  batch = {k: _put(v, split) for k, v in batch.items()}
  return state, batch
