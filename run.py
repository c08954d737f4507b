"""kernelscale command line: flags -> config -> measure, or report from a workdir.

    python run.py                                   # default: experiments/seed.py
    python run.py --config=experiments/seed.py:quick
    python run.py --config.kernel_sizes=3,5,7 --config.batch_size=64 --workdir=runs/mine
    python run.py --report_only --workdir=runs/mine --predict=13   # re-analyse, no measuring
    python run.py --resume --workdir=runs/mine      # measure the points not yet ok there
    python run.py --config=experiments/accuracy.py:quick   # accuracy on Fashion-MNIST

This file is the only place flags live; everything else takes a config.
"""
from __future__ import annotations

import datetime
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from kernelscale import cli, config_fields
from kernelscale.measure import distributed  # no jax: flags -> processes and host devices

__doc__ += config_fields.help_text()  # --help lists every config field, default and meaning

_HERE = os.path.dirname(os.path.abspath(__file__))

try:
  _CONFIG = config_flags.DEFINE_config_file(
      'config', os.path.join(_HERE, 'experiments', 'seed.py'),
      'Experiment config file, optionally with an argument after a colon (e.g. '
      'experiments/seed.py:quick). Override any field with --config.<field>=value, e.g. '
      '--config.kernel_sizes=3,5,7 --config.model=seed,seed_dilated.', lock_config=True)
except (AttributeError, KeyError) as _e:  # ml_collections: an unknown --config.<field>
  cli.fail(cli.unknown_field(_e) or f'--config: {cli.one_line(_e)}')
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Output folder for results.jsonl, results.md and traces. '
    'Default: ./runs/<experiment>-<timestamp>/.')
_REPORT_ONLY = flags.DEFINE_bool(
    'report_only', False, 'Measure nothing: rebuild analysis.json, report.md and the plots '
    'from the results.jsonl (and ceilings.json) already in --workdir. Needs no jax.')
_RESUME = flags.DEFINE_bool(
    'resume', False, 'Continue the sweep in --workdir: measure only its points not yet ok, '
    'append them, then report on all. Uses that run\'s config; a --config given must match it.')
_PREDICT = flags.DEFINE_integer(
    'predict', None, 'Also predict the step time, with an interval, at this kernel size (per '
    'padding where it fits), from the model with the smallest leave-one-out error; printed '
    'and saved as `predictions` in analysis.json.')
_PREPARE = flags.DEFINE_string(
    'prepare', None, 'Prepare a TFDS dataset (fashion_mnist or mnist) from local IDX files '
    'given by --from_idx, in the official TFDS array_record layout under --data_dir, and exit. '
    'No network, no TensorFlow. For Fashion-MNIST: apt-get install dataset-fashion-mnist, '
    'then --prepare=fashion_mnist --from_idx=/usr/share/datasets/fashion-mnist.')
_FROM_IDX = flags.DEFINE_string(
    'from_idx', None, 'With --prepare: folder holding train-images-idx3-ubyte[.gz], '
    'train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz].')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'With --prepare: TFDS data dir to write to (default: $TFDS_DATA_DIR or '
    '~/tensorflow_datasets). Experiments read from --config.data_dir.')
_COORD = flags.DEFINE_string('coordinator', None, 'Many hosts: HOST:PORT of process 0, or auto.')
_NPROC = flags.DEFINE_integer('num_processes', None, 'Many hosts: how many processes.')
_PID = flags.DEFINE_integer('process_id', None, 'Many hosts: this one, 0..num_processes-1.')
_LOCAL = flags.DEFINE_integer('local_processes', None, 'Run P processes on 127.0.0.1; wait.')


