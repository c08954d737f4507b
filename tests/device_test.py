"""CPU conv path choice: flags, the auto rule, a cached measurement, bad values."""
import json
import os

import pytest

from kernelscale import device


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  monkeypatch.setenv('XLA_FLAGS', '--xla_dump_to=/tmp/x')
  yield tmp_path


def test_with_eigen_adds_and_removes_only_its_flag():
  f = device.with_eigen('--a=1', True)
  assert f.split() == ['--a=1', device.EIGEN_FLAG]
  assert device.with_eigen(f, False) == '--a=1'


def test_explicit_choice_sets_flags(clean_env):
  d = device.configure_cpu_conv('eigen')
  assert d['cpu_conv_path'] == 'eigen'
  assert device.EIGEN_FLAG in os.environ['XLA_FLAGS'].split()
  assert '--xla_dump_to=/tmp/x' in os.environ['XLA_FLAGS']
  d = device.configure_cpu_conv('ynnpack')
  assert d['cpu_conv_path'] == 'ynnpack' and device.EIGEN_FLAG not in os.environ['XLA_FLAGS']


def test_auto_without_measurement_follows_rule(clean_env):
  d = device.configure_cpu_conv('auto')
  assert d['cpu_conv_path'] == 'eigen' and d['cpu_conv_reason'] == device.RULE_REASON
  assert d['cpu_conv_speedup_vs_default'] is None


@pytest.mark.parametrize('speedup,path', [(0.7, 'ynnpack'), (1.6, 'eigen')])
def test_auto_follows_cached_measurement(clean_env, speedup, path):
  cache = device.record_measurement(speedup, {'rows': []})
  assert json.load(open(cache))[device.machine_key()]['speedup_eigen'] == speedup
  d = device.configure_cpu_conv('auto')
  assert d['cpu_conv_path'] == path and d['cpu_conv_speedup_vs_default'] == speedup
  assert 'this machine measured' in d['cpu_conv_reason']


def test_auto_respects_user_flag(clean_env, monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', device.EIGEN_FLAG)
  device.record_measurement(0.5, {})
  assert device.configure_cpu_conv('auto')['cpu_conv_path'] == 'eigen'


def test_bad_choice_names_field():
  with pytest.raises(device.DeviceConfigError, match='config.cpu_conv'):
    device.configure_cpu_conv('fast')


def test_platform_notes_per_backend():
  cpu = [{'status': 'ok', 'platform': 'cpu', 'cpu_conv_path': 'eigen',
          'cpu_conv_reason': 'set', 'cpu_conv_speedup_vs_default': 1.5}]
  assert '1.50x' in device.platform_notes(cpu)[0]
  gpu = [{'status': 'ok', 'platform': 'gpu', 'precision': 'highest', 'dtype': 'float32',
          'xla_gpu_autotune_level': 2}]
  assert 'autotune level 2' in device.platform_notes(gpu)[0]
  tpu = [{'status': 'ok', 'platform': 'tpu'}]
  assert 'padded to 128' in device.platform_notes(tpu)[0]
  assert device.platform_notes([{'status': 'failed'}]) == []
