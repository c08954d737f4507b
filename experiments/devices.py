"""Data parallel: k in {3,5,7,9} x devices in {1,2,4,8}, SAME, strong and weak scaling.

Each point runs the seed train step on a Mesh of n devices (the batch split on
its 'data' axis, the state replicated; kernelscale/net/train.py); its record
carries the all-reduce's ops and bytes from the optimized HLO and the time the
trace spends in it (phase_s['comm/all-reduce']). On CPU, run.py forces 8 host
devices before jax starts; they share the machine's cores, so their step times
show the program's overheads, not a hardware speed-up (report.md says so).

Run:    python run.py --config=experiments/devices.py
        python run.py --config=experiments/devices.py:quick          (under 60 s)
        python run.py --config=experiments/devices.py:quick --local_processes=2   (2 processes)
Takes:  about 4 minutes on a 2-core CPU (quick: about 40 s).
"""
from experiments import seed


def get_config(arg: str | None = None):
  c = seed.get_config()
  c.name = 'devices'
  c.paddings = ('SAME',)
  c.kernel_sizes = (3, 5, 7, 9)
  c.devices = (1, 2, 4, 8)
  c.batch_scaling = 'strong,weak'
  c.batch_size = 64                # strong: the global batch; weak: per device
  c.timed_steps = 10
  if arg == 'quick':
    c.kernel_sizes = (3, 5)
    c.devices = (1, 2, 4)
    c.batch_size = 8
    c.warmup_steps = 1
    c.timed_steps = 3
    c.profile_steps = 2
  elif arg:
    raise ValueError(f'experiments/devices.py: unknown argument {arg!r}; use "quick" or nothing')
  return c
