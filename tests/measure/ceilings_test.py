"""Device ceilings (small sizes), their cache, the conv phases alone, the optimizer-only timing
(kernelscale.measure.ceilings) and benchmarks/step_vs_ceiling.py."""
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from kernelscale import records
from kernelscale.measure import ceilings, timing
from kernelscale.net import models, train


def test_matmul_and_copy_report_positive_rates():
  mm = ceilings.matmul_flops_per_s(128, np.float32, repeats=3)
  assert mm['flops_per_s'] > 0 and mm['n'] == 128 and 1 <= mm['calls'] <= 3
  assert mm['flops_per_s'] >= mm['median_flops_per_s']  # best >= median
  cp = ceilings.copy_bytes_per_s(1 << 16, repeats=3)
  assert cp['bytes_per_call'] == 2 * 4 * (1 << 16)  # read + write
  assert cp['bytes_per_s'] >= cp['median_bytes_per_s'] > 0


def test_load_or_measure_caches_per_device(tmp_path, monkeypatch):
  calls = []

  def fake():
    calls.append(1)
    return {'ceiling_flops_per_s': 1e9, 'ceiling_bytes_per_s': 1e8}

  monkeypatch.setattr(ceilings, 'measure_ceilings', fake)
  a = ceilings.load_or_measure(str(tmp_path))
  b = ceilings.load_or_measure(str(tmp_path))
  assert a == b and len(calls) == 1
  key = records.device_key(jax.devices()[0].platform, jax.devices()[0].device_kind)
  assert list(json.load(open(tmp_path / 'ceilings.json'))) == [key]
  assert records.load_ceilings(str(tmp_path / 'nowhere')) == {}


def test_optimizer_update_timed_without_consuming_state():
  module = models.build('seed', 3, 'SAME', 'float32')
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), (28, 28, 1))
  before = np.array(state.params['conv1']['kernel'])
  out = timing.time_optimizer_update(state, warmup=1, steps=3)
  assert 0 < out['optimizer_update_s'] <= out['optimizer_update_s_p90']
  # The caller's state was neither donated nor updated.
  np.testing.assert_array_equal(np.array(state.params['conv1']['kernel']), before)


def test_conv_phases_alone_times_each_layer_phase_with_xla_flops():
  out = ceilings.conv_phases_alone((4, 8), 3, 'SAME', 2, input_hw=8, repeats=2)
  got = [(p['layer'], p['phase']) for p in out]
  # The first layer's input is the data: no input gradient, as in flops.py.
  assert got == [('conv1', 'forward'), ('conv1', 'backward_filter'), ('conv2', 'forward'),
                 ('conv2', 'backward_input'), ('conv2', 'backward_filter')]
  assert all(p['seconds'] > 0 and p['traced_seconds'] is None for p in out)
  assert out[2]['shape'] == (2, 4, 4, 4, 8)  # conv2 sees conv1's pooled 4x4x4
  # Each phase computes what its name says: output, input gradient, kernel gradient.
  assert [p['output_shape'] for p in out] == [(2, 8, 8, 4), (3, 3, 1, 4), (2, 4, 4, 8),
                                              (2, 4, 4, 4), (3, 3, 4, 8)]
  # Each phase is one convolution's multiply-adds over the taps that land on
  # real input (2 per tap): what flops.layer_flops counts for that entry.
  from kernelscale.net import flops
  want = flops.layer_flops((4, 8), 3, 'SAME', 2, input_hw=8)
  for p in out:
    assert p['xla_flops'] == pytest.approx(want[f'{p["layer"]}/{p["phase"]}'], rel=0.02)


def test_conv_alone_fields_time_each_phase_untraced_and_traced(monkeypatch):
  got = ceilings.conv_alone_fields((4, 8), 3, 'SAME', 2, 8, 1, np.float32, budget_s=0.05)
  keys = {'conv1/forward', 'conv1/backward_filter', 'conv2/forward', 'conv2/backward_input',
          'conv2/backward_filter'}
  assert set(got['conv_alone_s']) == keys and set(got['conv_alone_traced_s']) == keys
  assert all(v > 0 for v in got['conv_alone_s'].values())
  assert all(v > 0 for v in got['conv_alone_traced_s'].values())
  assert got['conv_alone_other_cpu_share'] is None or 0 <= got['conv_alone_other_cpu_share'] <= 1
  json.dumps(got)  # record fields

  def busy(*a, **k):
    raise RuntimeError('only one profile may be run at a time')
  monkeypatch.setattr(jax.profiler, 'start_trace', busy)
  got = ceilings.conv_alone_fields((4, 8), 3, 'SAME', 2, 8, 1, np.float32, budget_s=0.05)
  assert got['conv_alone_traced_s'] is None and set(got['conv_alone_s']) == keys