def main(argv):
  if not flags.FLAGS['verbosity'].present:  # jax logs each backend it fails to find at INFO
    logging.set_verbosity(logging.WARNING)
  cli.on_signals(_WORKDIR.value)
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}; flags take the form --name=value')
  if _PREPARE.value is not None:
    return cli.prepare(_PREPARE.value, _FROM_IDX.value, _DATA_DIR.value)
  if _FROM_IDX.value or _DATA_DIR.value:
    cli.fail(f'--{"from_idx" if _FROM_IDX.value else "data_dir"}: only used with --prepare; '
             'experiments read their data dir from --config.data_dir')
  if _PREDICT.value is not None and _PREDICT.value < 1:
    cli.fail(f'--predict: {_PREDICT.value} is not a kernel size >= 1')
  if _REPORT_ONLY.value:
    from kernelscale.report import workdir_report  # pylint: disable=g-import-not-at-top  (no jax)
    return cli.writing(workdir_report.report_only, _WORKDIR.value, _PREDICT.value,
                       records_from_file=True)
  config = (cli.resume_config(_WORKDIR.value, _CONFIG, cli.config_given(flags.FLAGS))
            if _RESUME.value else cli.load_config(_CONFIG))
  workdir = _WORKDIR.value or os.path.join(
      'runs', f'{config.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}')
  distributed.launch(sys.argv, workdir, _COORD.value, _NPROC.value, _PID.value, _LOCAL.value)
  if config.get('compare_cpu_conv'):
    return _compare_conv_paths(config, workdir)
  _measure(config, workdir)


def _measure(config, workdir: str) -> None:
  """The sweep, then results.md, the machine's ceilings, analysis.json and report.md."""
  # XLA reads XLA_FLAGS once, when jax starts: set the host up before importing jax users.
  backend = distributed.setup(config, _COORD.value, _NPROC.value, _PID.value)
  from kernelscale.measure import ceilings, profiling, sweep  # pylint: disable=g-import-not-at-top
  from kernelscale.net import shapes  # pylint: disable=g-import-not-at-top
  from kernelscale.report import terminal, workdir_report  # pylint: disable=g-import-not-at-top
  try:
    points = sweep.validate(config)
    sweep.check_workdir(workdir, _RESUME.value, config)
  except (sweep.ConfigError, shapes.ShapeError) as e:
    cli.fail(str(e))
  cli.on_signals(workdir)
  print(distributed.banner(workdir, backend))
  try:
    recs = sweep.run(config, workdir, extra_context=backend, resume_run=_RESUME.value,
                     on_record=terminal.SweepProgress(len(points)))
  except OSError as e:  # records.WriteError (disk full): the file keeps its whole records
    cli.stop(e.strerror or e)
  distributed.exit_unless_writer()  # process 0 alone writes the results and the report
  cli.writing(workdir_report.results, recs, workdir, profiling.tensorboard_command(workdir))
  if not any(r['status'] == 'ok' for r in recs):
    sys.exit(1)
  try:
    ceil = ceilings.load_or_measure(workdir)
  except Exception as e:  # pylint: disable=broad-except  (records stand; no roofline then)
    print(f'ceilings not measured: {type(e).__name__}: {e}', file=sys.stderr)
    ceil = None
  workdir_report.analyse(recs, workdir, ceil, _PREDICT.value)


def _compare_conv_paths(config, workdir: str) -> None:
  """experiments/backends.py: each CPU conv path in its own child process."""
  from kernelscale.measure import conv_paths, sweep  # pylint: disable=g-import-not-at-top
  from kernelscale.net import shapes  # pylint: disable=g-import-not-at-top
  from kernelscale.report import conv_paths as conv_paths_report  # pylint: disable=g-import-not-at-top
  try:
    conv_paths.check(config)
    sweep.check_workdir(workdir)
  except (sweep.ConfigError, shapes.ShapeError) as e:
    cli.fail(str(e))
  print(f'workdir: {os.path.abspath(workdir)}')
  try:
    _, rows, geo = conv_paths.run(config, workdir)
  except RuntimeError as e:
    cli.fail(str(e))
  print('\n' + conv_paths_report.write(rows, geo, config.conv_algo, workdir))
  print(f'\nresults: {os.path.abspath(workdir)}/results.jsonl\n'
        f'summary: {os.path.abspath(workdir)}/backends.md')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_absl_flags)
