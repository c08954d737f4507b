"""Analytic FLOPs against XLA's cost analysis, and the valid-tap count."""
import jax
import pytest

from kernelscale.data import source
from kernelscale.measure import timing
from kernelscale.net import flops, models, shapes, train


def test_valid_taps_1d_by_hand():
  # SAME, 5 inputs, k=3: edges see 2 taps, the middle 3 see 3 -> 2+3+3+3+2.
  assert flops.valid_taps_1d(5, 3, 'SAME') == 13
  # VALID: every tap is real: (5-3+1) outputs x 3 taps.
  assert flops.valid_taps_1d(5, 3, 'VALID') == 9
  # k=1 never touches padding.
  assert flops.valid_taps_1d(7, 1, 'SAME') == 7
  # 3 taps, dilation 2 (span 5), SAME on 5 inputs: taps at o-2, o, o+2 -> 2+2+3+2+2.
  assert flops.valid_taps_1d(5, 3, 'SAME', dilation=2) == 11
  # VALID: one output, all 3 taps real.
  assert flops.valid_taps_1d(5, 3, 'VALID', dilation=2) == 3


def _xla_flops(k, padding, batch, model='seed'):
  module = models.build(model, k, padding, 'float32')
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), (28, 28, 1))
  batch = source.synthetic_batch(batch, 0)
  compiled = jax.jit(train.train_step).lower(state, batch).compile()
  cost, _ = timing.cost_analysis(compiled)
  return cost['xla_flops']


# One shape in the fast tier; the others (a train-step compile each) slow.
@pytest.mark.parametrize('k,padding', [(3, 'SAME')] + [
    pytest.param(*case, marks=pytest.mark.slow)
    for case in [(5, 'SAME'), (7, 'SAME'), (9, 'SAME'), (3, 'VALID'), (9, 'VALID')]])
def test_analytic_matches_xla_within_2pct(k, padding):
  batch = 16
  analytic = flops.summarize(flops.layer_flops((32, 64), k, padding, batch))['analytic_flops']
  xla = _xla_flops(k, padding, batch)
  assert abs(analytic - xla) / xla < 0.02, (analytic, xla)


def test_conv1_has_no_backward_input():
  d = flops.layer_flops((32, 64), 3, 'SAME', 8)
  assert 'conv1/backward_input' not in d
  assert d['conv2/backward_input'] == d['conv2/forward'] == d['conv2/backward_filter']


def test_valid_flops_fall_after_k5():
  tot = {k: flops.summarize(flops.layer_flops((32, 64), k, 'VALID', 128))['analytic_flops']
         for k in (3, 5, 7, 9)}
  assert tot[5] > tot[7] > tot[9]


@pytest.mark.parametrize('model,k,padding', [('seed_stacked', 5, 'SAME')] + [
    pytest.param(*case, marks=pytest.mark.slow) for case in [
        ('seed_stacked', 7, 'VALID'), ('seed_spatial', 4, 'SAME'),
        ('seed_spatial', 7, 'VALID'), ('seed_dilated', 7, 'SAME'), ('seed_dilated', 5, 'VALID')]])
def test_designs_analytic_matches_xla_within_2pct(model, k, padding):
  block = shapes.block_of(model)
  analytic = flops.summarize(flops.layer_flops((32, 64), k, padding, 16, block=block))
  xla = _xla_flops(k, padding, 16, model)
  assert abs(analytic['analytic_flops'] - xla) / xla < 0.02, (analytic, xla)


def test_separable_counted_by_hand():
  # conv2 at k=5, SAME on 14x14x32 -> 64: depthwise 5x5 (one filter per channel)
  # and a 1x1 conv. conv1 stays a plain 5x5 conv.
  B, t = 8, flops.valid_taps_1d(14, 5, 'SAME') ** 2
  d = flops.layer_flops((32, 64), 5, 'SAME', B, block='separable')
  assert d['conv2dw/forward'] == d['conv2dw/backward_filter'] == 2 * B * t * 32
  assert d['conv2pw/forward'] == 2 * B * 14 * 14 * 32 * 64
  assert d['conv1/forward'] == flops.layer_flops((32, 64), 5, 'SAME', B)['conv1/forward']
  assert 'conv2/forward' not in d


def test_xla_cpu_computes_the_depthwise_filter_gradient_densely():
  # What this jaxlib's XLA:CPU does (the report's "XLA / model FLOPs"): the
  # depthwise conv's filter gradient runs as a dense 32 -> 32 conv, 32 times its
  # work; everything else matches the count.
  if jax.default_backend() != 'cpu':
    pytest.skip('XLA:CPU only')
  B, k = 16, 5
  d = flops.layer_flops((32, 64), k, 'SAME', B, block='separable')
  dense_extra = 31 * d['conv2dw/backward_filter']
  xla = _xla_flops(k, 'SAME', B, 'seed_separable')
  want = flops.summarize(d)['analytic_flops'] + dense_extra
  assert abs(xla - want) / xla < 0.02, (xla, want)


@pytest.mark.parametrize('block,k,padding,hw,c', [
    ('separable', 5, 'VALID', 28, 1), ('separable', 4, 'SAME', 28, 1),
    ('separable', 5, 'SAME', 32, 3), ('stacked', 7, 'SAME', 32, 3),
    ('spatial', 4, 'VALID', 28, 1), ('dilated', 7, 'VALID', 32, 3)])
def test_design_param_counts_for_other_inputs_and_even_k(block, k, padding, hw, c):
  model = 'seed' if block == 'plain' else f'seed_{block}'
  module = models.build(model, k, padding, 'float32', hw, c)
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), jax.numpy.zeros((1, hw, hw, c)))
  n = sum(x.size for x in jax.tree_util.tree_leaves(shapes))
  assert flops.param_count((32, 64), k, padding, hw, c, block=block) == n
