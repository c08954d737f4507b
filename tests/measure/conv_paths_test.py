"""experiments/backends.py: both CPU conv paths in child processes, merged and compared."""
import json
import os
import subprocess
import sys

import pytest

from experiments import backends as backends_config
from kernelscale.measure import conv_paths, host
from kernelscale.report import conv_paths as conv_paths_report


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_speed_table_ratio_and_geomean():
  recs = [{'status': 'ok', 'padding': 'SAME', 'kernel_size': 3, 'cpu_conv_path': 'ynnpack',
           'step_s_median': 0.2},
          {'status': 'ok', 'padding': 'SAME', 'kernel_size': 3, 'cpu_conv_path': 'eigen',
           'step_s_median': 0.1},
          {'status': 'ok', 'padding': 'SAME', 'kernel_size': 5, 'cpu_conv_path': 'ynnpack',
           'step_s_median': 0.3},
          {'status': 'ok', 'padding': 'SAME', 'kernel_size': 5, 'cpu_conv_path': 'eigen',
           'step_s_median': 0.375}]
  rows, geo = conv_paths.speed_table(recs)
  assert [r['speedup_eigen'] for r in rows] == pytest.approx([2.0, 0.8])
  assert abs(geo - (2.0 * 0.8) ** 0.5) < 1e-12
  assert 'Eigen is faster' in conv_paths_report.markdown(rows, geo)


def test_child_command_passes_fields_and_path():
  c = backends_config.get_config('quick')
  cmd = conv_paths.child_command(c, 'eigen', '/tmp/w')
  assert '--config.cpu_conv=eigen' in cmd and '--config.kernel_sizes=3,5' in cmd
  assert not any('compare_cpu_conv' in a or 'rounds' in a for a in cmd)


@pytest.mark.slow  # run.py and its two child runs as subprocesses
def test_backends_quick_end_to_end(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XDG_CACHE_HOME=str(tmp_path / 'cache'))
  p = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'),
                      f'--config={ROOT}/experiments/backends.py:quick',
                      '--config.kernel_sizes=3', f'--workdir={tmp_path}/wd'],
                     capture_output=True, text=True, env=env, timeout=300)
  assert p.returncode == 0, p.stderr
  recs = [json.loads(l) for l in open(tmp_path / 'wd' / 'results.jsonl')]
  assert sorted(r['cpu_conv_path'] for r in recs) == ['eigen', 'ynnpack']
  eig = [r for r in recs if r['cpu_conv_path'] == 'eigen'][0]
  assert '-individual_convolution' in eig['xla_flags']
  assert 'Eigen speed-up' in (tmp_path / 'wd' / 'backends.md').read_text()
  # The quick form never decides for later runs.
  assert not (tmp_path / 'cache' / 'kernelscale' / 'cpu_conv.json').exists()


@pytest.mark.slow  # three run.py subprocesses
def test_backends_bad_child_field_fails_before_any_child(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XDG_CACHE_HOME=str(tmp_path / 'cache'))
  for arg, field in (('--config.kernel_sizes=0', 'config.kernel_sizes'),
                     ('--config.cpu_conv=eigen', 'config.cpu_conv'),
                     ('--config.malloc=jemalloc', 'config.malloc')):
    p = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'),
                        f'--config={ROOT}/experiments/backends.py:quick', arg,
                        f'--workdir={tmp_path}/wd'],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith(f'error: {field}'), p.stderr
    assert not (tmp_path / 'wd' / 'ynnpack-round0').exists()


@pytest.mark.slow  # run.py subprocess
def test_report_only_refuses_mixed_conv_paths(tmp_path):
  wd = tmp_path / 'wd'
  wd.mkdir()
  with open(wd / 'results.jsonl', 'w') as f:
    for path in ('ynnpack', 'eigen'):
      f.write(json.dumps({'status': 'ok', 'kernel_size': 3, 'padding': 'SAME',
                          'cpu_conv_path': path}) + '\n')
  p = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'), '--report_only',
                      f'--workdir={wd}'], capture_output=True, text=True, timeout=120)
  assert p.returncode == 2 and p.stderr.startswith('error: --workdir') and 'backends.md' in p.stderr


def test_cache_is_written_only_for_nn_conv(tmp_path, monkeypatch):
  # cpu_conv=auto's cached choice is for nn.Conv's convolutions: a comparison run
  # with conv_algo=auto must not decide it (its children are faked here).
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  recs = [{'status': 'ok', 'padding': 'SAME', 'kernel_size': 3, 'cpu_conv_path': p,
           'step_s_median': s, 'malloc_mode': 'retain'} for p, s in (('ynnpack', 0.2), ('eigen', 0.1))]
  monkeypatch.setattr(conv_paths, 'compare', lambda config, workdir, log: recs)
  cache = tmp_path / 'cache' / 'kernelscale' / 'cpu_conv.json'
  c = backends_config.get_config()
  c.conv_algo = 'auto'
  logs = []
  _, rows, geo = conv_paths.run(c, str(tmp_path), logs.append)
  assert not cache.exists() and any('not cached' in l for l in logs)
  conv_paths_report.write(rows, geo, c.conv_algo, str(tmp_path))
  assert 'conv_algo=auto' in (tmp_path / 'backends.md').read_text()
  c.conv_algo = 'xla'
  recs[0]['malloc_mode'] = 'system'  # children that ran under different malloc modes
  conv_paths.run(c, str(tmp_path), logs.append)
  assert not cache.exists() and 'malloc modes' in logs[-1]
  recs[0]['malloc_mode'] = 'retain'
  conv_paths.run(c, str(tmp_path), logs.append)
  assert list(json.load(open(cache))) == [host.machine_key() + '|malloc retain']
