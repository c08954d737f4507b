"""kernelscale command line: sweep kernel sizes, measure, write results.

    python run.py                                   # default: experiments/seed.py
    python run.py --config=experiments/seed.py:quick
    python run.py --config.kernel_sizes=3,5,7 --config.batch_size=64 --workdir=runs/mine
    python run.py --report_only --workdir=runs/mine --predict=13   # re-analyse, no measuring
    python run.py --config=experiments/accuracy.py:quick   # accuracy on Fashion-MNIST
    python run.py --config.conv_algo=auto           # same network, faster conv algorithm per layer

Real data is read offline from TFDS's array_record format. Prepare Fashion-MNIST
once from Debian's package (no network, no TensorFlow):

    apt-get install dataset-fashion-mnist
    python run.py --prepare=fashion_mnist --from_idx=/usr/share/datasets/fashion-mnist

This file is the only place flags live; everything else takes a config.
"""
from __future__ import annotations

import datetime
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_HERE = os.path.dirname(os.path.abspath(__file__))


def _fail(msg: str) -> None:
  print(f'error: {msg}', file=sys.stderr)
  sys.exit(2)


try:
  _CONFIG = config_flags.DEFINE_config_file(
      'config', os.path.join(_HERE, 'experiments', 'seed.py'),
      'Experiment config file, optionally with an argument after a colon '
      '(e.g. experiments/seed.py:quick; experiments/receptive_field.py compares designs with '
      'the same receptive field). Any field can be overridden with '
      '--config.<field>=value, e.g. --config.kernel_sizes=3,5,7 '
      '--config.paddings=SAME --config.batch_size=64 --config.dtype=bfloat16 '
      '--config.model=seed,seed_dilated.',
      lock_config=True)
except (AttributeError, KeyError) as _e:
  # ml_collections resolves --config.<field> overrides while defining the
  # flag; an unknown field surfaces here as AttributeError.
  _fail(f'--config: unknown field {str(_e).strip(chr(34))} in a --config.<field> override; '
        'see the experiment file for its fields')
_WORKDIR = flags.DEFINE_string(
    'workdir', None,
    'Output folder for results.jsonl, results.md and traces. '
    'Default: ./runs/<experiment>-<timestamp>/.')
_REPORT_ONLY = flags.DEFINE_bool(
    'report_only', False,
    'Measure nothing: rebuild analysis.json, report.md and the plots from the '
    'results.jsonl (and ceilings.json) already in --workdir.')
_PREDICT = flags.DEFINE_integer(
    'predict', None,
    'Also predict the step time, with an interval, at this kernel size (per padding '
    'where it fits), from the model with the smallest leave-one-out error; printed and '
    'saved as `predictions` in analysis.json.')
_PREPARE = flags.DEFINE_string(
    'prepare', None,
    'Prepare a TFDS dataset (fashion_mnist or mnist) from local IDX files given by '
    '--from_idx, write it in the official TFDS array_record layout under --data_dir, '
    'and exit. No network, no TensorFlow. For Fashion-MNIST: '
    'apt-get install dataset-fashion-mnist, then --prepare=fashion_mnist '
    '--from_idx=/usr/share/datasets/fashion-mnist.')
_FROM_IDX = flags.DEFINE_string(
    'from_idx', None, 'With --prepare: folder holding train-images-idx3-ubyte[.gz], '
    'train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz].')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'With --prepare: TFDS data dir to write to (default: $TFDS_DATA_DIR or '
    '~/tensorflow_datasets). Experiments read from --config.data_dir.')


def _prepare() -> None:
  """--prepare: writes the dataset and exits; bad input is one line, exit 2."""
  if not _FROM_IDX.value:
    _fail(f'--from_idx: --prepare={_PREPARE.value} needs --from_idx=DIR, the folder of its IDX '
          'files (Fashion-MNIST: apt-get install dataset-fashion-mnist, then '
          '--from_idx=/usr/share/datasets/fashion-mnist)')
  from kernelscale.data import prepare  # pylint: disable=g-import-not-at-top
  try:
    out = prepare.prepare_from_idx(_PREPARE.value, _FROM_IDX.value, _DATA_DIR.value)
  except prepare.PrepareError as e:
    _fail(str(e))
  print(f'prepared: {out}')


