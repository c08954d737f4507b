"""Training for accuracy: one short real epoch end to end, records, the plot, the CLI."""
import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import accuracy
from kernelscale.data import source, prepare
from kernelscale.measure import sweep, training
from kernelscale.report import accuracy as report_accuracy


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACC = os.path.join(ROOT, 'experiments', 'accuracy.py')


def _config(**kw):
  # The accuracy experiment's fields (as a plain dict: tests set bad types on purpose).
  c = ml_collections.ConfigDict(accuracy.get_config().to_dict())
  c.update(dict(
      name='t', model='seed', kernel_sizes=(3,), paddings=('SAME',), batch_size=16,
      dtype='float32', precision='default', cpu_conv='auto', learning_rate=3e-3, seed=0, data='mnist', data_dir=None, download=False,
      cache_dir=None, epochs=1, prefetch=2, eval_batch_size=24, train_examples=64,
      warmup_steps=0, timed_steps=1))
  c.update(kw)
  return c


def _learnable_idx(folder, n_train=240, n_test=60):
  """IDX files whose label is where a bright bar sits: learnable in a few steps."""
  rng = np.random.default_rng(0)
  os.makedirs(folder, exist_ok=True)
  for split, n in (('train', n_train), ('test', n_test)):
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, l in enumerate(labels):
      images[i, 2 + 2 * l:4 + 2 * l, 4:24] = 255
    img, lab = prepare.IDX_FILES[split]
    prepare.write_idx(os.path.join(folder, img + '.gz'), images)
    prepare.write_idx(os.path.join(folder, lab + '.gz'), labels)


def _tiny_prepared(tmp_path, **kw):
  """(config, dataset): 40 learnable training images prepared offline, batch 20."""
  _learnable_idx(tmp_path / 'idx', n_train=40, n_test=20)
  prepare.prepare_from_idx('fashion_mnist', str(tmp_path / 'idx'), str(tmp_path / 'tfds'),
                           log=lambda s: None)
  config = _config(data='fashion_mnist', data_dir=str(tmp_path / 'tfds'), batch_size=20,
                   eval_batch_size=20, **kw)
  return config, source.load(config)


@pytest.mark.parametrize('kw,field', [
    ({'epochs': -1}, 'config.epochs'), ({'prefetch': 0}, 'config.prefetch'),
    ({'data': 'synthetic'}, 'config.data'), ({'data_dir': 3}, 'config.data_dir'),
    ({'eval_every': -5}, 'config.eval_every'), ({'target_accuracy': 1.5}, 'config.target_accuracy')])
def test_bad_training_fields(kw, field):
  with pytest.raises(sweep.ConfigError, match=field):
    sweep.validate(_config(**kw))


def test_cli_trains_learns_and_records_measured_times(tmp_path):
  # IDX files -> prepared TFDS -> run.py: 3 epochs of 12 steps, one compile.
  _learnable_idx(tmp_path / 'idx')
  prepare.prepare_from_idx('fashion_mnist', str(tmp_path / 'idx'), str(tmp_path / 'tfds'),
                           log=lambda s: None)
  wd = tmp_path / 'wd'
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  p = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'), f'--config={ACC}:quick',
                      '--config.kernel_sizes=3', '--config.batch_size=20', '--config.epochs=3',
                      '--config.learning_rate=0.003', f'--config.data_dir={tmp_path / "tfds"}',
                      '--config.eval_every=5', '--config.target_accuracy=0.9',
                      f'--workdir={wd}'], capture_output=True, text=True, cwd=ROOT, env=env,
                     timeout=300)
  assert p.returncode == 0, p.stderr
  (r,) = [json.loads(l) for l in open(wd / 'results.jsonl')]
  assert r['status'] == 'ok' and r['kernel_size'] == 3 and r['data'] == 'fashion_mnist'
  assert r['train_step_compiles'] == 1
  assert r['epochs'] == 3 and len(r['epoch_s_each']) == 3 and r['steps_per_epoch'] == 12
  assert r['epoch_s_kind'] == 'measured' and r['data_cache'] == 'miss'
  for key in ('train_loss', 'test_accuracy', 'epoch_s', 'data_wait_s', 'compute_s', 'compile_s'):
    assert isinstance(r[key], float), key
  assert r['epoch_s'] == pytest.approx(r['train_wall_s'] / 3)
  assert 0 <= r['data_wait_s'] < r['epoch_s'] and 0 < r['compute_s'] <= r['epoch_s']
  assert r['steps_timed'] == 3 * 12 - 1  # every step but the first
  assert r['test_examples'] == 60 and r['eval_compile_s'] > 0
  assert r['test_accuracy'] >= 0.9, r['test_accuracy']  # chance is 0.1
  assert r['train_loss'] < 1.0
  md = (wd / 'results.md').read_text()
  assert 'Accuracy against time' in md and (wd / report_accuracy.PLOT_FILE).exists()
  assert 'Steps to target: the first training step' in md and '| 0.9 reached' not in md
  assert f']({report_accuracy.PLOT_FILE})' in (wd / 'report.md').read_text()
  assert 'test accuracy' in p.stdout and '0.9 reached after' in p.stdout
  assert 'other_cpu_share' in r
  # The curve: every 5 steps across the 3 epochs, then after the last (36th) step.
  assert [p[0] for p in r['accuracy_curve']] == [5, 10, 15, 20, 25, 30, 35, 36]
  assert r['accuracy_curve'][-1][2] == r['test_accuracy']
  assert r['steps_to_target'] is not None and r['steps_to_target'] % 5 in (0, 1)
  first = next(p for p in r['accuracy_curve'] if p[2] >= 0.9)
  assert [r['steps_to_target'], r['train_s_to_target']] == first[:2]
  assert r['curve_eval_s'] > 0 and r['optimizer_update_s'] > 0
  assert (r['input_hw'], r['input_channels']) == (28, 1)


