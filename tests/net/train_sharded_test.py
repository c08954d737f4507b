"""The data-parallel step on a mesh of 8 forced host devices equals the one-device step.

The forced device count must be set before jax starts, so the check runs in a
child process (this test process has already initialised jax with one device).
"""
import json
import os
import subprocess
import sys

_CHILD = r'''
import json, os
os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=8'
import jax, numpy as np
from kernelscale.measure import collectives
from kernelscale.net import models, train
from kernelscale.data import source

out = {'devices': jax.device_count()}
def run(n, k):
  m = models.build('seed', k, 'SAME', 'float32', 28, 1).clone(num_classes=10)
  st = train.create_state(m, 1e-3, jax.random.PRNGKey(0), (28, 28, 1))
  b = source.synthetic_batch(16, 0)
  if n > 1:
    st, b = train.shard_for_data_parallel(train.make_mesh(n), st, b)
  c = jax.jit(train.train_step, donate_argnums=(0,)).lower(st, b).compile()
  for _ in range(3):
    st, _ = c(st, b)
  return st, c.as_text()
for k in (3, 5):
  s1, _ = run(1, k)
  s8, text = run(8, k)
  p1 = jax.tree_util.tree_leaves(jax.device_get(s1.params))
  p8 = jax.tree_util.tree_leaves(jax.device_get(s8.params))
  out[k] = {'rel': max(float(np.linalg.norm(a - b) / np.linalg.norm(a)) for a, b in zip(p1, p8)),
            'replicated': all(x.sharding.is_fully_replicated for x in jax.tree_util.tree_leaves(s8.params)),
            'params': int(sum(x.size for x in p1)), **collectives.collectives(text)}
print(json.dumps(out))
'''


def test_eight_devices_equal_one_and_all_reduce_the_gradients():
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  p = subprocess.run([sys.executable, '-c', _CHILD], capture_output=True, text=True, env=env,
                     timeout=300, check=False)
  assert p.returncode == 0, p.stderr[-2000:]
  out = json.loads(p.stdout.strip().splitlines()[-1])
  assert out['devices'] == 8
  for k in ('3', '5'):
    r = out[k]
    # After 3 Adam steps from the same init on the same global batch.
    assert r['rel'] < 1e-5, r
    assert r['replicated']
    assert r['collective_ops'].get('all-reduce', 0) >= 1
    # The gradients (params x 4 bytes) plus the loss and accuracy scalars.
    assert abs(r['collective_bytes'] - 4 * r['params']) <= 0.01 * 4 * r['params'], r
