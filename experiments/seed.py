"""Seed network, both paddings, k in {3, 5, 7, 9}, batch 128, synthetic data.

Run:    python run.py                       (this is the default experiment)
        python run.py --config=experiments/seed.py:quick   (tests: 2 tiny points)
        python run.py --config=experiments/seed.py:careful (every point timed 3 times, interleaved)
Takes:  about 90 s on a 2-core CPU (quick: a few seconds; careful: about 4 min).

FIELDS is the one table of config fields: get_config() builds the config from
it, and `python run.py --help` lists it (kernelscale/config_fields.py).
"""
import ml_collections
from ml_collections import config_dict

# (field, default, one-line meaning). Every experiment derives from these. A None default
# is an optional string (ml_collections placeholder).
FIELDS = (
    ('name', 'seed', 'experiment name; the run folder is runs/<name>-<timestamp>/'),
    ('model', 'seed', 'network (kernelscale/net/shapes.py MODEL_SPECS); several: seed,seed_dilated'),
    ('kernel_sizes', (3, 5, 7, 9), 'kernel sizes k (k×k convs) to measure, e.g. 3,5,7'),
    ('paddings', ('SAME', 'VALID'), 'conv paddings to measure: SAME and/or VALID'),
    ('batch_size', 128, 'examples per train step'),
    ('features', None, "conv widths, e.g. '16,32;32,64' (experiments/filters.py); None: the model's"),
    ('repeats', 1, 're-time every point this many times, interleaved (:careful gives 3); '
                   'training: seeds seed, seed+1, …'),
    ('dtype', 'float32', 'float32 | bfloat16 | float16'),
    ('precision', 'default', 'default | tensorfloat32 | highest (f32 matmul/conv on GPU/TPU)'),
    ('learning_rate', 1e-3, 'Adam learning rate'),
    ('seed', 0, 'random seed for parameters and synthetic data'),
    ('data', 'synthetic', 'synthetic (offline default) or a TFDS name, e.g. fashion_mnist'),
    ('data_dir', None, "TFDS data dir; None: TFDS's default"),
    ('download', False, 'True: TFDS download_and_prepare (network + TensorFlow)'),
    ('epochs', 0, '> 0: train this many epochs for accuracy instead (experiments/accuracy.py)'),
    ('cache_dir', None, 'decoded arrays; None: <data_dir>/kernelscale_cache'),
    ('prefetch', 2, 'training: batches kept on the device ahead of the step'),
    ('eval_batch_size', 1000, 'training: test-set batch'),
    ('eval_every', 0, 'training: test accuracy every N steps, for steps to target_accuracy (0: at the end only)'),
    ('target_accuracy', 0.85, 'training: test accuracy whose first crossing gives steps_to_target'),
    ('train_examples', 60_000, 'examples per epoch, for epoch_s = steps per epoch × median step'),
    ('cpu_conv', 'auto', 'auto | ynnpack | eigen: XLA:CPU conv path (kernelscale/measure/host.py)'),
    ('malloc', 'auto', 'auto (retain on glibc) | retain | system: host malloc (measure/host.py)'),
    ('conv_algo', 'xla', 'xla (nn.Conv as written) | auto (a faster algorithm per layer; net/convs.py)'),
    ('devices', (1,), 'data-parallel devices, a sweep axis: e.g. 1,2,4,8 (CPU: forced host devices)'),
    ('batch_scaling', 'strong', 'strong: batch_size is the global batch | weak: per device | strong,weak'),
    ('warmup_steps', 3, 'untimed steps after compile, before timing'),
    ('timed_steps', 15, 'timed steps per point (median, p10, p90)'),
    ('profile', True, 'trace a window of steps to <workdir>/tensorboard/<point>/'),
    ('profile_steps', 7, 'steps traced, after warm-up and timing (medians; outliers dropped)'),
    ('conv_alone', True, 'profiled points: time each conv phase alone beside the profile'),
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Default sweep; `arg='quick'` shrinks it to a few seconds."""
  c = ml_collections.ConfigDict()
  for field, default, _ in FIELDS:
    c[field] = config_dict.placeholder(str) if default is None else default
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