def main(argv):
  # jax logs each backend it probes and fails to find (e.g. no libtpu on a CPU
  # machine) at INFO, which absl prints by default; only warnings matter here.
  # --verbosity=0 restores it.
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}; flags take the form --name=value')
  if _PREPARE.value is not None:
    _prepare()
    return
  if _FROM_IDX.value or _DATA_DIR.value:
    _fail(f'--{"from_idx" if _FROM_IDX.value else "data_dir"}: only used with --prepare; '
          'experiments read their data dir from --config.data_dir')
  if _PREDICT.value is not None and _PREDICT.value < 1:
    _fail(f'--predict: {_PREDICT.value} is not a kernel size >= 1')
  if _REPORT_ONLY.value:
    _report_only(_WORKDIR.value)
    return
  config = _load_config()
  workdir = _WORKDIR.value or os.path.join(
      'runs', f'{config.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}')

  if config.get('compare_cpu_conv'):
    _compare_backends(config, workdir)
    return

  # XLA reads XLA_FLAGS once, when jax initialises its backend: choose the
  # CPU conv path first, and import jax-using modules only afterwards.
  from kernelscale.measure import host  # pylint: disable=g-import-not-at-top
  try:
    backend = host.configure(config.cpu_conv, config.get('malloc', 'auto'))
  except host.DeviceConfigError as e:
    _fail(str(e))
  from kernelscale.net import models  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import profiling, sweep
  from kernelscale.report import markdown
  try:
    sweep.validate(config)
    sweep.check_workdir(workdir)
  except (sweep.ConfigError, models.ShapeError) as e:
    _fail(str(e))
  print(f'workdir: {os.path.abspath(workdir)}')
  print(f'cpu conv path: {backend["cpu_conv_path"]} ({backend["cpu_conv_reason"]})')
  print(f'malloc: {backend["malloc_mode"]} ({backend["malloc_reason"]})')
  try:
    recs = sweep.run(config, workdir, extra_context=backend)
  except KeyboardInterrupt:
    _interrupted(workdir)
  print()
  print(markdown.text_table(recs))
  md = markdown.write_results_md(recs, workdir)
  print(f'\nresults: {os.path.join(os.path.abspath(workdir), "results.jsonl")}')
  print(f'summary: {os.path.abspath(md)}')
  tb = profiling.tensorboard_command(workdir)
  if tb:
    print(f'traces:  {tb}')
  if not any(r['status'] == 'ok' for r in recs):
    sys.exit(1)
  from kernelscale.measure import ceilings  # pylint: disable=g-import-not-at-top
  try:
    # Best of many calls: other processes on a shared machine only slow calls
    # down, and the report flags a median far below the best.
    ceil = ceilings.load_or_measure(workdir)
  except Exception as e:  # pylint: disable=broad-except
    # The sweep's records stand without ceilings; the roofline is then left out.
    print(f'ceilings not measured: {type(e).__name__}: {e}', file=sys.stderr)
    ceil = None
  _analyse(recs, workdir, ceil)


def _report_only(workdir):
  """--report_only: everything from the workdir's files, nothing measured."""
  if not workdir:
    _fail('--workdir: --report_only needs the --workdir of an earlier run')
  path = os.path.join(workdir, 'results.jsonl')
  if not os.path.isfile(path):
    _fail(f'--workdir: no results.jsonl in {workdir!r}; run a sweep there first')
  from kernelscale.measure import ceilings  # pylint: disable=g-import-not-at-top
  from kernelscale import records
  from kernelscale.report import markdown
  try:
    recs = records.load(path)
  except ValueError as e:
    _fail(f'--workdir: {e}')
  if not recs:
    _fail(f'--workdir: {path} holds no records')
  paths = {r.get('cpu_conv_path') for r in recs if r.get('cpu_conv_path')}
  if len(paths) > 1:
    # One analysis over two conv paths would fit a law through two machines.
    _fail(f'--workdir: {workdir!r} holds records of several CPU conv paths '
          f'({", ".join(sorted(paths))}: an experiments/backends.py run); its comparison is '
          'backends.md there; --report_only works on each <path>-roundN folder inside it')
  ok = [r for r in recs if r.get('status') == 'ok']
  key = ceilings.device_key(ok[0].get('platform'), ok[0].get('device_kind')) if ok else None
  print(markdown.text_table(recs))
  markdown.write_results_md(recs, workdir)
  _analyse(recs, workdir, ceilings.load(workdir).get(key))


def _analyse(recs, workdir, ceil):
  """Writes analysis.json, report.md and plots; prints the answer, paths and --predict."""
  from kernelscale.analysis import fits  # pylint: disable=g-import-not-at-top
  from kernelscale.report import markdown
  out = markdown.write_all(recs, workdir, ceil, predict_k=_PREDICT.value)
  res = out['analysis']
  print('\n' + ' '.join(res['answer']))
  for c in res['claims']:
    print(f'  claim {c["id"]}: {c["verdict"]}')
  if res['loo_median_abs_rel_error'] is not None:
    line = (f'leave-one-out median |error| {res["loo_median_abs_rel_error"]:.1%} '
            f'({res["prediction_model_words"]})')
    off = res['loo'][res['prediction_model']]['set_apart']
    if off:
      line += (f'; set apart (XLA\'s unoptimized conv loop, see report): '
               + ', '.join(p['where'] for p in off))
      if res['loo_all_points_median_abs_rel_error'] is not None:
        line += f'; {res["loo_all_points_median_abs_rel_error"]:.1%} with them'
    print(line)
  elif res.get('unoptimized_loop_points'):
    print('leave-one-out: no law could be fitted once the points run as XLA\'s unoptimized conv '
          'loop were set apart (see report)')
  if _PREDICT.value is not None:
    for p in res['predictions']:  # also in analysis.json
      head = f'predicted step at k={p["k"]} {p["group"]}:'
      if p.get('set_apart_k'):
        head = head[:-1] + f' (k={",".join(map(str, p["set_apart_k"]))} set apart):'
      if 'reason' in p:
        print(f'{head} none ({p["reason"]})')
      elif p['lo_s'] is None:
        print(f'{head} {p["step_s"] * 1e3:.1f} ms (no interval: too few points) '
              f'[{fits.MODEL_WORDS[p["model"]]}]')
      else:
        print(f'{head} {p["step_s"] * 1e3:.1f} ms, {p["interval"]:.0%} interval '
              f'{p["lo_s"] * 1e3:.1f}–{p["hi_s"] * 1e3:.1f} ms '
              f'[{fits.MODEL_WORDS[p["model"]]}, measured k={p["measured_k"]}]')
  print(f'analysis: {os.path.abspath(out["analysis_json"])}')
  print(f'report: {os.path.abspath(out["report_md"])}')


