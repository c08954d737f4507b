"""Train state and the pure train step (Adam, softmax cross-entropy).

The step is a module-level function of (state, batch); callers jit it with the
state donated (`donate_argnums=(0,)`) and always rebind the returned state.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
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
