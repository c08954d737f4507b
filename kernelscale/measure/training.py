"""Accuracy against kernel size: train each point for E epochs on a real dataset.

Kernel size is a trade of time against accuracy; this measures both, end to
end, with the real input pipeline. Per point: compile once (AOT, state
donated), train E epochs with `kernelscale.data.batches` prefetching batches to the
device, then evaluate the whole test split. Every time is measured, never
projected: `epoch_s` is the wall time of an epoch (mean over the E epochs),
split into `data_wait_s` (the host blocked waiting for a batch) and
`compute_s` (dispatch to result of each step, blocked).

`sweep.run` calls `train_point` instead of `sweep.measure_point` when
`config.epochs > 0`; `results_md_section` adds the accuracy-against-time plot
to results.md.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from kernelscale import progress
from kernelscale.data import source, batches
from kernelscale.measure import memguard, timing
from kernelscale.net import flops, models, train




def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def validate(config) -> None:
  """Checks the training-mode fields (epochs > 0 only).

  Raises:
    ValueError: naming the field.
  """
  for field, low in (('epochs', 1), ('prefetch', 1), ('eval_batch_size', 1), ('eval_every', 0)):
    v = config[field]
    if not _is_int(v) or v < low:
      raise ValueError(f'config.{field}: {v!r} is not an integer >= {low}')
  t = config.target_accuracy
  if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 1:
    raise ValueError(f'config.target_accuracy: {t!r} is not a number in (0, 1]')
  if config.data == 'synthetic':
    raise ValueError('config.data: training for accuracy needs a real dataset, not '
                     '"synthetic"; e.g. --config.data=fashion_mnist')


def _batch_shape(batch_size: int, image_shape) -> dict:
  return {'image': jax.ShapeDtypeStruct((batch_size,) + tuple(image_shape), jnp.float32),
          'label': jax.ShapeDtypeStruct((batch_size,), jnp.int32)}


def _evaluate(state, dset: source.Dataset, batch_size: int, compiled: dict, prefetch: int):
  """Loss and accuracy on the whole test split; compiled[b] is eval_step for batch size b."""
  n = len(dset.test_labels)
  correct, loss_sum = 0, 0.0
  test_batches = batches.host_batches(dset.test_images, dset.test_labels, batch_size, seed=0,
                                  epoch=0, mean=dset.mean, std=dset.std, shuffle=False,
                                  drop_remainder=False)
  with batches.Prefetcher(test_batches, depth=prefetch) as it:
    for batch in it:
      b = batch['label'].shape[0]
      m = compiled[b](state, batch)
      correct += int(m['correct'])
      loss_sum += float(m['loss']) * b
  return correct / n, loss_sum / n


def train_epoch(step, state, make_loader, on_step=None, probe=None):
  """One pass of the compiled `step` over the batches of `make_loader()`, timed end to end.

  The loader is made inside the clock (a prefetch thread's start-up is part of
  the epoch) and must expose `wait_s`. Each step is blocked, so compute_s is
  the steps' own time and epoch_s - data_wait_s - compute_s is loop overhead.
  The time spent inside `probe` (the accuracy curve's evaluations) is kept out
  of epoch_s, so an epoch costs the same with or without a curve.

  Args:
    step: compiled train step, (state, batch) -> (state, metrics); state donated.
    state: the train state (rebind the returned one).
    make_loader: () -> iterator of device batches with a `wait_s` attribute.
    on_step: called after each step (the progress bar): outside the step's own clock, inside
      the epoch's (tqdm throttles its redraws; an update costs microseconds).
    probe: called after each step as probe(state, steps done this epoch, training seconds
      this epoch so far); its own time is kept out of epoch_s and returned as probe_s.

  Returns:
    (state, {'epoch_s', 'data_wait_s', 'compute_s', 'probe_s', 'step_s': [..], 'loss': [..],
    'accuracy': [..]}).
  """
  step_s, losses, accs = [], [], []
  probe_s = 0.0
  t0 = time.perf_counter()
  with make_loader() as it:
    for batch in it:
      ts = time.perf_counter()
      state, metrics = step(state, batch)
      jax.block_until_ready((state, metrics))
      step_s.append(time.perf_counter() - ts)
      losses.append(float(metrics['loss']))
      accs.append(float(metrics['accuracy']))
      if on_step is not None:
        on_step()
      if probe is not None:
        tp = time.perf_counter()
        probe(state, len(step_s), tp - t0 - probe_s)
        probe_s += time.perf_counter() - tp
  epoch = time.perf_counter() - t0 - probe_s
  return state, {'epoch_s': epoch, 'data_wait_s': it.wait_s, 'compute_s': float(sum(step_s)),
                 'probe_s': probe_s, 'step_s': step_s, 'loss': losses, 'accuracy': accs}


class AccuracyCurve:
  """Test accuracy every `every` training steps, and the first step that reaches `target`.

  Kernel size could change how many steps training needs as well as how long
  each takes; this measures the first (claim 5's second part). The whole test
  split is evaluated each time, so the curve and the final test_accuracy are
  one measurement. Train seconds exclude the evaluations.
  """

  def __init__(self, every: int, target: float, evaluate):
    self.every, self.target, self.evaluate = every, target, evaluate
    self.points: list[list] = []  # [step, train seconds, test accuracy]
    self.done_s = 0.0  # training seconds of the finished epochs
    self.steps_done = 0

  def probe(self, state, step_in_epoch: int, train_s: float) -> None:
    step = self.steps_done + step_in_epoch
    if self.every and step % self.every == 0:
      self.points.append([step, self.done_s + train_s, self.evaluate(state)])

  def end_epoch(self, steps: int, epoch_s: float) -> None:
    self.steps_done += steps
    self.done_s += epoch_s

  def fields(self, final_accuracy: float) -> dict:
    """Record fields: the curve (with the final evaluation), steps and seconds to the target."""
    pts = list(self.points)
    if not pts or pts[-1][0] != self.steps_done:
      pts.append([self.steps_done, self.done_s, final_accuracy])
    hit = next((p for p in pts if p[2] >= self.target), None)
    out = {'eval_every': self.every, 'target_accuracy': self.target, 'accuracy_curve': pts,
           'steps_to_target': hit[0] if hit else None,
           'train_s_to_target': hit[1] if hit else None}
    if hit is None:
      out['steps_to_target_why'] = (f'test accuracy {max(p[2] for p in pts):.4f} at best in '
                                    f'{self.steps_done} steps, under the target {self.target}')
    return out


def train_point(pt, config, dset: source.Dataset) -> dict:
  """Compiles once, trains config.epochs epochs, evaluates; returns record fields.

  Args:
    pt: the sweep point (model, kernel_size, padding, batch_size, dtype).
    config: the experiment config (epochs, learning_rate, seed, prefetch ...).
    dset: the loaded dataset (source.load).

  Returns:
    Record fields: timings (compile_s, epoch_s, data_wait_s, compute_s, step
    statistics), train_loss, test_accuracy, XLA and analytic FLOPs.
  """
  notes: list[str] = []
  ds = dset.spec
  h, _, c = ds.image_shape
  B, epochs = pt.batch_size, config.epochs
  prefetch = config.prefetch
  module = models.build(pt.model, pt.kernel_size, pt.padding, pt.dtype, h, c,
                        conv_algo=config.conv_algo).clone(
                            num_classes=ds.num_classes)
  per_layer = flops.layer_flops(module.features, pt.kernel_size, pt.padding, B, h, c,
                                num_classes=ds.num_classes, block=module.block)
  rec: dict = dict(flops.summarize(per_layer))
  rec['conv_algos'] = models.layer_algos(module)
  rec['input_hw'], rec['input_channels'] = h, c
  rec['params'] = flops.param_count(module.features, pt.kernel_size, pt.padding, h, c,
                                    num_classes=ds.num_classes, block=module.block)
  memguard.check_params(rec['params'])  # before the state is allocated, as in the sweep
  # Each repeat (config.repeats) trains with its own seed, for initial weights and batch order:
  # how many steps a kernel size needs moves from seed to seed, and repeats measure that spread.
  seed = config.seed + pt.repeat
  state = train.create_state(module, config.learning_rate, jax.random.PRNGKey(seed),
                             ds.image_shape)
  n_train, n_test = len(dset.train_labels), len(dset.test_labels)
  steps_per_epoch = batches.num_batches(n_train, B)
  if steps_per_epoch == 0:
    raise ValueError(f'batch_size {B} is larger than the {n_train} training examples')

  precision = config.precision
  eb = min(config.eval_batch_size, n_test)
  # Every compile of the train step is counted: training must add none.
  with timing.backend_compile_events() as events:
    # Precision is fixed at lowering time, as in sweep.measure_point.
    with jax.default_matmul_precision(None if precision == 'default' else precision):
      comp = timing.compile_aot(train.train_step, (state, _batch_shape(B, ds.image_shape)))
      t0 = time.perf_counter()
      evals = {b: timing.compile_aot(train.eval_step, (state, _batch_shape(b, ds.image_shape)),
                                      donate_argnums=())['compiled']
               for b in {eb, n_test % eb} if b}
      rec['eval_compile_s'] = time.perf_counter() - t0
    step = comp['compiled']
    rec.update({k: comp[k] for k in ('lower_s', 'compile_s', 'monitor_compile_s')})
    cost, n1 = timing.cost_analysis(step)
    mem, n2 = timing.memory_analysis(step)
    rec.update(cost)
    rec.update(mem)
    notes += n1 + n2
    memguard.check_compiled(rec)  # before the first step runs

    curve = AccuracyCurve(config.eval_every, config.target_accuracy,
                          lambda st: _evaluate(st, dset, eb, evals, prefetch)[0])
    epoch_s, wait_s, compute_s, step_times, curve_eval_s = [], [], [], [], 0.0
    # As in the step-timing sweep: how much of the CPU other processes took
    # while the epochs ran (the prefetch thread is this process's own).
    bar = progress.Bar(epochs * steps_per_epoch, desc=f'k={pt.kernel_size} {pt.padding} training',
                       unit='step')
    with timing.other_cpu_load() as load:
      for epoch in range(epochs):
        epoch_batches = batches.host_batches(dset.train_images, dset.train_labels, B,
                                        seed=seed, epoch=epoch, mean=dset.mean,
                                        std=dset.std)
        state, ep = train_epoch(step, state, lambda b=epoch_batches: batches.Prefetcher(b, prefetch),
                                on_step=bar.update, probe=curve.probe)
        curve.end_epoch(len(ep['step_s']), ep['epoch_s'])
        bar.update(0, line=f'  k={pt.kernel_size} {pt.padding} epoch {epoch + 1}/{epochs}: '
                   f'{ep["epoch_s"]:.1f} s, train loss {np.mean(ep["loss"]):.3f}')
        epoch_s.append(ep['epoch_s'])
        wait_s.append(ep['data_wait_s'])
        compute_s.append(ep['compute_s'])
        curve_eval_s += ep['probe_s']
        step_times += ep['step_s']
        losses, accs = ep['loss'], ep['accuracy']
    bar.close()
    rec['other_cpu_share'] = load['other_cpu_share']

    t0 = time.perf_counter()
    test_acc, test_loss = _evaluate(state, dset, eb, evals, prefetch)
    rec['eval_s'] = time.perf_counter() - t0
    rec.update(curve.fields(test_acc))
    rec['curve_eval_s'] = curve_eval_s
  # Claim 5's first part, as in the step-timing mode: the Adam update timed alone.
  rec.update(timing.time_optimizer_update(state))
  rec['train_step_compiles'] = [n for n, _ in events].count('jit(train_step)')

  rec['first_step_s'] = step_times[0]
  if len(step_times) > 1:
    rec.update(timing.step_stats(step_times[1:]))
  else:
    rec.update(timing.step_stats(step_times))
    notes.append('one step only: step statistics include the first step')
  med = rec['step_s_median']
  rec['achieved_flops_per_s'] = rec['xla_flops'] / med if rec['xla_flops'] else None
  rec.update({
      'seed': seed, 'epochs': epochs, 'steps_per_epoch': steps_per_epoch, 'train_examples': n_train,
      'test_examples': n_test, 'prefetch': prefetch,
      # Means over the epochs, so data_wait_s / epoch_s is the starved fraction.
      'epoch_s': float(np.mean(epoch_s)), 'epoch_s_kind': 'measured',
      'epoch_s_each': epoch_s, 'data_wait_s': float(np.mean(wait_s)),
      'compute_s': float(np.mean(compute_s)), 'train_wall_s': float(np.sum(epoch_s)),
      'train_loss': float(np.mean(losses)), 'train_accuracy': float(np.mean(accs)),
      'final_loss': losses[-1], 'test_accuracy': test_acc, 'test_loss': test_loss,
      'data': ds.name, 'data_version': ds.version, 'data_cache': dset.cache,
      'data_load_s': dset.load_s,
  })
  rec['data_wait_fraction'] = rec['data_wait_s'] / rec['epoch_s']
  rec['analytic_phase_flops'] = per_layer
  rec['notes'] = notes
  return rec