def _interrupted(workdir: str) -> None:
  """Ctrl-C mid-sweep: say what was kept and how to use it, exit 130."""
  path = os.path.join(workdir, 'results.jsonl')
  n = 0
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      n = sum(1 for line in f if line.strip())
  print(f'\ninterrupted: {n} finished point(s) kept in {os.path.abspath(path)}'
        + (f'; build their report with: python run.py --report_only --workdir={workdir}'
           if n else ''), file=sys.stderr)
  sys.stdout.flush()
  sys.stderr.flush()
  # Records are fsynced already. Skip interpreter teardown: with a step or a
  # profiler session cut off mid-way, XLA's runtime can crash while exiting.
  os._exit(130)


def _compare_backends(config, workdir: str) -> None:
  """experiments/backends.py: each CPU conv path in its own child process."""
  from kernelscale.measure import conv_paths, host, sweep  # pylint: disable=g-import-not-at-top
  from kernelscale.net import models
  for path in config.compare_cpu_conv:
    if path not in host.CPU_CONV_CHOICES[1:]:
      _fail(f'config.compare_cpu_conv: unknown path {path!r}; use ynnpack and/or eigen')
  if config.cpu_conv != 'auto':
    _fail(f'config.cpu_conv: {config.cpu_conv!r} has no effect here: this experiment runs each '
          'path of config.compare_cpu_conv in turn')
  try:
    pts = sweep.validate(config)  # the children's fields, before any child starts
    if len({pt.model for pt in pts}) > 1:
      _fail(f'config.model: {config.model!r}: this experiment compares conv paths on one '
            'network (its speed-up, cached for cpu_conv=auto, is a median over points); give '
            'one model')
    sweep.check_workdir(workdir)
  except (sweep.ConfigError, models.ShapeError) as e:
    _fail(str(e))
  print(f'workdir: {os.path.abspath(workdir)}')
  try:
    _, md = conv_paths.run(config, workdir)
  except RuntimeError as e:
    _fail(str(e))
  print()
  print(md)
  print(f'\nresults: {os.path.join(os.path.abspath(workdir), "results.jsonl")}')
  print(f'summary: {os.path.join(os.path.abspath(workdir), "backends.md")}')


def _parse_flags(argv):
  """absl's parser, but any bad flag or config file is one line and exit 2."""
  try:
    return flags.FLAGS(argv)
  except SystemExit:
    # absl exits 1 after printing --help; asking for help is not an error.
    if any(a in ('-h', '--help', '--helpshort', '--helpfull', '-?') for a in argv[1:]):
      sys.exit(0)
    raise
  except Exception as e:  # pylint: disable=broad-except
    # ml_collections reports an override of a field the experiment does not
    # have as AttributeError("'name'").
    m = re.fullmatch(r'"?\'([\w.]+)\'"?', str(e))
    if isinstance(e, (AttributeError, KeyError)) and m:
      _fail(f'--config.{m.group(1)}: unknown field; the experiment file (--config) lists its '
            'fields')
    _fail(_one_line(e))


def _one_line(e: Exception) -> str:
  """The gist of an error as one line (config loaders embed whole tracebacks)."""
  lines = [line.strip() for line in str(e).splitlines() if line.strip()]
  if any(line.startswith('Traceback') for line in lines):
    return f'{lines[0]} {lines[-1]}'
  return ' '.join(lines)


def _load_config():
  """The parsed config; a missing/broken file or unknown field is one line, exit 2."""
  try:
    config = _CONFIG.value
    _ = config.name  # a file that failed to load raises only when touched
    return config
  except Exception as e:  # pylint: disable=broad-except
    # Loading a config file can raise anything (missing file, syntax error,
    # an unknown --config.<field>): name the flag and the cause.
    _fail(f'--config: {type(e).__name__}: {_one_line(e)}')


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
