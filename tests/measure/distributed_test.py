"""The devices axis, the distributed flags and the local launcher's stop (no jax here)."""
import subprocess
import sys
import time

import ml_collections
import pytest

from kernelscale.measure import distributed


def _cfg(**kw):
  c = ml_collections.ConfigDict({'devices': (1,), 'batch_scaling': 'strong', 'batch_size': 8})
  c.update(kw)
  return c


def test_axis_strong_and_weak():
  got = distributed.device_axis(_cfg(devices=(1, 2, 4), batch_scaling='strong,weak'))
  assert got == [(1, 'strong', 8), (2, 'strong', 8), (4, 'strong', 8),
                 (1, 'weak', 8), (2, 'weak', 16), (4, 'weak', 32)]
  c = ml_collections.ConfigDict({'devices': '1,2', 'batch_scaling': 'strong', 'batch_size': 8})
  assert distributed.device_axis(c) == [(1, 'strong', 8), (2, 'strong', 8)]


@pytest.mark.parametrize('kw, msg', [
    ({'devices': (0,)}, 'config.devices: 0 is not an integer >= 1'),
    ({'devices': (-1,)}, 'config.devices: -1 is not an integer >= 1'),
    ({'devices': (1, 1)}, 'listed twice'),
    ({'devices': (3,)}, 'config.batch_size: the global batch 8 does not split over 3 devices'),
    ({'batch_scaling': 'sideways'}, 'config.batch_scaling: unknown value'),
    ({'devices': (1, 2), 'epochs': 1}, 'accuracy mode'),
])
def test_bad_devices_fields(kw, msg):
  with pytest.raises(distributed.SetupError, match=msg):
    distributed.device_axis(_cfg(**kw))


def test_too_many_devices_says_how_many_exist():
  with pytest.raises(distributed.SetupError, match='16 devices asked for, 8 exist'):
    distributed.device_axis(_cfg(devices=(16,)), device_count=8)
  with pytest.raises(distributed.SetupError, match='does not split over 2 processes'):
    distributed.device_axis(_cfg(devices=(1,)), n_processes=2)


@pytest.mark.parametrize('args, msg', [
    (('127.0.0.1:1234', 2, 2, None), '--process_id: 2 is not in 0..1'),
    (('127.0.0.1:1234', 0, 0, None), '--num_processes: 0 is not an integer >= 1'),
    (('localhost', 2, 0, None), "--coordinator: 'localhost' is not HOST:PORT"),
    ((None, 2, 0, None), '--num_processes: needs --coordinator'),
    (('127.0.0.1:1', None, None, 2), '--local_processes: starts its own processes'),
    ((None, None, None, 0), '--local_processes: 0 is not an integer >= 1'),
])
def test_bad_flags(args, msg):
  with pytest.raises(distributed.SetupError, match=msg):
    distributed.check_flags(*args)
  distributed.check_flags('127.0.0.1:1234', 2, 1, None)  # fine
  distributed.check_flags('auto', None, None, None)  # a TPU pod slice, SLURM


def test_stop_ends_every_child_and_its_group():
  procs = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],
                            start_new_session=True) for _ in range(2)]
  t0 = time.time()
  distributed.stop(procs, grace_s=5)
  assert all(p.returncode is not None for p in procs) and time.time() - t0 < 10


def test_argv_without_the_launcher_flags():
  argv = ['--config=x.py', '--local_processes=2', '--workdir', 'w', '--config.devices=2']
  assert distributed._without(argv, ('local_processes', 'workdir')) == [  # pylint: disable=protected-access
      '--config=x.py', '--config.devices=2']


def test_cpu_only_settings_are_left_alone_off_cpu(monkeypatch):
  from kernelscale.measure import host  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('JAX_PLATFORMS', 'tpu')
  monkeypatch.setenv('XLA_FLAGS', '')
  got = host.configure('auto', 'system')
  assert got['cpu_conv_path'] is None and 'not on CPU' in got['cpu_conv_reason']
  assert host.EIGEN_FLAG not in __import__('os').environ['XLA_FLAGS']
  with pytest.raises(host.DeviceConfigError):
    host.configure('fastest', 'system')


def test_points_keep_their_names_on_one_device_and_too_many_are_refused():
  from experiments import seed  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import sweep  # pylint: disable=g-import-not-at-top  (jax)
  c = seed.get_config('quick')
  assert [p.name for p in sweep.validate(c)] == ['seed-k3-SAME-float32-b8', 'seed-k5-SAME-float32-b8']
  assert sweep.Point('seed', 3, 'SAME', 16, 'float32', 2, 'weak').name == (
      'seed-k3-SAME-float32-b16-d2-weak')
  import jax  # pylint: disable=g-import-not-at-top
  c.devices = (1, jax.device_count() + 1)
  with pytest.raises(sweep.ConfigError, match=f'{jax.device_count() + 1} devices asked for, '
                     f'{jax.device_count()} exist'):
    sweep.validate(c)
