"""Each conv algorithm of kernelscale/net/convs.py, per seed-net layer and k: checks auto's rule.

For each kernel size and each conv layer of the seed network (conv1: 28x28x1
-> 32, conv2: 14x14x32 -> 64, batch 128, float32), times one jit-compiled
forward+backward of conv -> ReLU -> 2x2 max-pool (the gradient the train step
needs: the kernel's for conv1, input and kernel for conv2) with each algorithm
(`xla`, `taps`, `dft`, `rows`), alternating the algorithms round by round. Prints the
median ms per algorithm, the fastest, and what `conv_algo=auto` picks
(`convs.choose`), marking where the rule disagrees with this machine.

A layer timed alone is not the whole step: fusion with neighbouring ops and
cache effects differ. The rule in convs.choose was set from whole train steps
(benchmarks/peer_torch.py runs them); this script is the quick per-layer view.

    python benchmarks/conv_algos.py                       # k=3,5,7,9,11, ~2 min on 2 cores
    python benchmarks/conv_algos.py --kernel_sizes=3,7 --rounds=3
"""
from __future__ import annotations

import argparse
import statistics


from kernelscale import cli  # pylint: disable=g-import-not-at-top

LAYERS = (('conv1', 28, 1, 32), ('conv2', 14, 32, 64))


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--kernel_sizes', default='3,5,7,9,11', help='comma-separated k; SAME padding')
  ap.add_argument('--batch_size', default='128')
  ap.add_argument('--rounds', default='3', help='alternating rounds; default 3')
  ap.add_argument('--steps', default='5', help='timed calls per algorithm per round')
  ap.add_argument('--cpu_conv', default='auto', choices=('auto', 'ynnpack', 'eigen'))
  a = ap.parse_args()
  ks = cli.kernel_sizes(a.kernel_sizes)
  cli.at_least(a, ('batch_size', 'rounds', 'steps'))

  from kernelscale.measure import host  # before jax initialises
  backend = host.configure(a.cpu_conv)  # as run.py: conv path, and malloc=auto
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import timing  # pylint: disable=g-import-not-at-top
  from kernelscale.net import convs, models  # pylint: disable=g-import-not-at-top

  platform = jax.default_backend()
  print(f'{jax.devices()[0].device_kind}, conv path {backend["cpu_conv_path"] or "n/a"}, '
        f'malloc {backend["malloc_mode"]}, '
        f'batch {a.batch_size}, SAME, float32; ms per forward+backward of conv -> ReLU -> pool, '
        f'median of {a.rounds} rounds x {a.steps} calls')
  print(f'{"k":>3} {"layer":<6} ' + ' '.join(f'{n:>8}' for n in convs.ALGOS) +
        f' {"fastest":>8} {"auto":>6}')
  disagree = 0
  for k in ks:
    for name, hw, c_in, c_out in LAYERS:
      key = jax.random.PRNGKey(0)
      x = jax.random.normal(key, (a.batch_size, hw, hw, c_in))
      w = jax.random.normal(key, (k, k, c_in, c_out)) * 0.1
      wrt = (1,) if c_in == 1 else (0, 1)  # conv1's input is the data: no gradient
      fns = {}
      for algo in convs.ALGOS:
        def loss(x, w, algo=algo):
          return jnp.sum(models.max_pool_2x2(jax.nn.relu(convs.conv(algo, x, w, 'SAME'))))
        fns[algo] = jax.jit(jax.grad(loss, argnums=wrt))
        jax.block_until_ready(fns[algo](x, w))  # compile + warm
      per = {algo: [] for algo in convs.ALGOS}
      for r in range(a.rounds):
        n = r % len(convs.ALGOS)
        order = convs.ALGOS[n:] + convs.ALGOS[:n]
        for algo in order:
          ts = timing.time_calls(lambda f=fns[algo]: jax.block_until_ready(f(x, w)), a.steps)
          per[algo].append(statistics.median(ts))
      med = {algo: statistics.median(v) for algo, v in per.items()}
      best = min(med, key=med.get)
      pick = convs.choose(platform, c_in, k)
      mark = '' if pick == best else '  <- rule differs here'
      disagree += pick != best
      print(f'{k:>3} {name:<6} ' + ' '.join(f'{med[al] * 1e3:>8.1f}' for al in convs.ALGOS) +
            f' {best:>8} {pick:>6}{mark}', flush=True)
  print(f'\nauto\'s rule differs from the fastest single layer in {disagree} of '
        f'{len(ks) * len(LAYERS)} cases (a layer alone is not the step: check with '
        'benchmarks/peer_torch.py)')


if __name__ == '__main__':
  main()
