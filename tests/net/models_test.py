"""Seed network: parameter counts per k and the shape check before compile."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from kernelscale.net import flops, models, shapes


def _hand_params(k, padding):
  # conv1: k*k*1*32 + 32; conv2: k*k*32*64 + 64; dense1: flat*128 + 128; dense2: 128*10 + 10.
  hw = 28
  if padding == 'SAME':
    flat_hw = 7
  else:
    p1 = (hw - k + 1) // 2
    flat_hw = (p1 - k + 1) // 2
  return (k * k * 32 + 32) + (k * k * 32 * 64 + 64) + (flat_hw ** 2 * 64 * 128 + 128) + 1290


@pytest.mark.parametrize('padding', ['SAME', 'VALID'])
@pytest.mark.parametrize('k', [1, 3, 5, 7, 9])
def test_param_count_per_k(k, padding):
  module = models.build('seed', k, padding, 'float32')
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
  n = sum(x.size for x in jax.tree_util.tree_leaves(shapes))
  assert n == _hand_params(k, padding)
  assert flops.param_count((32, 64), k, padding) == n


def test_seed_k3_same_exact():
  assert flops.param_count((32, 64), 3, 'SAME') == 421_642


def test_valid_kernel_too_big_names_layer_input_and_largest():
  with pytest.raises(shapes.ShapeError) as e:
    models.build('seed', 11, 'VALID', 'float32')
  msg = str(e.value)
  assert 'conv2' in msg and '9x9' in msg


def test_valid_k9_fits_k10_does_not():
  models.build('seed', 9, 'VALID', 'float32')
  with pytest.raises(shapes.ShapeError):
    models.build('seed', 10, 'VALID', 'float32')


def test_same_any_kernel_fits():
  models.build('seed', 31, 'SAME', 'float32')


def test_forward_shape():
  module = models.build('seed', 5, 'SAME', 'float32')
  x = jnp.zeros((4, 28, 28, 1))
  params = module.init(jax.random.PRNGKey(0), x)
  assert module.apply(params, x).shape == (4, 10)


@pytest.mark.parametrize('shape', [(3, 6, 6, 4), (2, 7, 5, 3)])  # even, and odd sizes (VALID drops)
@pytest.mark.parametrize('ties', [False, True])
@pytest.mark.parametrize('layout', ['NHWC', 'WHBC'])
def test_max_pool_has_nn_max_pools_values_and_gradient(shape, ties, layout):
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from kernelscale.net import convs  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = rng.standard_normal(shape).astype(np.float32)
  if ties:  # whole windows of one value, and ties between some elements
    x = np.round(x)
    x[:, :3] = 0.5
  g = rng.standard_normal((shape[0], shape[1] // 2, shape[2] // 2, shape[3])).astype(np.float32)
  want_y, vjp = jax.vjp(lambda v: nn.max_pool(v, (2, 2), (2, 2)), jnp.asarray(x))
  want_dx = vjp(jnp.asarray(g))[0]
  to, back = (lambda a: convs.to_layout(jnp.asarray(a), 'NHWC', layout)), (
      lambda a: convs.to_layout(a, layout, 'NHWC'))
  y, vjp = jax.vjp(lambda v: models.max_pool_2x2(v, layout), to(x))
  dx = back(vjp(to(g))[0])
  # Exactly: each window's gradient goes to its first maximum, as reduce_window's does.
  np.testing.assert_array_equal(back(y), want_y)
  np.testing.assert_array_equal(dx, want_dx)
  if ties:
    assert int((np.asarray(dx) != 0).sum()) == g.size - int((g == 0).sum())  # one element per window


# --------------------------------------------------------------------------
# Same receptive field, other designs (shapes.BLOCKS)

DESIGNS = [m for m in models.MODELS if m != 'seed']


@pytest.mark.parametrize('padding', ['SAME', 'VALID'])
@pytest.mark.parametrize('k', [3, 5, 7])
@pytest.mark.parametrize('model', DESIGNS)
def test_designs_params_and_conv_names_match_conv_ops(model, k, padding):
  module = models.build(model, k, padding, 'float32')
  x = jnp.zeros((2, 28, 28, 1))
  params = module.init(jax.random.PRNGKey(0), x)['params']
  assert module.apply({'params': params}, x).shape == (2, 10)
  n = sum(v.size for v in jax.tree_util.tree_leaves(params))
  block = shapes.block_of(model)
  assert flops.param_count((32, 64), k, padding, block=block) == n
  ops = shapes.conv_ops((32, 64), k, padding, 28, 1, block)
  assert sorted(o.name for o in ops) == sorted(p for p in params if p.startswith('conv'))
  for o in ops:
    assert params[o.name]['kernel'].shape == (*o.kernel, o.c_in // o.groups, o.c_out)


class _Block(nn.Module):
  block: str
  k: int

  @nn.compact
  def __call__(self, x):
    ops = shapes.layer_ops('conv2', x.shape[1], x.shape[-1], 8, self.k, 'SAME', self.block)
    return models.apply_ops(x, ops, 'SAME', jnp.float32)


# k=5 in the fast tier (dilated differs from plain there), the other sizes slow.
@pytest.mark.parametrize('k', [pytest.param(3, marks=pytest.mark.slow), 5,
                               pytest.param(7, marks=pytest.mark.slow)])
@pytest.mark.parametrize('block', ['plain', 'stacked', 'separable', 'spatial', 'dilated'])
def test_each_design_sees_exactly_a_k_by_k_window(block, k):
  # The centre output's gradient with respect to the input is non-zero only
  # inside the k x k window around it: every tap of it for the dense designs,
  # the 3 x 3 taps spread over it for the dilated one.
  if block == 'plain':
    mod = nn.Conv(8, (k, k), padding='SAME')
  else:
    mod = _Block(block, k)
  x = jax.random.uniform(jax.random.PRNGKey(1), (1, 15, 15, 4)) + 0.5
  params = mod.init(jax.random.PRNGKey(0), x)
  g = jax.grad(lambda x_: mod.apply(params, x_)[0, 7, 7].sum())(x)
  support = {(int(i), int(j)) for i, j in zip(*jnp.nonzero(jnp.abs(g[0]).sum(-1)))}
  r = (k - 1) // 2
  if block == 'dilated':
    want = {(7 + a * r, 7 + b * r) for a in (-1, 0, 1) for b in (-1, 0, 1)}
  else:
    want = {(i, j) for i in range(7 - r, 8 + r) for j in range(7 - r, 8 + r)}
  assert support == want


def test_designs_refuse_what_they_cannot_build():
  for model in ('seed_stacked', 'seed_dilated'):
    for k in (1, 4):
      with pytest.raises(shapes.ShapeError, match='odd'):
        models.build(model, k, 'SAME', 'float32')
  models.build('seed_spatial', 4, 'SAME', 'float32')  # k x 1 and 1 x k take any k
  with pytest.raises(ValueError, match='conv_algo'):
    models.build('seed_separable', 5, 'SAME', 'float32', conv_algo='auto')
