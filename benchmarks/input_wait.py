"""Is the input pipeline ever the bottleneck? data_wait_s as a share of a measured epoch.

Trains the seed network on real data (Fashion-MNIST by default) with the same
compiled step three ways, in alternating rounds:

  prefetch  kernelscale.pipeline.Prefetcher (background thread, depth 2): what
            experiments/accuracy.py uses;
  inline    the same batches made and put on the device when asked for (no prefetch);
  bare      no input pipeline: the same number of steps on one device-resident batch.

It prints, per round and as medians, the epoch time, data_wait_s and its share
of the epoch, and the prefetch epoch against the bare loop. The claim checked:
with prefetch, data_wait_s is at most 5% of the epoch.

    python benchmarks/input_wait.py                        # k=3, batch 128, 50 steps/epoch, 3 rounds
    python benchmarks/input_wait.py --examples=0 --rounds=1   # one full epoch (60,000 images)

Needs the dataset prepared (see `python run.py --help`, --prepare).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys



def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--data', default='fashion_mnist')
  ap.add_argument('--data_dir', default=None, help='TFDS data dir (default: TFDS default)')
  ap.add_argument('--kernel_size', type=int, default=3)
  ap.add_argument('--batch_size', type=int, default=128)
  ap.add_argument('--examples', type=int, default=6_400,
                  help='training examples per epoch (0: the whole train split)')
  ap.add_argument('--rounds', type=int, default=3)
  ap.add_argument('--prefetch', type=int, default=2)
  ap.add_argument('--cpu_conv', default='auto', choices=('auto', 'ynnpack', 'eigen'))
  a = ap.parse_args()

  from kernelscale.measure import host  # before jax initialises
  backend = host.configure(a.cpu_conv)  # as run.py: conv path, and malloc=auto
  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import training, timing  # pylint: disable=g-import-not-at-top
  from kernelscale.data import source, batches
  from kernelscale.net import models, train

  config = ml_collections.ConfigDict({'data': a.data, 'data_dir': a.data_dir, 'download': False,
                                      'cache_dir': None})
  try:
    dset = source.load(config)
  except source.DataError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  x, y = dset.train_images, dset.train_labels
  if a.examples:
    x, y = x[:a.examples], y[:a.examples]
  ds = dset.spec
  h, _, c = ds.image_shape
  module = models.build('seed', a.kernel_size, 'SAME', 'float32', h, c).clone(
      num_classes=ds.num_classes)
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), ds.image_shape)
  fixed = source.first_batch(dset, a.batch_size, 0)
  step = timing.compile_aot(train.train_step, (state, fixed))['compiled']
  state, *_ = timing.run_steps(step, state, fixed, warmup=3, steps=1)
  n_steps = batches.num_batches(len(y), a.batch_size)

  print(f'seed k={a.kernel_size} SAME batch {a.batch_size} on {jax.devices()[0].device_kind} '
        f'({os.cpu_count()} cores), cpu conv path {backend["cpu_conv_path"]}, malloc {backend["malloc_mode"]}; {ds.name}: '
        f'{n_steps} steps per epoch ({len(y)} images), {a.rounds} rounds, data cache '
        f'{dset.cache}')

  def epoch_batches(r):
    return batches.host_batches(x, y, a.batch_size, seed=0, epoch=r, mean=dset.mean,
                                 std=dset.std)

  class Bare(batches.Inline):
    """The fixed device batch n_steps times; nothing to make, nothing to wait for."""

    def __next__(self):
      return next(self._it)

  res = {'prefetch': [], 'inline': [], 'bare': []}
  makers = {'prefetch': lambda r: batches.Prefetcher(epoch_batches(r), a.prefetch),
            'inline': lambda r: batches.Inline(epoch_batches(r)),
            'bare': lambda r: Bare([fixed] * n_steps)}
  for r in range(a.rounds):
    for mode, make in makers.items():
      state, ep = training.train_epoch(step, state, lambda m=make: m(r))
      res[mode].append(ep)
      print(f'round {r + 1} {mode:8s} epoch {ep["epoch_s"]:7.2f} s  data wait '
            f'{ep["data_wait_s"]:6.3f} s ({100 * ep["data_wait_s"] / ep["epoch_s"]:5.2f}%)  '
            f'compute {ep["compute_s"]:7.2f} s')

  med = {m: {k: statistics.median(e[k] for e in eps) for k in ('epoch_s', 'data_wait_s')}
         for m, eps in res.items()}
  share = statistics.median(e['data_wait_s'] / e['epoch_s'] for e in res['prefetch'])
  inline_share = statistics.median(e['data_wait_s'] / e['epoch_s'] for e in res['inline'])
  ratio = statistics.median(p['epoch_s'] / b['epoch_s']
                            for p, b in zip(res['prefetch'], res['bare']))
  print()
  print(f'prefetch: data_wait_s median {med["prefetch"]["data_wait_s"]:.3f} s of a '
        f'{med["prefetch"]["epoch_s"]:.2f} s epoch = {100 * share:.2f}% '
        f'({"PASS" if share <= 0.05 else "FAIL"}: <= 5%)')
  print(f'inline (no prefetch): data_wait_s {100 * inline_share:.2f}% of the epoch')
  print(f'prefetch epoch / bare-loop epoch (same steps, no input pipeline): {ratio:.3f} '
        '(median of paired rounds)')


if __name__ == '__main__':
  main()
