"""Claim 2, measured: the seed network at three conv widths, k in {3, 5, 7}, SAME padding.

Run:    python run.py --config=experiments/filters.py
        python run.py --config=experiments/filters.py:quick   (tests: 2 widths x 2 k, tiny)
Takes:  about 2 min on a 2-core CPU (quick: a few seconds).

Claim 2 ("more filters multiply that work") is decided from the exponent of
step time in c_in·c_out at a fixed k, and from how the width multiplies the
growth in k (kernelscale/analysis/claims.py, claim_filters).
"""
import ml_collections

from experiments import seed


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """k in {3, 5, 7} x widths 16,32 / 32,64 / 64,128; `arg='quick'` shrinks it."""
  c = seed.get_config()
  c.name = 'filters'
  c.kernel_sizes = (3, 5, 7)
  c.paddings = ('SAME',)
  c.features = '16,32;32,64;64,128'
  if arg == 'quick':
    c.kernel_sizes = (3, 5)
    c.features = '8,16;16,32'
    c.batch_size = 8
    c.warmup_steps = 1
    c.timed_steps = 3
    c.profile = False
    c.conv_alone = False
  elif arg:
    raise ValueError(f'experiments/filters.py: unknown argument {arg!r}; use "quick" or nothing')
  return c
