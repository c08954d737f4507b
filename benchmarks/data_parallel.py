"""Data parallel on forced host devices: 8 devices give 1 device's parameters, and all-reduce the gradients.

For each k: the seed network (SAME) from one init takes `--steps` Adam steps on
one global batch, on 1 device and on `--devices` forced XLA:CPU host devices
(kernelscale/net/train.py's Mesh: batch split, state replicated). Prints the
largest per-leaf relative difference ||p_n - p_1|| / ||p_1|| of the parameters,
and the optimized HLO's collective bytes against params x 4 (float32 gradients).

    python benchmarks/data_parallel.py                  # k=3,5,7,9, 8 devices, 3 steps, batch 64
    python benchmarks/data_parallel.py --devices=4 --kernel_sizes=3,9
"""
from __future__ import annotations

import argparse
import os


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--kernel_sizes', default='3,5,7,9')
  ap.add_argument('--devices', default='8')
  ap.add_argument('--steps', default='3')
  ap.add_argument('--batch_size', default='64')
  a = ap.parse_args()
  from kernelscale import cli  # pylint: disable=g-import-not-at-top
  ks = cli.kernel_sizes(a.kernel_sizes)
  cli.at_least(a, ('devices', 'steps', 'batch_size'))
  if a.batch_size % a.devices:
    cli.fail(f'--batch_size: {a.batch_size} does not split over {a.devices} devices')
  # Before jax starts: XLA reads XLA_FLAGS once.
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             f' --xla_force_host_platform_device_count={a.devices}').strip()
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from kernelscale.data import source  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import collectives  # pylint: disable=g-import-not-at-top
  from kernelscale.net import models, train  # pylint: disable=g-import-not-at-top

  def run(n, k):
    m = models.build('seed', k, 'SAME', 'float32', 28, 1).clone(num_classes=10)
    st = train.create_state(m, 1e-3, jax.random.PRNGKey(0), (28, 28, 1))
    b = source.synthetic_batch(a.batch_size, 0)
    if n > 1:
      st, b = train.shard_for_data_parallel(train.make_mesh(n), st, b)
    c = jax.jit(train.train_step, donate_argnums=(0,)).lower(st, b).compile()
    for _ in range(a.steps):
      st, _ = c(st, b)  # the state is donated: rebind it
    return jax.tree_util.tree_leaves(jax.device_get(st.params)), c.as_text()

  print(f'{jax.device_count()} host devices; seed SAME, batch {a.batch_size}, {a.steps} steps')
  print(f'{"k":>3} {"params":>9} {"max rel diff":>13} {"collective B":>13} {"params x 4":>11} '
        f'{"ratio":>8}  ops')
  for k in ks:
    p1, _ = run(1, k)
    pn, text = run(a.devices, k)
    rel = max(float(np.linalg.norm(x - y) / np.linalg.norm(x)) for x, y in zip(p1, pn))
    params = sum(x.size for x in p1)
    col = collectives.collectives(text)
    print(f'{k:>3} {params:>9} {rel:>13.2e} {col["collective_bytes"]:>13} {4 * params:>11} '
          f'{col["collective_bytes"] / (4 * params):>8.6f}  {col["collective_ops"]}')


if __name__ == '__main__':
  main()
