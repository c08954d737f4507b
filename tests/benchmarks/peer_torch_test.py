"""benchmarks/peer_torch.py: the paired comparison on a tiny config, the skip without torch,
and bad flags."""
import importlib.util
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, 'benchmarks', 'peer_torch.py')


def _load():
  spec = importlib.util.spec_from_file_location('peer_torch', SCRIPT)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


peer = _load()

# Runs the script with a meta path finder that refuses `torch`, as if it were not installed.
_NO_TORCH = '''
import runpy, sys
class _NoTorch:
  def find_spec(self, name, path=None, target=None):
    if name == 'torch' or name.startswith('torch.'):
      raise ModuleNotFoundError("No module named 'torch'", name=name)
    return None
sys.meta_path.insert(0, _NoTorch())
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _run_script(*args, block_torch=False):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  cmd = [sys.executable, '-c', _NO_TORCH, SCRIPT] if block_torch else [sys.executable, SCRIPT]
  return subprocess.run(cmd + list(args), capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow  # the benchmark: times jax and torch steps
def test_tiny_comparison_runs_both_sides():
  pytest.importorskip('torch')
  res = peer.compare_one(kernel_size=3, batch_size=8, rounds=1, steps=2, device='cpu',
                         warmup=1)
  assert res['params'] == 421_642  # conv1 320 + conv2 18,496 + dense1 401,536 + dense2 1,290
  assert res['output_shape'] == [8, 10]
  assert len(res['jax_round_s']) == len(res['torch_round_s']) == 1
  assert res['jax_step_s'] > 0 and res['torch_step_s'] > 0
  assert res['ratio'] == pytest.approx(res['jax_step_s'] / res['torch_step_s'])
  assert 0 < res['jax_best_s'] <= res['jax_step_s'] and 0 < res['torch_best_s'] <= res['torch_step_s']
  assert math.isfinite(res['torch_loss'])
  assert 'Eigen' in res['conv_impl'] or 'YNNPACK' in res['conv_impl']
  assert 'other_cpu_share' in res
  line = peer._line(dict(res, other_cpu_share=0.5))  # pylint: disable=protected-access
  assert 'other load 50% (CONTENDED' in line
  assert 'CONTENDED' not in peer._line(dict(res, other_cpu_share=0.02))  # pylint: disable=protected-access


def test_torch_net_matches_kernelscale_params_per_k():
  torch = pytest.importorskip('torch')
  from kernelscale.net import flops  # pylint: disable=g-import-not-at-top
  for k in (3, 5, 11):
    net = peer.torch_seed_net(torch, k)
    assert sum(p.numel() for p in net.parameters()) == flops.param_count(
        (32, 64), k, 'SAME', 28, 1)
    assert tuple(net(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)


@pytest.mark.slow  # benchmarks/peer_torch.py subprocess
def test_skips_with_exit_0_when_torch_is_missing():
  p = _run_script('--kernel_sizes=3', block_torch=True)
  assert p.returncode == 0, p.stderr
  assert p.stdout.strip() == peer.SKIP_MESSAGE
  assert 'kernelscale' not in p.stderr


@pytest.mark.slow  # a benchmarks/peer_torch.py subprocess per case
@pytest.mark.parametrize('args, field', [
    (('--kernel_sizes=3,x',), '--kernel_sizes'),
    (('--kernel_sizes=0',), '--kernel_sizes'),
    (('--batch_size=0',), '--batch_size'),
    (('--rounds=two',), '--rounds'),
    (('--device=tpu',), '--device'),
    (('--cpu_conv=onednn',), '--cpu_conv'),
    (('--steps=-1',), '--steps'),
    (('--algos=xla/fft',), '--algos'),
    (('--algos=dft',), '--algos'),
])
def test_bad_flags_one_line_exit_2(args, field):
  p = _run_script(*args, block_torch=True)
  assert p.returncode == 2
  assert p.stderr.strip().splitlines() == [p.stderr.strip()]
  assert p.stderr.startswith(f'error: {field}:')


@pytest.mark.slow  # the benchmark: times three variants and torch
def test_auto_side_timed_where_it_differs_from_nn_conv():
  pytest.importorskip('torch')
  lines = []
  (res,) = peer.compare([5], batch_size=8, rounds=1, steps=1, device='cpu', warmup=1,
                        log=lines.append)
  assert res['auto_algos'] == {'conv1': 'rows', 'conv2': 'dft'}
  auto = res['variants']['auto']
  assert auto['step_s'] > 0 and auto['ratio'] == pytest.approx(auto['step_s'] / res['torch_step_s'])
  assert abs(auto['loss'] - res['jax_loss']) < 1e-3  # same network, same first steps
  assert peer.fastest(res)[0] in ('xla', 'auto') and 'auto (rows+dft)' in lines[0]
  assert peer.auto_variant(5, 'gpu') == {}  # on GPU auto is nn.Conv: nothing extra to time


@pytest.mark.slow  # the benchmark: times three variants and torch
def test_extra_algorithm_combinations_are_timed_in_the_rotation():
  pytest.importorskip('torch')
  lines = []
  (res,) = peer.compare([3], batch_size=8, rounds=1, steps=1, device='cpu', warmup=1,
                        log=lines.append, algos=(('dft', 'dft'),))
  v = res['variants']['dft/dft']
  assert v['step_s'] > 0 and abs(v['loss'] - res['jax_loss']) < 1e-3
  assert any('dft/dft' in l and 'vs nn.Conv' in l for l in lines)
