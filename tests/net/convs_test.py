"""Every conv algorithm computes nn.Conv's function and gradients; auto's rule; labels."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernelscale.data import source
from kernelscale.measure import hlo, hlo_labels, timing
from kernelscale.net import convs, models, train
from kernelscale.report import markdown


def _grads(algo, x, w, padding):
  f = lambda x, w: jnp.sum(jnp.sin(convs.conv(algo, x, w, padding)))  # noqa: E731
  return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(x, w)


@pytest.mark.parametrize('algo', ['taps', 'dft', 'rows'])
# The first shape in the fast tier for every algorithm, the other shapes (each a compile) slow.
@pytest.mark.parametrize('hw,c_in,k,padding', [(9, 1, 3, 'SAME')] + [
    pytest.param(*case, marks=pytest.mark.slow) for case in [
        (9, 1, 4, 'SAME'), (8, 3, 5, 'SAME'), (8, 3, 1, 'SAME'),
        (9, 3, 3, 'VALID'), (8, 2, 4, 'VALID'), (7, 2, 7, 'VALID'),
        (16, 1, 9, 'SAME'), (17, 2, 6, 'VALID')]])  # rows: several tiles, a ragged last tile
def test_same_values_and_gradients_as_xla(algo, hw, c_in, k, padding):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, hw, hw, c_in))
  w = jax.random.normal(jax.random.PRNGKey(1), (k, k, c_in, 4))
  ref = convs.xla_conv(x, w, padding)
  got = convs.conv(algo, x, w, padding)
  assert got.shape == ref.shape
  np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5 * float(jnp.max(jnp.abs(ref))))
  (v_ref, g_ref), (v, g) = _grads('xla', x, w, padding), _grads(algo, x, w, padding)
  # The summed value: each of its terms may carry the elementwise error above (sin is
  # 1-Lipschitz), so its tolerance is absolute; a relative one fails on sums that cancel.
  np.testing.assert_allclose(v, v_ref, rtol=0, atol=2e-5 * float(jnp.max(jnp.abs(ref))) * ref.size)
  for a, b in zip(g, g_ref):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * float(jnp.max(jnp.abs(b))))


def test_dft_size_is_the_smallest_without_wraparound():
  # SAME, odd k: in + (k-1)/2; VALID: in. One less would wrap input into the output.
  assert convs.dft_size(14, 7, 'SAME') == 17 and convs.dft_size(14, 7, 'VALID') == 14
  assert convs.dft_size(14, 4, 'SAME') == 16  # even k pads 1 low, 2 high


def test_unknown_algorithm_and_padding_are_errors():
  x, w = jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 2))
  with pytest.raises(ValueError, match='conv algorithm'):
    convs.conv('winograd', x, w, 'SAME')
  with pytest.raises(ValueError, match='padding'):
    convs.conv('dft', x, w, 'FULL')


@pytest.mark.parametrize('platform,c_in,k,dtype,algo', [
    ('cpu', 1, 3, 'float32', 'taps'), ('cpu', 1, 5, 'float32', 'rows'),
    ('cpu', 1, 7, 'float32', 'rows'), ('cpu', 1, 9, 'float32', 'rows'),
    ('cpu', 3, 11, 'float32', 'rows'), ('cpu', 32, 3, 'float32', 'xla'),
    ('cpu', 32, 5, 'float32', 'dft'), ('cpu', 32, 11, 'float32', 'dft'),
    ('cpu', 32, 7, 'bfloat16', 'xla'), ('gpu', 32, 7, 'float32', 'xla'),
    ('tpu', 1, 3, 'float32', 'xla')])
def test_auto_rule(platform, c_in, k, dtype, algo):
  assert convs.choose(platform, c_in, k, dtype) == algo


def test_auto_model_has_nn_convs_parameters_and_function():
  plain = models.build('seed', 5, 'SAME', 'float32')
  auto = models.build('seed', 5, 'SAME', 'float32', conv_algo='auto', platform='cpu')
  assert models.layer_algos(plain) == {'conv1': 'xla', 'conv2': 'xla'}
  assert models.layer_algos(auto) == {'conv1': 'rows', 'conv2': 'dft'}
  x = source.synthetic_batch(4, 0)['image']
  params = plain.init(jax.random.PRNGKey(0), x)['params']
  params_auto = auto.init(jax.random.PRNGKey(0), x)['params']
  same_tree = jax.tree_util.tree_map(lambda a, b: a.shape == b.shape and bool(jnp.all(a == b)),
                                     params, params_auto)
  assert all(jax.tree_util.tree_leaves(same_tree))  # same names, shapes and initial values
  np.testing.assert_allclose(auto.apply({'params': params}, x), plain.apply({'params': params}, x),
                             rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match='conv_algo'):
    models.build('seed', 5, 'SAME', 'float32', conv_algo='fast')


def test_delta_section_flags_an_algorithm_switch_between_neighbouring_k():
  from kernelscale.report import delta  # pylint: disable=g-import-not-at-top
  rs = [{'status': 'ok', 'padding': 'SAME', 'kernel_size': k,
         'conv_algos': {'conv1': 'taps', 'conv2': a}} for k, a in ((3, 'xla'), (5, 'dft'), (7, 'dft'))]
  lines = delta._algo_switches(rs)  # pylint: disable=protected-access
  assert len([l for l in lines if l]) == 1 and 'k=3→5' in lines[0] and 'conv2 xla → dft' in lines[0]
  assert not delta._algo_switches([dict(r, conv_algos={'conv1': 'xla'}) for r in rs])  # pylint: disable=protected-access


def test_dft_layers_carry_their_layout_and_the_model_is_unchanged():
  # Two dft layers in a row: activations stay [W, H, B, C] between them (no
  # transpose pair), and the network still computes nn.Conv's function.
  plain = models.build('seed', 5, 'SAME', 'float32')
  both = plain.clone(conv_algos=('dft', 'dft'))
  x = source.synthetic_batch(4, 0)['image']
  params = plain.init(jax.random.PRNGKey(0), x)['params']
  np.testing.assert_allclose(both.apply({'params': params}, x), plain.apply({'params': params}, x),
                             rtol=1e-4, atol=1e-5)
  y = jnp.arange(2 * 4 * 6 * 3.0).reshape(2, 4, 6, 3)
  whbc = convs.to_layout(y, 'NHWC', 'WHBC')
  assert whbc.shape == (6, 4, 2, 3) and whbc[5, 3, 1, 2] == y[1, 3, 5, 2]
  np.testing.assert_array_equal(convs.to_layout(whbc, 'WHBC', 'NHWC'), y)
  np.testing.assert_array_equal(models.max_pool_2x2(whbc, 'WHBC'),
                                convs.to_layout(models.max_pool_2x2(y), 'NHWC', 'WHBC'))
  with pytest.raises(ValueError, match='layout'):
    convs.to_layout(y, 'NCHW', 'NHWC')
  with pytest.raises(ValueError, match='conv algorithm'):
    plain.clone(conv_algos=('xla', 'winograd')).init(jax.random.PRNGKey(0), x)


def test_auto_step_profiles_as_conv_phases_and_report_names_algorithms():
  module = models.build('seed', 5, 'SAME', 'float32', conv_algo='auto', platform='cpu')
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), source.SYNTHETIC_SHAPE)
  comp = timing.compile_aot(train.train_step, (state, source.synthetic_batch(4, 0)))['compiled']
  mod = hlo.parse(comp.as_text())
  labels = set(hlo_labels.op_labels(mod).values())
  assert {'conv1/forward', 'conv1/backward_filter', 'conv2/forward', 'conv2/backward',
          'pooling/forward', 'pooling/backward'} <= labels  # the pool's own gradient too
  assert not any(l.startswith('mixed/') for l in labels), labels
  rec = {'status': 'ok', 'kernel_size': 5, 'padding': 'SAME', 'conv_algo': 'auto',
         'conv_algos': models.layer_algos(module)}
  text = ' '.join(markdown.conv_algo_notes([rec]))
  assert 'conv2 dft' in text and 'conv1 rows' in text and 'conv_algo=auto' in text
  plain = dict(rec, conv_algo='xla', conv_algos={'conv1': 'xla', 'conv2': 'xla'})
  assert 'as written' in ' '.join(markdown.conv_algo_notes([plain]))
  auto_gpu = dict(rec, conv_algos={'conv1': 'xla', 'conv2': 'xla'})
  assert 'keeps it on this platform' in ' '.join(markdown.conv_algo_notes([auto_gpu]))
  # report.md warns that FLOP-based answers then describe the other algorithms.
  assert 'Read with care' in ' '.join(markdown._algo_caution([rec]))  # pylint: disable=protected-access
  assert not markdown._algo_caution([plain])  # pylint: disable=protected-access
