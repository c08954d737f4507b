"""Issue 18's table of bad inputs: each one is one `error:` line and a non-zero exit, no traceback.

One test runs the whole table (run.py in a subprocess per case, two at a time)
and lists every case that printed a traceback or not the expected line.
"""
import concurrent.futures
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = os.path.join(ROOT, 'experiments', 'seed.py')
QUICK = f'--config={SEED}:quick'
OK_LINE = json.dumps({'point': 'seed-k3-SAME-float32-b8', 'padding': 'SAME', 'kernel_size': 3,
                      'status': 'ok', 'step_s_median': 0.01, 'run_id': 'a'})


def _write(wd, name, text):
  os.makedirs(wd, exist_ok=True)
  with open(os.path.join(wd, name), 'w', encoding='utf-8') as f:
    f.write(text)


def _config_file(wd, body):
  _write(wd, 'exp.py', 'import ml_collections\n' + body)
  return f'--config={os.path.join(wd, "exp.py")}'


def _seed_without(field):
  return (f'import importlib.util\nspec = importlib.util.spec_from_file_location("s", {SEED!r})\n'
          'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n'
          f'def get_config(arg=None):\n  c = m.get_config("quick")\n  del c["{field}"]\n'
          '  return c\n')


# (name, args (a callable of the case's tmp folder, or a tuple), extra env, expected in stderr)
FIELDS = [
    ('k0', ('--config.kernel_sizes=0',), 'config.kernel_sizes'),
    ('k2.5', ('--config.kernel_sizes=2.5',), 'config.kernel_sizes'),
    ('kabc', ('--config.kernel_sizes=3,abc',), 'config.kernel_sizes'),
    ('kdup', ('--config.kernel_sizes=3,3',), 'config.kernel_sizes'),
    ('kneg', ('--config.kernel_sizes=-3',), 'config.kernel_sizes'),
    ('kempty', ('--config.kernel_sizes=',), 'config.kernel_sizes'),
    ('k_valid_too_big', ('--config.kernel_sizes=11', '--config.paddings=VALID'), 'conv2'),
    ('k_params_too_big', ('--config.kernel_sizes=3001',), 'memory available'),
    ('b0', ('--config.batch_size=0',), 'config.batch_size'),
    ('bx', ('--config.batch_size=x',), 'config.batch_size'),
    ('bneg', ('--config.batch_size=-1',), 'config.batch_size'),
    ('pad_full', ('--config.paddings=FULL',), 'config.paddings'),
    ('pad_empty', ('--config.paddings=',), 'config.paddings'),
    ('pad_dup', ('--config.paddings=SAME,SAME',), 'config.paddings'),
    ('dtype', ('--config.dtype=int8',), 'config.dtype'),
    ('model', ('--config.model=nosuch',), 'config.model'),
    ('model_dup', ('--config.model=seed,seed',), 'config.model'),
    ('model_empty', ('--config.model=',), 'config.model'),
    ('lr_nan', ('--config.learning_rate=nan',), 'config.learning_rate'),
    ('lr_inf', ('--config.learning_rate=inf',), 'config.learning_rate'),
    ('lr_neg_inf', ('--config.learning_rate=-inf',), 'config.learning_rate'),
    ('lr_neg', ('--config.learning_rate=-1',), 'config.learning_rate'),
    ('lr_zero', ('--config.learning_rate=0',), 'config.learning_rate'),
    ('lr_text', ('--config.learning_rate=fast',), 'learning_rate'),
    ('seed_neg', ('--config.seed=-1',), 'config.seed'),
    ('warmup_neg', ('--config.warmup_steps=-1',), 'config.warmup_steps'),
    ('timed_zero', ('--config.timed_steps=0',), 'config.timed_steps'),
    ('examples_zero', ('--config.train_examples=0',), 'config.train_examples'),
    ('conv_algo', ('--config.conv_algo=fast',), 'config.conv_algo'),
    ('malloc', ('--config.malloc=jemalloc',), 'config.malloc'),
    ('cpu_conv', ('--config.cpu_conv=fast',), 'config.cpu_conv'),
    ('precision', ('--config.precision=low',), 'config.precision'),
    ('profile_steps', ('--config.profile_steps=0',), 'config.profile_steps'),
    ('profile_text', ('--config.profile=maybe',), 'profile'),
    ('unknown_field', ('--config.nosuch=1',), 'nosuch'),
    ('data_unknown', ('--config.data=nosuch_dataset',), 'config.data'),
    ('download', ('--config.download=True',), 'config.download'),
    ('epochs_neg', ('--config.epochs=-1',), 'epochs'),
    ('data_dir_without_data', ('--config.data_dir=/tmp',), 'config.data_dir'),
]
CASES = [(n, (QUICK, *a), {}, e) for n, a, e in FIELDS] + [
    ('config_missing', ('--config=/nonexistent/exp.py',), {}, '--config'),
    ('config_bad_arg', (f'--config={SEED}:bogus',), {}, 'bogus'),
    ('config_syntax', lambda wd: (_config_file(wd, 'def get_config(:\n'),), {}, '--config'),
    ('config_raises', lambda wd: (_config_file(wd, 'def get_config():\n  raise KeyError("x")\n'),),
     {}, '--config'),
    ('config_missing_seed', lambda wd: (_config_file(wd, _seed_without('seed')),), {},
     'config.seed'),
    ('config_missing_timed', lambda wd: (_config_file(wd, _seed_without('timed_steps')),), {},
     'config.timed_steps'),
    ('predict_zero', (QUICK, '--predict=0'), {}, '--predict'),
    ('predict_text', (QUICK, '--predict=x'), {}, 'predict'),
    ('positional', (QUICK, 'extra'), {}, 'unexpected arguments'),
    ('unknown_flag', ('--nosuch=1',), {}, 'nosuch'),
    ('from_idx_alone', ('--from_idx=/tmp',), {}, '--from_idx'),
    ('prepare_no_idx', ('--prepare=fashion_mnist',), {}, '--from_idx'),
    ('prepare_missing_idx', ('--prepare=fashion_mnist', '--from_idx=/nonexistent'), {}, 'error'),
    ('prepare_unknown', ('--prepare=nosuch', '--from_idx=/tmp'), {}, 'error'),
    ('report_no_workdir', ('--report_only',), {}, '--workdir'),
    ('report_missing', ('--report_only', '--workdir=/nonexistent/w'), {}, '--workdir'),
    ('report_empty', lambda wd: (_write(wd, 'results.jsonl', ''), '--report_only',
                                 f'--workdir={wd}')[1:], {}, 'no records'),
    ('report_bad_middle', lambda wd: (_write(wd, 'results.jsonl', '{x\n' + OK_LINE + '\n'),
                                      '--report_only', f'--workdir={wd}')[1:], {}, ':1:'),
    ('report_binary', lambda wd: (_write(wd, 'results.jsonl', '\x00\x01\x02\n\x03\n'),
                                  '--report_only', f'--workdir={wd}')[1:], {}, ':1:'),
    ('report_mixed_runs', lambda wd: (_write(wd, 'results.jsonl', OK_LINE + '\n' + OK_LINE.replace(
        '"a"', '"b"') + '\n'), '--report_only', f'--workdir={wd}')[1:], {}, 'another run'),
    ('report_text_number', lambda wd: (_write(wd, 'results.jsonl', OK_LINE.replace(
        '0.01', '"abc"') + '\n'), '--report_only', f'--workdir={wd}')[1:], {}, 'not a number'),
    ('report_bad_k', lambda wd: (_write(wd, 'results.jsonl', OK_LINE.replace(
        '"kernel_size": 3', '"kernel_size": "x"') + '\n'), '--report_only', f'--workdir={wd}')[1:],
     {}, 'kernel_size'),
    ('report_lacks_fields', lambda wd: (_write(wd, 'results.jsonl', OK_LINE + '\n'),
                                        '--report_only', f'--workdir={wd}')[1:], {}, 'cannot use'),
    ('report_bad_status', lambda wd: (_write(wd, 'results.jsonl', OK_LINE.replace(
        '"ok"', '"great"') + '\n'), '--report_only', f'--workdir={wd}')[1:], {}, 'status'),
    ('resume_no_workdir', (QUICK, '--resume'), {}, '--resume'),
    ('resume_nothing_there', lambda wd: ('--resume', f'--workdir={wd}/none'), {}, 'config.json'),
    ('resume_other_config', lambda wd: (
        _write(wd, 'config.json', json.dumps({'run_id': 'a', 'config': {'batch_size': 4}})),
        QUICK, '--resume', f'--workdir={wd}')[1:], {}, 'differs'),
    ('workdir_is_file', lambda wd: (_write(wd, 'f', ''), QUICK, f'--workdir={wd}/f')[1:], {},
     '--workdir'),
    ('workdir_under_file', lambda wd: (_write(wd, 'f', ''), QUICK, f'--workdir={wd}/f/x')[1:], {},
     '--workdir'),
    ('workdir_used', lambda wd: (_write(wd, 'results.jsonl', OK_LINE + '\n'), QUICK,
                                 f'--workdir={wd}')[1:], {}, 'already holds'),
    ('workdir_locked', lambda wd: (_write(wd, 'lock.pid', json.dumps({'pid': os.getppid()})),
                                   QUICK, f'--workdir={wd}')[1:], {}, 'in use by another run'),
    ('jax_platforms_gpu', (QUICK,), {'JAX_PLATFORMS': 'gpu'}, 'JAX_PLATFORMS=gpu'),
    ('jax_platforms_nosuch', (QUICK,), {'JAX_PLATFORMS': 'nosuch'}, 'JAX_PLATFORMS=nosuch'),
    ('xla_flags_unknown', (QUICK,), {'XLA_FLAGS': '--xla_nosuch=1'}, 'XLA_FLAGS'),
    ('xla_flags_conflict', (QUICK, '--config.cpu_conv=ynnpack'),
     {'XLA_FLAGS': '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution'}, 'XLA_FLAGS'),
]


