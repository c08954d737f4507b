"""CPU conv path choice: flags, the auto rule, a cached measurement, bad values."""
import json
import os
import resource

import pytest

from kernelscale.measure import host
from kernelscale.report import notes


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  monkeypatch.setenv('XLA_FLAGS', '--xla_dump_to=/tmp/x')
  yield tmp_path


def test_with_eigen_adds_and_removes_only_its_flag():
  f = host.with_eigen('--a=1', True)
  assert f.split() == ['--a=1', host.EIGEN_FLAG]
  assert host.with_eigen(f, False) == '--a=1'


def test_explicit_choice_sets_flags(clean_env):
  d = host.configure_cpu_conv('eigen')
  assert d['cpu_conv_path'] == 'eigen'
  assert host.EIGEN_FLAG in os.environ['XLA_FLAGS'].split()
  assert '--xla_dump_to=/tmp/x' in os.environ['XLA_FLAGS']
  d = host.configure_cpu_conv('ynnpack')
  assert d['cpu_conv_path'] == 'ynnpack' and host.EIGEN_FLAG not in os.environ['XLA_FLAGS']


def test_auto_without_measurement_follows_rule(clean_env):
  d = host.configure_cpu_conv('auto')
  assert d['cpu_conv_path'] == 'eigen' and d['cpu_conv_reason'] == host.RULE_REASON
  assert d['cpu_conv_speedup_vs_default'] is None


@pytest.mark.parametrize('speedup,path', [(0.7, 'ynnpack'), (1.6, 'eigen')])
def test_auto_follows_cached_measurement(clean_env, speedup, path):
  mode = host.malloc_mode()  # this process's (retain can't be undone once set)
  cache = host.record_measurement(speedup, {'rows': []}, mode)
  entry = json.load(open(cache))[f'{host.machine_key()}|malloc {mode}']
  assert entry['speedup_eigen'] == speedup and entry['malloc_mode'] == mode
  d = host.configure_cpu_conv('auto')
  assert d['cpu_conv_path'] == path and d['cpu_conv_speedup_vs_default'] == speedup
  assert 'this machine measured' in d['cpu_conv_reason']


def test_auto_ignores_a_measurement_under_the_other_malloc_mode(clean_env):
  other = 'system' if host.malloc_mode() == 'retain' else 'retain'
  host.record_measurement(0.5, {'rows': []}, other)
  d = host.configure_cpu_conv('auto')
  assert d['cpu_conv_path'] == 'eigen' and d['cpu_conv_speedup_vs_default'] is None
  assert d['cpu_conv_reason'].startswith(host.RULE_REASON)
  assert f'taken under malloc={other}' in d['cpu_conv_reason']
  with pytest.raises(ValueError, match='malloc mode'):
    host.record_measurement(1.2, {}, 'auto')


