"""Analytic FLOPs against XLA's cost analysis, and the valid-tap count."""
import jax
import pytest

from kernelscale import data, flops, measure, models, train


def test_valid_taps_1d_by_hand():
  # SAME, 5 inputs, k=3: edges see 2 taps, the middle 3 see 3 -> 2+3+3+3+2.
  assert flops.valid_taps_1d(5, 3, 'SAME') == 13
  # VALID: every tap is real: (5-3+1) outputs x 3 taps.
  assert flops.valid_taps_1d(5, 3, 'VALID') == 9
  # k=1 never touches padding.
  assert flops.valid_taps_1d(7, 1, 'SAME') == 7


def _xla_flops(k, padding, batch):
  module = models.build('seed', k, padding, 'float32')
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), (28, 28, 1))
  batch = data.synthetic_batch(batch, 0)
  compiled = jax.jit(train.train_step).lower(state, batch).compile()
  cost, _ = measure.cost_analysis(compiled)
  return cost['xla_flops']


@pytest.mark.parametrize('k,padding', [(3, 'SAME'), (5, 'SAME'), (7, 'SAME'), (9, 'SAME'),
                                       (3, 'VALID'), (9, 'VALID')])
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
