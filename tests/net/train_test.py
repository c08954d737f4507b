"""The train step: lowers the loss on a fixed batch, compiles once per point."""
import jax

from kernelscale.data import source
from kernelscale.measure import timing
from kernelscale.net import models, train


def test_train_step_lowers_loss_on_fixed_batch():
  module = models.build('seed', 3, 'SAME', 'float32')
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), (28, 28, 1))
  batch = source.synthetic_batch(16, 0)
  step = jax.jit(train.train_step, donate_argnums=(0,))
  state, m0 = step(state, batch)
  for _ in range(20):
    state, m = step(state, batch)
  assert float(m['loss']) < 0.5 * float(m0['loss'])
  assert int(state.step) == 21


def test_compile_aot_compiles_once_and_steps_do_not_recompile():
  module = models.build('seed', 5, 'VALID', 'float32')
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), (28, 28, 1))
  batch = source.synthetic_batch(8, 0)
  with timing.backend_compile_events() as events:
    comp = timing.compile_aot(train.train_step, (state, batch))
    state, _, first, times, _ = timing.run_steps(comp['compiled'], state, batch, 2, 4)
  assert [n for n, _ in events].count('jit(train_step)') == 1
  assert comp['monitor_compile_s'] is not None and comp['monitor_compile_s'] > 0
  assert len(times) == 4 and first > 0
  stats = timing.step_stats(times)
  assert stats['step_s_p10'] <= stats['step_s_median'] <= stats['step_s_p90']


def test_synthetic_batch_contract_and_seed():
  a = source.synthetic_batch(4, 1)
  b = source.synthetic_batch(4, 1)
  assert a['image'].shape == (4, 28, 28, 1) and a['image'].dtype == 'float32'
  assert a['label'].shape == (4,) and a['label'].dtype == 'int32'
  assert (a['image'] == b['image']).all()
