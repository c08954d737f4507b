"""TensorBoard scalars and hparams for each measured point (Scalars and HParams tabs).

`write_point(workdir, rec)` runs after each point's record is appended. It writes,
with tensorboard's own event writer and summary protos (no TensorFlow needed):

  tensorboard/<point>/     the point's run (beside its Profile trace): an hparams
                           session (k, padding, model, conv_algo, devices, ...)
                           and its figures as scalars at step k, so the HParams
                           tab's table and parallel-coordinates view list the sweep;
  tensorboard/sweep-<padding>[-<model>...]/
                           the same figures, one run per curve, step = k, so the
                           Scalars tab draws each figure against the kernel size.

Tags (units in the name): step_ms/median, step_ms/p10, step_ms/p90, compile_s,
achieved_gflop_per_s, xla_gflop, temp_mib, phase_ms/<layer>/<phase> (from the
trace), and for accuracy runs test_accuracy and epoch_s. A missing figure is
not written (never 0). Only reads the record; imports no jax.
"""
from __future__ import annotations

import glob
import os
import time

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from kernelscale import records

HPARAMS = ('kernel_size', 'padding', 'model', 'conv_algo', 'device_count', 'batch_size', 'dtype')
# hparam name shown in TensorBoard -> record field
_HP_NAMES = {'kernel_size': 'k', 'device_count': 'devices'}


def scalars(rec: dict) -> dict[str, float]:
  """{tag: value} of one ok record; figures the record lacks are left out."""
  out = {}

  def put(tag, value, scale=1.0):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      out[tag] = float(value) * scale

  for q in ('median', 'p10', 'p90'):
    put(f'step_ms/{q}', rec.get(f'step_s_{q}'), 1e3)
  put('compile_s', rec.get('compile_s'))
  put('achieved_gflop_per_s', rec.get('achieved_flops_per_s'), 1e-9)
  put('xla_gflop', rec.get('xla_flops'), 1e-9)
  put('temp_mib', rec.get('temp_bytes'), 1 / 2**20)
  for label, s in sorted((rec.get('phase_s') or {}).items()):
    put(f'phase_ms/{label}', s, 1e3)
  put('test_accuracy', rec.get('test_accuracy'))
  put('epoch_s', rec.get('epoch_s') if rec.get('epoch_s_kind') == 'measured' else None)
  return out


def hparams(rec: dict) -> dict:
  """{hparam name: value} of one record (k, padding, model, conv_algo, devices, ...)."""
  return {_HP_NAMES.get(f, f): rec[f] for f in HPARAMS
          if isinstance(rec.get(f), (int, float, str, bool))}


def sweep_run(rec: dict) -> str:
  """The Scalars tab's run for the record's curve: 'sweep-SAME', 'sweep-SAME-seed_dilated-auto'."""
  parts = [str(rec.get('padding'))]
  if rec.get('model', 'seed') != 'seed':
    parts.append(str(rec['model']))
  if rec.get('conv_algo', 'xla') != 'xla':
    parts.append(str(rec['conv_algo']))
  if (rec.get('device_count') or 1) > 1:
    parts.append(f'{rec["device_count"]}dev')
  return 'sweep-' + '-'.join(parts)


def _write(logdir: str, events: list[summary_pb2.Summary], step: int) -> None:
  writer = EventFileWriter(logdir)
  try:
    for summary in events:
      writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
  finally:
    writer.close()


def _scalar_summary(values: dict[str, float]) -> summary_pb2.Summary:
  return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v)
                                    for t, v in values.items()])


def _rewrite_sweeps(root: str, recs: list[dict]) -> None:
  """One event file per sweep run, steps in increasing k (TensorBoard reads a run's files in name
  order and drops data whose step goes back, so each run is rewritten whole)."""
  runs: dict[str, dict[int, dict]] = {}
  for r in recs:
    if r.get('status') == 'ok' and r.get('kernel_size') is not None:
      runs.setdefault(sweep_run(r), {})[int(r['kernel_size'])] = r
  for name, by_k in runs.items():
    logdir = os.path.join(root, name)
    for old in glob.glob(os.path.join(logdir, 'events.out.tfevents.*')):
      os.remove(old)
    writer = EventFileWriter(logdir)
    try:
      for k in sorted(by_k):
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=k,
                                         summary=_scalar_summary(scalars(by_k[k]))))
    finally:
      writer.close()


def write_point(workdir: str, rec: dict) -> list[str]:
  """Writes one point's summaries under <workdir>/tensorboard/; returns notes (why not).

  The point's own run gets its hparams session and scalars; the sweep runs are
  rewritten from every ok record of <workdir>/results.jsonl (plus `rec`).
  Failed points write nothing. Best effort: an error is a note, never an exception.
  """
  if rec.get('status') != 'ok' or not rec.get('point'):
    return []
  try:
    root = os.path.join(workdir, 'tensorboard')
    k = int(rec.get('kernel_size') or 0)
    _write(os.path.join(root, rec['point']),
           [hparams_summary.hparams_pb(hparams(rec), trial_id=rec['point']),
            _scalar_summary(scalars(rec))], k)
    path = os.path.join(workdir, 'results.jsonl')
    recs = records.load(path) if os.path.exists(path) else []
    _rewrite_sweeps(root, recs + [rec])
  except Exception as e:  # pylint: disable=broad-except
    return [f'TensorBoard summaries not written ({type(e).__name__}: {e})']
  return []