def test_training_records_other_load_around_the_epochs(tmp_path, monkeypatch):
  import time  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import timing  # pylint: disable=g-import-not-at-top
  config, dset = _tiny_prepared(tmp_path)
  pt = sweep.validate(config)[0]
  # Fake counters: another process keeps every CPU busy the whole time (read a few
  # microseconds apart from the wall clock, hence the tolerance), then nobody does.
  monkeypatch.setattr(timing, 'MIN_LOAD_TICKS', 0)
  monkeypatch.setattr(timing, 'host_cpu_busy',
                      lambda *a, **k: (time.perf_counter() * 2 + time.process_time(), 2))
  assert training.train_point(pt, config, dset)['other_cpu_share'] == pytest.approx(1.0, abs=0.01)
  monkeypatch.setattr(timing, 'host_cpu_busy', lambda *a, **k: (time.process_time(), 2))
  assert training.train_point(pt, config, dset)['other_cpu_share'] == pytest.approx(0, abs=0.01)


def test_sweep_mode_on_cifar10_shapes(tmp_path):
  # Step-timing mode on a 32x32x3 dataset: the model, the analytic FLOPs and
  # the parameter count all follow the dataset's features.
  config = _config(epochs=0, timed_steps=2, warmup_steps=0, data='cifar10')
  with tfds.testing.mock_data(num_examples=32):
    assert sweep._input_hw_c(source.spec(config)) == (32, 3)
    rec = sweep.measure_point(sweep.validate(config)[0], config)
  assert rec['epoch_s_kind'] == 'projected' and rec['steps_timed'] == 2
  assert not any('analytic params' in n for n in rec['notes']), rec['notes']
  assert rec['params'] == 3 * 3 * 3 * 32 + 32 + 3 * 3 * 32 * 64 + 64 + 8 * 8 * 64 * 128 + 128 + 1290
  assert rec['xla_flops'] == pytest.approx(rec['analytic_flops'], rel=0.02)


def test_accuracy_curve_finds_the_first_crossing_and_keeps_evaluation_out_of_the_clock():
  import time  # pylint: disable=g-import-not-at-top
  accs = iter([0.5, 0.8, 0.7, 0.95])
  def slow_eval(state):
    time.sleep(0.05)
    return next(accs)
  curve = training.AccuracyCurve(2, 0.75, slow_eval)

  class Loader:
    wait_s = 0.0
    def __enter__(self):
      return self
    def __iter__(self):
      return iter([{}] * 4)
    def __exit__(self, *a):
      return False
  step = lambda state, batch: (state, {'loss': 1.0, 'accuracy': 0.5})  # noqa: E731
  for _ in range(2):
    _, ep = training.train_epoch(step, None, Loader, probe=curve.probe)
    curve.end_epoch(len(ep['step_s']), ep['epoch_s'])
    # Two evaluations of 50 ms each per epoch, all outside the epoch's clock.
    assert ep['probe_s'] >= 0.1 and ep['epoch_s'] < 0.05
  f = curve.fields(final_accuracy=0.95)
  assert [p[0] for p in f['accuracy_curve']] == [2, 4, 6, 8]  # the last step was evaluated
  assert f['steps_to_target'] == 4 and f['train_s_to_target'] < 0.05
  never = training.AccuracyCurve(0, 0.99, slow_eval).fields(final_accuracy=0.9)
  assert never['accuracy_curve'] == [[0, 0.0, 0.9]] and never['steps_to_target'] is None
  assert '0.9000 at best' in never['steps_to_target_why']


def test_training_skips_a_point_that_would_not_fit_in_memory(tmp_path, monkeypatch):
  from kernelscale.measure import memguard  # pylint: disable=g-import-not-at-top
  config, dset = _tiny_prepared(tmp_path)
  pt = sweep.validate(config)[0]
  # Too little memory for the train state: refused before it is allocated.
  monkeypatch.setattr(memguard, 'available_bytes', lambda: 10 ** 6)
  with pytest.raises(memguard.DoesNotFit, match='train state'):
    training.train_point(pt, config, dset)
  # Enough for the state (4 copies of 0.42 M parameters) but not for the compiled step.
  monkeypatch.setattr(memguard, 'available_bytes', lambda: 8 * 10 ** 6)
  with pytest.raises(memguard.DoesNotFit, match='compiled step'):
    training.train_point(pt, config, dset)


def test_each_repeat_trains_with_its_own_seed(tmp_path):
  import dataclasses  # pylint: disable=g-import-not-at-top
  config, dset = _tiny_prepared(tmp_path, seed=5, repeats=2)
  pts = sweep.validate(config)
  assert [p.repeat for p in pts] == [0, 1]
  a, b = (training.train_point(p, config, dset) for p in pts)
  assert (a['seed'], b['seed']) == (5, 6)
  assert a['final_loss'] != b['final_loss']  # other initial weights and batch order
  again = training.train_point(dataclasses.replace(pts[1]), config, dset)
  assert again['final_loss'] == b['final_loss']  # and the same seed trains the same
