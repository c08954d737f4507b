"""The CLI end to end on a tiny config, and every bad input: one line, exit 2, no records."""
import json
import os
import subprocess
import sys

import pytest

from kernelscale.measure import host

# Every test here runs run.py in a subprocess (a jax import each, most compile).
pytestmark = pytest.mark.slow


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = '--config=' + os.path.join(ROOT, 'experiments', 'seed.py') + ':quick'


def _run(*args, cwd=None, cache=None):
  # A private cache dir: the user's cached cpu_conv measurement must not leak in.
  env = dict(os.environ, JAX_PLATFORMS='cpu', XDG_CACHE_HOME=str(cache or '/nonexistent'))
  env.pop('XLA_FLAGS', None)
  return subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'), *args],
                        capture_output=True, text=True, cwd=cwd or ROOT, env=env, timeout=300)


def test_cli_end_to_end_quick(tmp_path):
  wd = tmp_path / 'wd'
  p = _run(QUICK, '--config.kernel_sizes=3,5', f'--workdir={wd}')
  assert p.returncode == 0, p.stderr
  recs = [json.loads(l) for l in open(wd / 'results.jsonl')]
  assert [r['kernel_size'] for r in recs] == [3, 5]
  for r in recs:
    assert r['status'] == 'ok'
    for key in ('lower_s', 'compile_s', 'monitor_compile_s', 'first_step_s', 'step_s_median',
                'step_s_p10', 'step_s_p90', 'step_s_min', 'steps_timed', 'xla_flops',
                'xla_bytes_accessed', 'xla_transcendentals', 'temp_bytes', 'argument_bytes',
                'output_bytes', 'alias_bytes', 'generated_code_bytes', 'analytic_flops',
                'analytic_conv_flops', 'params', 'achieved_flops_per_s', 'epoch_s',
                'kernel_size', 'padding', 'batch_size', 'dtype', 'model', 'platform',
                'device_kind', 'device_count', 'jax_version', 'jaxlib_version', 'xla_flags',
                'status', 'error', 'malloc', 'malloc_mode', 'minor_faults_per_step',
                'other_cpu_share'):
      assert key in r, key
    assert r['malloc_mode'] == ('retain' if host._glibc() else 'system')  # pylint: disable=protected-access
    assert r['steps_timed'] == 3 and r['step_s_p10'] <= r['step_s_median'] <= r['step_s_p90']
    assert r['epoch_s'] == pytest.approx(r['steps_per_epoch'] * r['step_s_median'])
  assert recs[1]['xla_flops'] > recs[0]['xla_flops']
  assert (wd / 'results.md').exists()
  for f in ('ceilings.json', 'analysis.json', 'report.md', 'scaling.png'):
    assert (wd / f).exists(), f
  assert all(r['optimizer_update_s'] > 0 for r in recs)
  assert f'report: {wd / "report.md"}' in p.stdout
  assert 'XLA GFLOP' in p.stdout and 'achieved GFLOP/s' in p.stdout
  assert str(wd) in p.stdout
  assert f'--logdir {wd}/tensorboard' in p.stdout and all(r['phase_s'] for r in recs)
  # No designs in this run: the report points to the experiment that has them.
  assert 'experiments/receptive_field.py' in (wd / 'report.md').read_text()


