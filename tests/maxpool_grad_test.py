"""benchmarks/maxpool_grad.py: the reshape-pool variant computes kernelscale's loss and
gradients, and drops the iota/reduce-window/scatter machinery of the max-pool gradient."""
import importlib.util
import os

import jax
import numpy as np

from kernelscale import data, models, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    'maxpool_grad', os.path.join(ROOT, 'benchmarks', 'maxpool_grad.py'))
mp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mp)


def test_reshape_pool_matches_kernelscale_loss_and_grads():
  base = models.build('seed', 3, 'SAME', 'float32')
  variant = mp.reshape_pool_net(3)
  state = train.create_state(base, 1e-3, jax.random.PRNGKey(0), data.SYNTHETIC_SHAPE)
  # Same layer names, same rng: the variant initialises to the very same parameters.
  v_state = train.create_state(variant, 1e-3, jax.random.PRNGKey(0), data.SYNTHETIC_SHAPE)
  jax.tree_util.tree_map(np.testing.assert_array_equal, state.params, v_state.params)
  batch = data.synthetic_batch(4, 0)
  grad = jax.grad(lambda p, m: train.loss_fn(p, m.apply, batch)[0])
  g_base, g_var = grad(state.params, base), grad(state.params, variant)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                         g_base, g_var)


def test_reshape_pool_drops_the_argmax_machinery():
  base = mp.pool_op_counts(models.build('seed', 3, 'SAME', 'float32'), 4)
  variant = mp.pool_op_counts(mp.reshape_pool_net(3), 4)
  # kernelscale: a scatter per pool gradient plus the cross-entropy's; the variant: that one.
  assert base['scatter'] >= 3 and base['iota'] > 0
  assert variant['scatter'] < base['scatter'] and variant['iota'] < base['iota']
