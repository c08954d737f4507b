"""Accuracy against kernel size: train the seed network E epochs per k on real data.

Run:    python run.py --config=experiments/accuracy.py:quick   (1 epoch, k=3,5,7, SAME)
        python run.py --config=experiments/accuracy.py         (5 epochs, k=3,5,7,9)
Needs:  Fashion-MNIST prepared once, offline, from Debian's package:
          apt-get install dataset-fashion-mnist
          python run.py --prepare=fashion_mnist --from_idx=/usr/share/datasets/fashion-mnist
        (or --config.download=True where network and TensorFlow exist, e.g. Colab).
Takes:  quick: about 1.5 minutes on a 2-core CPU (83 s wall, 13-30 s per epoch and point;
        65 s with --config.conv_algo=auto; 2026-12-02, Zen 5 guest, malloc=retain, Eigen conv
        path). The first run also decodes the PNGs (about 8 s), later runs read the cached
        arrays (0.2 s).
        Full: 5 epochs and k=9 too, roughly 7x the quick form.

Per point it records train_loss, test_accuracy, epoch_s (measured end to end,
input pipeline included), data_wait_s, compute_s and compile_s; results.md
gets an accuracy-against-time plot.
"""
import ml_collections
from ml_collections import config_dict


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Accuracy sweep; `arg='quick'` trains one epoch at k=3,5,7."""
  c = ml_collections.ConfigDict()
  c.name = 'accuracy'
  c.model = 'seed'
  c.kernel_sizes = (3, 5, 7, 9)
  c.paddings = ('SAME',)
  c.batch_size = 128
  c.dtype = 'float32'
  c.precision = 'default'          # default | tensorfloat32 | highest (f32 matmul/conv on GPU/TPU)
  c.cpu_conv = 'auto'              # auto | ynnpack | eigen (CPU only; see kernelscale/measure/host.py)
  c.malloc = 'auto'                # auto (retain on glibc) | retain | system: host malloc (device.py)
  c.conv_algo = 'xla'              # xla (nn.Conv as written) | auto (per layer; kernelscale/net/convs.py)
  c.learning_rate = 1e-3
  c.seed = 0
  c.data = 'fashion_mnist'         # any TFDS image-classification dataset (uint8 images)
  c.data_dir = config_dict.placeholder(str)   # None: TFDS's default (~/tensorflow_datasets)
  c.download = False               # True: TFDS download_and_prepare (network + TensorFlow)
  c.cache_dir = config_dict.placeholder(str)  # decoded arrays; None: <data_dir>/kernelscale_cache
  c.epochs = 5                     # > 0 selects training for accuracy (kernelscale.accuracy)
  c.prefetch = 2                   # batches kept on the device ahead of the step
  c.eval_batch_size = 1000
  # Fields of the step-timing mode; unused when epochs > 0 (every step is timed).
  c.train_examples = 60_000
  c.warmup_steps = 0
  c.timed_steps = 1
  if arg == 'quick':
    c.kernel_sizes = (3, 5, 7)
    c.epochs = 1
  elif arg:
    raise ValueError(f'experiments/accuracy.py: unknown argument {arg!r}; use "quick" or nothing')
  return c
