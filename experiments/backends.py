"""CPU conv paths side by side: jax's default YNNPACK fusion vs XLA's Eigen path.

Each path runs the seed sweep (SAME, k=3,5,7,9, batch 128) in its own child
process (XLA_FLAGS is read once per process); paths alternate for 2 rounds.
Writes backends.md with per-k medians and the speed-up, and caches the result
so that `cpu_conv=auto` follows this machine's measurement (under the same malloc mode).

Run:    python run.py --config=experiments/backends.py
        python run.py --config=experiments/backends.py:quick   (k=3,5, 1 round)
Takes:  about 2 minutes on a 2-core CPU (quick: about 20 s).
"""
from experiments import seed


def get_config(arg: str | None = None):
  c = seed.get_config('quick' if arg == 'quick' else None)
  c.name = 'backends'
  c.child_config = 'experiments/seed.py'
  c.compare_cpu_conv = ('ynnpack', 'eigen')
  c.rounds = 2
  c.cache_decision = True          # cpu_conv=auto follows this run's measurement
  c.paddings = ('SAME',)
  if arg == 'quick':
    c.rounds = 1
    c.cache_decision = False       # tiny batches say nothing about real runs
  elif arg:
    raise ValueError(f'experiments/backends.py: unknown argument {arg!r}; use "quick" or nothing')
  return c