def _one(case, tmp):
  name, args, env_extra, expect = case
  wd = os.path.join(tmp, name)
  os.makedirs(wd, exist_ok=True)
  if callable(args):
    args = args(wd)
  if not any(a.startswith('--workdir') or a == '--resume' for a in args):
    args = (*args, f'--workdir={wd}/run')
  env = dict(os.environ, JAX_PLATFORMS='cpu', XDG_CACHE_HOME=os.path.join(tmp, 'cache'))
  env.pop('XLA_FLAGS', None)
  env.update(env_extra)
  p = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'), *args], capture_output=True,
                     text=True, cwd=ROOT, env=env, timeout=240, check=False)
  out = p.stdout + p.stderr
  lines = [l for l in p.stderr.splitlines() if l.strip()]
  problems = []
  if 'Traceback' in out:
    problems.append('traceback')
  if p.returncode == 0:
    problems.append('exit 0')
  if not lines or not lines[-1].startswith('error:') or expect not in lines[-1]:
    problems.append(f'last line {lines[-1] if lines else None!r}, expected {expect!r}')
  has_records = os.path.exists(os.path.join(wd, 'run', 'results.jsonl'))
  if has_records:
    problems.append('records written')
  return name, problems


def test_every_bad_input_is_one_line_without_traceback(tmp_path):
  assert len(CASES) >= 50
  assert len({c[0] for c in CASES}) == len(CASES)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    results = list(pool.map(lambda c: _one(c, str(tmp_path)), CASES))
  bad = {name: problems for name, problems in results if problems}
  assert not bad, json.dumps(bad, indent=1)