def test_auto_respects_user_flag(clean_env, monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', host.EIGEN_FLAG)
  host.record_measurement(0.5, {}, host.malloc_mode())
  assert host.configure_cpu_conv('auto')['cpu_conv_path'] == 'eigen'


def test_bad_choice_names_field():
  with pytest.raises(host.DeviceConfigError, match='config.cpu_conv'):
    host.configure_cpu_conv('fast')


def test_bad_malloc_choice_names_field():
  with pytest.raises(host.DeviceConfigError, match='config.malloc'):
    host.configure_malloc('jemalloc')


# A child process (the setting is process-wide and cannot be undone) mallocs,
# touches and frees a block 5 times and prints its minor page faults per round,
# for a 64 MiB block on the main thread and an 80 MiB one on a second thread
# (a thread arena holds at most 64 MiB: without M_ARENA_MAX=1 that block falls
# back to mmap). With glibc's defaults each round maps the block afresh (one
# fault per page); retained, rounds after the first reuse the same pages.
_FAULTS_CHILD = r'''
import ctypes, resource, sys, threading
sys.path.insert(0, sys.argv[2])
from kernelscale.measure import host
from kernelscale.report import notes


print(host.configure_malloc(sys.argv[1])['malloc_mode'])
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def rounds(n, out):
  counts = []
  for _ in range(5):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    libc.free(p)
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
  out.append(min(counts[1:]))

out = []
rounds(64 << 20, out)
t = threading.Thread(target=rounds, args=(80 << 20, out))
t.start()
t.join()
print(*out)
'''


def _faults_child(choice, **env):
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-import
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return subprocess.run([sys.executable, '-c', _FAULTS_CHILD, choice, root], check=True,
                        capture_output=True, text=True,
                        env=dict(os.environ, **env)).stdout.split()


@pytest.mark.skipif(host._glibc() is None, reason='malloc=retain is a glibc setting')  # pylint: disable=protected-access
@pytest.mark.parametrize('choice,mode', [('system', 'system'), ('retain', 'retain'),
                                         ('auto', 'retain')])
def test_malloc_retain_stops_per_round_page_faults(choice, mode):
  mode_out, main, thread = _faults_child(choice, JAX_PLATFORMS='cpu')
  page = resource.getpagesize()
  assert mode_out == mode
  for got, size in ((int(main), 64 << 20), (int(thread), 80 << 20)):
    if mode == 'system':
      assert got > size // page // 2  # the block faults in again every round
    else:
      assert got < size // page // 20


@pytest.mark.skipif(host._glibc() is None, reason='malloc=retain is a glibc setting')  # pylint: disable=protected-access
def test_malloc_auto_leaves_defaults_when_an_accelerator_is_expected():
  mode, main, _ = _faults_child('auto', JAX_PLATFORMS='tpu')
  assert mode == 'system' and int(main) > (64 << 20) // resource.getpagesize() // 2


def test_malloc_auto_reason_names_the_accelerator(monkeypatch):
  monkeypatch.setenv('JAX_PLATFORMS', 'cuda')
  d = host.configure_malloc('auto')  # no mallopt: safe in the test process
  assert 'JAX_PLATFORMS=cuda' in d['malloc_reason']


def test_malloc_measurement_cached_and_reported(clean_env):
  assert host.configure_malloc('system')['malloc_speedup_vs_default'] is None
  path = host.record_malloc_measurement(1.42, {'rows': []})
  assert path.startswith(str(clean_env)) and path.endswith(host.MALLOC_CACHE)
  d = host.configure_malloc('system')
  assert d['malloc_speedup_vs_default'] == 1.42 and d['malloc_measured_when']
  rec = dict(d, status='ok', platform='cpu', malloc_mode='retain', cpu_conv_path='eigen')
  assert '1.42x as fast' in notes.platform_notes([rec])[1]
  assert 'no side-by-side measurement' in notes.platform_notes(
      [dict(rec, malloc_speedup_vs_default=None)])[1]
  # the conv-path cache is a separate file, untouched
  assert host.configure_cpu_conv('auto')['cpu_conv_speedup_vs_default'] is None


def test_configure_sets_malloc_before_choosing_the_conv_path(clean_env, monkeypatch):
  # cpu_conv=auto must follow the measurement of the malloc mode the process will run
  # under, so configure() has to settle malloc first.
  calls = []
  monkeypatch.setattr(host, 'configure_malloc',
                      lambda choice: calls.append(choice) or {'malloc': choice})
  monkeypatch.setattr(host, 'malloc_mode', lambda: 'retain' if calls else 'system')
  host.record_measurement(0.5, {}, 'retain')  # YNNPACK faster, under retain only
  d = host.configure('auto', 'auto')
  assert calls == ['auto'] and d['cpu_conv_path'] == 'ynnpack'
  assert d['malloc'] == 'auto'


def test_resolve_cpu_conv_sets_nothing(clean_env):
  host.record_measurement(0.5, {}, 'system')
  before = os.environ['XLA_FLAGS']
  assert host.resolve_cpu_conv('auto', 'system')['cpu_conv_path'] == 'ynnpack'
  assert host.resolve_cpu_conv('auto', 'retain')['cpu_conv_path'] == 'eigen'
  assert os.environ['XLA_FLAGS'] == before
  with pytest.raises(host.DeviceConfigError, match='config.cpu_conv'):
    host.resolve_cpu_conv('fast', 'retain')


def test_a_cache_entry_without_malloc_mode_is_named_not_followed(clean_env):
  path = clean_env / 'kernelscale' / host.CPU_CONV_CACHE
  path.parent.mkdir(parents=True)
  path.write_text(json.dumps({host.machine_key(): {'speedup_eigen': 0.5}}))  # the old key
  d = host.configure_cpu_conv('auto')
  assert d['cpu_conv_path'] == 'eigen' and 'predates keying by malloc mode' in d['cpu_conv_reason']


