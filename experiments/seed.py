"""Seed network, both paddings, k in {3, 5, 7, 9}, batch 128, synthetic data.

Run:    python run.py                       (this is the default experiment)
        python run.py --config=experiments/seed.py:quick   (tests: 2 tiny points)
        python run.py --config=experiments/seed.py:careful (every point timed 3 times, interleaved)
Takes:  about 90 s on a 2-core CPU (quick: a few seconds; careful: about 4 min).
"""
import ml_collections
from ml_collections import config_dict


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Default sweep; `arg='quick'` shrinks it to a few seconds."""
  c = ml_collections.ConfigDict()
  c.name = 'seed'
  c.model = 'seed'                 # kernelscale/net/shapes.py MODEL_SPECS; several: 'seed,seed_dilated'
  c.kernel_sizes = (3, 5, 7, 9)
  c.paddings = ('SAME', 'VALID')
  c.batch_size = 128
  c.features = config_dict.placeholder(str)  # conv widths, e.g. '16,32;32,64' (experiments/filters.py); None: the model's
  c.repeats = 1                    # re-time every point this many times, interleaved (:careful gives 3)
  c.dtype = 'float32'              # float32 | bfloat16 | float16
  c.precision = 'default'          # default | tensorfloat32 | highest (f32 matmul/conv on GPU/TPU)
  c.learning_rate = 1e-3
  c.seed = 0
  c.data = 'synthetic'             # offline default; or a TFDS name, e.g. fashion_mnist
  c.data_dir = config_dict.placeholder(str)  # TFDS data dir; None: TFDS's default
  c.download = False               # True: TFDS download_and_prepare (network + TensorFlow)
  c.epochs = 0                     # > 0: train for accuracy instead (experiments/accuracy.py)
  c.cache_dir = config_dict.placeholder(str)  # decoded arrays; None: <data_dir>/kernelscale_cache
  c.prefetch = 2                   # training: batches kept on the device ahead of the step
  c.eval_batch_size = 1000         # training: test-set batch
  c.train_examples = 60_000        # for epoch_s = steps per epoch x median step
  c.cpu_conv = 'auto'              # auto | ynnpack | eigen (CPU only; see kernelscale/measure/host.py)
  c.malloc = 'auto'                # auto (retain on glibc) | retain | system: host malloc (kernelscale/measure/host.py)
  c.conv_algo = 'xla'              # xla (nn.Conv as written) | auto (per layer; kernelscale/net/convs.py)
  c.warmup_steps = 3
  c.timed_steps = 15
  c.profile = True                 # trace a window to <workdir>/tensorboard/<point>/
  c.profile_steps = 7              # steps traced, after warm-up and timing (medians; outliers dropped)
  c.conv_alone = True              # profiled points: time each conv phase alone beside the profile
  if arg == 'quick':
    c.kernel_sizes = (3, 5)
    c.paddings = ('SAME',)
    c.batch_size = 8
    c.warmup_steps = 1
    c.timed_steps = 3
    c.conv_alone = False
  elif arg == 'careful':
    # Three interleaved re-timings of every point: confidence intervals for the
    # exponents and "inconclusive" verdicts near a threshold (~3 min on 2 cores).
    c.repeats = 3
  elif arg:
    raise ValueError(f'experiments/seed.py: unknown argument {arg!r}; use "quick", "careful" '
                     'or nothing')
  return c
