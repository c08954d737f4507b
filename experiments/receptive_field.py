"""The same receptive field, cheaper? One k x k conv against four other designs.

Every conv layer after the first is replaced by a design that sees the same
k x k window (kernelscale/net/models.py, BLOCKS): stacked 3x3 convs (VGG), a
depthwise-separable conv (MobileNet), a k x 1 then 1 x k pair (Inception v3)
and a dilated 3x3 (atrous); the plain seed network is measured beside them in
the same run. report.md's "Same receptive field, other designs" compares step
time, FLOPs (the model's and XLA's) and parameters at each k.

Run:    python run.py --config=experiments/receptive_field.py
        python run.py --config=experiments/receptive_field.py:quick   (k=3,5, tiny batch)
Accuracy as well, one epoch each on Fashion-MNIST (prepared as experiments/accuracy.py says):
        python run.py --config=experiments/accuracy.py:quick --config.kernel_sizes=5,9 \\
            --config.model=seed,seed_stacked,seed_separable,seed_spatial,seed_dilated
Takes:  about 2.5 minutes on a 2-core CPU (quick: about 45 s).
"""
from experiments import seed

DESIGNS = ('seed', 'seed_stacked', 'seed_separable', 'seed_spatial', 'seed_dilated')


def get_config(arg: str | None = None):
  c = seed.get_config('quick' if arg == 'quick' else None)
  c.name = 'receptive_field'
  c.model = ','.join(DESIGNS)   # one point per design, kernel size and padding
  c.paddings = ('SAME',)
  c.kernel_sizes = (3, 5, 7, 9)   # odd: stacked and dilated build k x k from 3x3 convs
  if arg == 'quick':
    c.kernel_sizes = (3, 5)
  elif arg:
    raise ValueError(f'experiments/receptive_field.py: unknown argument {arg!r}; use "quick" '
                     'or nothing')
  return c