@pytest.mark.parametrize('args,field', [
    (('--config.kernel_sizes=0',), 'config.kernel_sizes'),
    (('--config.kernel_sizes=2.5',), 'config.kernel_sizes'),
    (('--config.kernel_sizes=3,abc',), 'config.kernel_sizes'),
    (('--config.batch_size=0',), 'config.batch_size'),
    (('--config.batch_size=x',), 'config.batch_size'),
    (('--config.paddings=FULL',), 'config.paddings'),
    (('--config.dtype=int8',), 'config.dtype'),
    (('--config.kernel_sizes=11', '--config.paddings=VALID'), 'conv2'),
    (('--config.nosuch=1',), 'nosuch'),
    (('--config.profile_steps=0',), 'config.profile_steps'),
    (('--config.conv_algo=fast',), 'config.conv_algo'),
    (('--config.malloc=jemalloc',), 'config.malloc'),
    (('--config.data_dir=/tmp',), 'config.data_dir'),
    (('--config.download=True',), 'config.download'),
    (('--config.model=seed,seed_wide',), 'config.model'),
    (('--config.model=seed,seed',), 'config.model'),
    (('--config.model=seed,seed_dilated', '--config.kernel_sizes=4'), 'config.kernel_sizes'),
    (('--config.model=seed_separable', '--config.conv_algo=auto'), 'config.conv_algo'),
    (('--config=' + os.path.join(ROOT, 'experiments', 'backends.py') + ':quick',
      '--config.model=seed,seed_dilated'), 'config.model'),
    (('--config=' + os.path.join(ROOT, 'experiments', 'accuracy.py') + ':quick',
      '--config.profiling=False'), '--config.profiling: unknown field'),
])
def test_bad_input_one_line_nonzero_no_records(tmp_path, args, field):
  wd = tmp_path / 'wd'
  p = _run(QUICK, *args, f'--workdir={wd}')
  assert p.returncode == 2
  lines = [l for l in p.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith('error:') and field in lines[0], p.stderr
  assert not (wd / 'results.jsonl').exists()


def test_valid_kernel_too_big_message_names_input_and_largest(tmp_path):
  p = _run(QUICK, '--config.kernel_sizes=11', '--config.paddings=VALID',
           f'--workdir={tmp_path}/wd')
  assert 'its input is 9x9' in p.stderr and 'is 9' in p.stderr


def test_unknown_experiment_file(tmp_path):
  p = _run('--config=experiments/nope.py', f'--workdir={tmp_path}/wd')
  assert p.returncode == 2 and p.stderr.startswith('error: --config') and 'nope.py' in p.stderr
  assert len(p.stderr.strip().splitlines()) == 1


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  p = _run(QUICK, f'--workdir={blocker}/sub')
  assert p.returncode == 2 and p.stderr.startswith('error: --workdir')
  assert len(p.stderr.strip().splitlines()) == 1


def test_help_explains_flags():
  p = _run('--help')
  assert p.returncode == 0
  assert '--config' in p.stdout and '--workdir' in p.stdout and 'kernel_sizes' in p.stdout
  # Every config field with its default and meaning (experiments/seed.py FIELDS).
  assert '--config.kernel_sizes=3,5,7,9 ' in p.stdout and '--config.profile_steps=7 ' in p.stdout


FIXTURES = os.path.join(ROOT, 'tests', 'fixtures')


def test_report_only_rebuilds_from_results_and_predicts(tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  wd = tmp_path / 'wd'
  shutil.copytree(os.path.join(FIXTURES, 'seed_cpu'), wd)
  before = (wd / 'results.jsonl').read_text()
  p = _run('--report_only', f'--workdir={wd}', '--predict=13')
  assert p.returncode == 0, p.stderr
  assert (wd / 'results.jsonl').read_text() == before  # nothing measured or appended
  for f in ('analysis.json', 'report.md', 'scaling.png', 'compile_vs_step.png', 'roofline.png'):
    assert (wd / f).exists(), f
  assert f'report: {wd / "report.md"}' in p.stdout
  same = [l for l in p.stdout.splitlines() if l.startswith('predicted step at k=13 SAME')]
  assert len(same) == 1 and 'interval' in same[0] and ' ms' in same[0]
  assert 'k=13 VALID: none' in p.stdout and 'largest kernel' in p.stdout
  saved = {q['padding']: q for q in json.load(open(wd / 'analysis.json'))['predictions']}
  assert saved['SAME']['k'] == 13 and saved['SAME']['lo_s'] < saved['SAME']['step_s'] < saved['SAME']['hi_s']
  assert f"{saved['SAME']['step_s'] * 1e3:.1f} ms" in same[0]
  assert 'largest kernel' in saved['VALID']['reason']


@pytest.mark.parametrize('args,msg', [
    (('--report_only',), '--workdir'),
    (('--report_only', '--workdir=/nonexistent/dir'), 'no results.jsonl'),
    (('--report_only', '--workdir=/tmp', '--predict=0'), '--predict'),
    (('--predict=x',), 'predict'),
])
def test_report_only_bad_input(args, msg):
  p = _run(*args)
  lines = [l for l in p.stderr.splitlines() if l.strip()]
  assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith('error:'), p.stderr
  assert msg in lines[0]


def test_paddings_as_comma_list_and_existing_workdir_refused(tmp_path):
  wd = tmp_path / 'wd'
  p = _run(QUICK, '--config.kernel_sizes=3', '--config.paddings=SAME,VALID',
           '--config.profile=False', f'--workdir={wd}')
  assert p.returncode == 0, p.stderr
  recs = [json.loads(l) for l in open(wd / 'results.jsonl')]
  assert [r['padding'] for r in recs] == ['SAME', 'VALID']
  # A second run into the same folder would mix two runs in one analysis.
  p = _run(QUICK, '--config.kernel_sizes=3', f'--workdir={wd}')
  assert p.returncode == 2 and p.stderr.startswith('error: --workdir') and 'report_only' in p.stderr
  assert len(open(wd / 'results.jsonl').readlines()) == 2


@pytest.mark.parametrize('args,field', [
    (('--config.kernel_sizes=3,3',), 'config.kernel_sizes'),
    (('--config.paddings=SAME,SAME',), 'config.paddings'),
])
def test_duplicate_points_refused(tmp_path, args, field):
  p = _run(QUICK, *args, f'--workdir={tmp_path}/wd')
  assert p.returncode == 2 and p.stderr.startswith(f'error: {field}')


def test_report_only_prints_the_points_set_apart(tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  wd = tmp_path / 'wd'
  shutil.copytree(os.path.join(FIXTURES, 'seed_cpu'), wd)
  recs = [json.loads(l) for l in open(wd / 'results.jsonl')]
  for r in recs:
    if r['padding'] == 'VALID' and r['kernel_size'] == 7:
      r['conv_impl'] = {'conv2/backward_input': 'XLA CPU unoptimized loop (kernel reversed)'}
  (wd / 'results.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in recs))
  p = _run('--report_only', f'--workdir={wd}', '--predict=9')
  assert p.returncode == 0, p.stderr
  [loo] = [l for l in p.stdout.splitlines() if l.startswith('leave-one-out')]
  assert "set apart (XLA's unoptimized conv loop, see report): VALID k=7" in loo
  assert 'predicted step at k=9 VALID (k=7 set apart):' in p.stdout


def test_receptive_field_designs_end_to_end(tmp_path):
  # Two designs side by side: one record each per k, both in the tables, and the
  # report compares them.
  wd = tmp_path / 'wd'
  rf = '--config=' + os.path.join(ROOT, 'experiments', 'receptive_field.py') + ':quick'
  p = _run(rf, '--config.model=seed,seed_dilated', '--config.profile=False', f'--workdir={wd}')
  assert p.returncode == 0, p.stderr
  recs = [json.loads(l) for l in open(wd / 'results.jsonl')]
  # Each k's designs one after another: their ratio is timed close together.
  assert [(r['block'], r['kernel_size']) for r in recs] == [
      ('plain', 3), ('dilated', 3), ('plain', 5), ('dilated', 5)]
  assert all(r['status'] == 'ok' for r in recs)
  # k=3 dilated is the plain network; k=5 dilated does 9 taps instead of 25.
  assert recs[1]['analytic_flops'] == recs[0]['analytic_flops']
  assert recs[3]['analytic_flops'] < 0.6 * recs[2]['analytic_flops']
  assert '5 dilated' in p.stdout and 'The same 5×5 receptive field for less' in p.stdout
  report = (wd / 'report.md').read_text()
  assert '## Same receptive field, other designs' in report
  assert '| 5 | SAME | dilated |' in report
  assert 'Control: at k=3 dilated is the plain network itself' in report
