"""Accuracy against kernel size: train the seed network E epochs per k on real data.

Run:    python run.py --config=experiments/accuracy.py:quick   (1 epoch, k=3,5,7, SAME)
        python run.py --config=experiments/accuracy.py         (5 epochs, k=3,5,7,9)
        add --config.repeats=3 to train every point with 3 seeds (medians in the analysis)
Needs:  Fashion-MNIST prepared once, offline, from Debian's package:
          apt-get install dataset-fashion-mnist
          python run.py --prepare=fashion_mnist --from_idx=/usr/share/datasets/fashion-mnist
        (or --config.download=True where network and TensorFlow exist, e.g. Colab).
Takes:  quick: about 2 minutes on a 2-core CPU (2026-12-03, Xeon guest, malloc=retain, Eigen
        conv path: 23 / 46 / 58 s per point at k=3 / 5 / 7, each with its 10 test-set
        evaluations, about a quarter of that). The first run also decodes the PNGs (about
        6 s), later runs read the cached arrays (0.2 s).
        Full: 5 epochs and k=9 too: 17 min 22 s (same machine and date).

Per point it records train_loss, test_accuracy, epoch_s (measured end to end,
input pipeline included), data_wait_s, compute_s, compile_s, and the test
accuracy every eval_every steps with the first step that reaches
target_accuracy (claim 5: does a bigger kernel need more steps?); results.md
gets an accuracy-against-time plot.
"""
from experiments import seed


def get_config(arg: str | None = None):
  """Accuracy sweep; `arg='quick'` trains one epoch at k=3,5,7."""
  c = seed.get_config()
  c.name = 'accuracy'
  c.paddings = ('SAME',)
  c.data = 'fashion_mnist'         # any TFDS image-classification dataset (uint8 images)
  c.epochs = 5                     # > 0 selects training for accuracy (kernelscale.measure.training)
  # Test accuracy every 50 steps (about 9 times an epoch at batch 128; each costs ~4.5% of an
  # epoch, kept out of epoch_s), for the steps each k needs to reach target_accuracy.
  c.eval_every = 50
  # Fashion-MNIST: five epochs end near 0.9, so 0.88 separates the kernel sizes late in training.
  c.target_accuracy = 0.88
  # Every step of an epoch is timed, so the step-timing mode's warm-up and window go unused.
  c.warmup_steps = 0
  c.timed_steps = 1
  c.profile = False
  if arg == 'quick':
    c.kernel_sizes = (3, 5, 7)
    c.epochs = 1
    c.target_accuracy = 0.85       # one epoch ends near 0.88: the seed net passes 0.85 within it
  elif arg:
    raise ValueError(f'experiments/accuracy.py: unknown argument {arg!r}; use "quick" or nothing')
  return c