def test_conv_phases_are_timed_in_turns_after_warm_calls(monkeypatch):
  calls = []
  monkeypatch.setattr(timing, 'time_calls',
                      lambda call, n, budget_s=None: calls.append(n) or [0.001] * n)
  out = ceilings.conv_phases_alone((4, 8), 3, 'SAME', 2, input_hw=8, repeats=6)
  # Five phases, CONV_PASSES turns of 6 / CONV_PASSES calls each.
  assert calls == [6 // ceilings.CONV_PASSES] * 5 * ceilings.CONV_PASSES
  assert all(p['seconds'] == 0.001 for p in out)


_CEILING = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        'benchmarks', 'step_vs_ceiling.py')


def _ceiling(*args):
  return subprocess.run([sys.executable, _CEILING, *args], capture_output=True, text=True,
                        check=False, timeout=600)


@pytest.mark.slow  # benchmarks/step_vs_ceiling.py subprocess
def test_ceiling_benchmark_prints_rows_and_the_conv_bound():
  p = _ceiling('--kernel_sizes=3', '--batch_size=2', '--steps=1', '--no_torch')
  assert p.returncode == 0, p.stderr
  lines = p.stdout.splitlines()
  assert any(re.match(r'\s*3 xla\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+', l) for l in lines), p.stdout
  bound = [l for l in lines if '| alone' in l]
  assert len(bound) == 1 and 'conv2 input' in bound[0] and 'conv1 input' not in bound[0]
  # bound = the step's XLA FLOPs / (the phases' times summed) / the ceiling, from the printed figures
  peak = float(re.search(r'matmul ceiling ([\d.]+) GFLOP/s', p.stdout).group(1)) * 1e9
  flops = float(re.match(r'\s*3 xla\s+[\d.]+\s+([\d.]+)', next(
      l for l in lines if re.match(r'\s*3 xla', l))).group(1)) * 1e9
  phase_ms = [float(v) for v in re.findall(r'(?:forward|input|filter) ([\d.]+) ms', bound[0])]
  alone_ms = float(re.search(r'alone ([\d.]+) ms', bound[0]).group(1))
  assert len(phase_ms) == 5 and alone_ms == pytest.approx(sum(phase_ms), abs=0.3)
  printed = float(re.search(r'bound (\d+\.\d\d)$', bound[0]).group(1))
  assert printed == pytest.approx(flops / (alone_ms / 1e3) / peak, abs=0.01 + 0.06 * printed)
  assert not any(l.startswith(' 3 torch') for l in lines)
  if os.path.exists('/proc/stat'):
    [load] = [l for l in lines if l.startswith('other load (share of the CPU')]
    assert re.search(r'k=3 \d+%', load)


@pytest.mark.slow  # a benchmarks/step_vs_ceiling.py subprocess per case
@pytest.mark.parametrize('args, field', [
    (('--kernel_sizes=3,x',), '--kernel_sizes'),
    (('--kernel_sizes=13', '--padding=VALID'), '--kernel_sizes'),
    (('--steps=0',), '--steps'),
    (('--steps=x',), '--steps'),
])
def test_ceiling_benchmark_refuses_bad_flags(args, field):
  p = _ceiling(*args)
  assert p.returncode == 2 and p.stderr.startswith(f'error: {field}: '), p.stderr
  assert p.stdout == ''


@pytest.mark.slow  # benchmarks/step_vs_ceiling.py subprocess
def test_ceiling_benchmark_torch_row():
  pytest.importorskip('torch')
  p = _ceiling('--kernel_sizes=3', '--batch_size=2', '--steps=1', '--no_phases')
  assert p.returncode == 0, p.stderr
  rows = {l.split()[1]: l.split() for l in p.stdout.splitlines() if re.match(r'\s*3 \w', l)}
  assert 'torch' in rows and 'xla' in rows
  assert rows['torch'][3] == rows['xla'][3]  # the same FLOP count on both rows
  assert '| alone' not in p.stdout


def test_ceiling_benchmark_other_load_line_warns_from_the_threshold():
  from benchmarks import step_vs_ceiling as ceiling  # pylint: disable=g-import-not-at-top
  assert 'not measured' in ceiling.other_load_line({3: {'other_cpu_share': None}})
  quiet = ceiling.other_load_line({3: {'other_cpu_share': 0.01}, 5: {'other_cpu_share': 0.04}})
  assert 'k=3 1%, k=5 4%' in quiet and 'WARNING' not in quiet
  busy = ceiling.other_load_line({3: {'other_cpu_share': 0.01}, 5: {'other_cpu_share': 0.4}})
  assert 'WARNING: at k=5 other processes' in busy
