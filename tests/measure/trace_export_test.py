"""The labelled trace: op_labels.json and trace.labelled.json.gz from the checked-in CPU traces."""
import collections
import gzip
import json
import os

import jax
import numpy as np
import pytest

from kernelscale.measure import hlo, hlo_labels, profiling, trace_export

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures')


def _fixture(name):
  stem = os.path.join(FIXTURES, name)
  with gzip.open(stem + '.xplane.pb.gz', 'rb') as f:
    profile = jax.profiler.ProfileData.from_serialized_xspace(f.read())
  with gzip.open(stem + '.hlo.txt.gz', 'rt') as f:
    module = hlo.parse(f.read())
  return profile, module


@pytest.mark.parametrize('name', ['seed_k3_b32_cpu', 'seed_k3_b32_cpu_eigen'])
def test_slices_match_the_attributed_phases(name, tmp_path):
  profile, module = _fixture(name)
  labels = hlo_labels.op_labels(module)
  assert trace_export.write(str(tmp_path), profile, labels, module.name) == []
  assert json.loads((tmp_path / trace_export.LABELS_NAME).read_text()) == labels
  with gzip.open(tmp_path / trace_export.TRACE_NAME, 'rt') as f:
    trace = json.load(f)
  ops = [e for e in trace['traceEvents'] if e.get('cat') == 'op']
  steps = [e for e in trace['traceEvents'] if e.get('cat') == 'step']
  assert [e['name'] for e in steps] == ['train step 0', 'train step 1']
  # Each slice is named "layer/phase (hlo op)" with the op's label.
  for e in ops:
    assert e['name'] == f'{labels.get(e["args"]["hlo_op"], "other/all")} ({e["args"]["hlo_op"]})'
    assert e['dur'] >= 0
  assert any(e['name'].startswith('conv2/backward_input (') for e in ops)
  # The slices are exactly the intervals profiling splits: splitting them again
  # per run gives phase_s.
  att = profiling.attribute(profile, module, labels, steps=2)
  phase = collections.defaultdict(float)
  if att['method'] == 'threads':
    # Per-thread busy rows: split per traced step as attribute() does, then the median.
    busy = collections.defaultdict(list)
    for e in trace['traceEvents']:
      if e.get('cat') == 'busy':
        busy[e['tid']].append((e['args']['hlo_op'], e['ts'], e['ts'] + e['dur']))
    per_step = []
    for st in steps:
      d = collections.defaultdict(float)
      for op, t in profiling.thread_split(list(busy.values()), st['ts'],
                                          st['ts'] + st['dur']).items():
        d[labels.get(op, 'other/all')] += t * 1e-6
      per_step.append(d)
    for k in {k for d in per_step for k in d}:
      phase[k] = float(np.median([d.get(k, 0.0) for d in per_step]))
  else:
    by_run = collections.defaultdict(list)
    for e in ops:
      by_run[e['args']['run_id']].append((e['args']['hlo_op'], e['ts'], e['ts'] + e['dur']))
    for group in by_run.values():
      for op, t in profiling.split_time(group).items():
        phase[labels.get(op, 'other/all')] += t * 1e-6 / att['steps_seen']
  assert set(phase) == set(att['phase_s'])
  for k, v in att['phase_s'].items():
    assert phase[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
  # Slices on one row nest (a trace viewer draws them so): none partly overlaps another.
  rows = collections.defaultdict(list)
  for e in ops + steps:
    rows[e['tid']].append((e['ts'], e['ts'] + e['dur']))
  for spans in rows.values():
    spans.sort(key=lambda s: (s[0], -s[1]))
    open_ = []
    for s, t in spans:
      while open_ and open_[-1] <= s:
        open_.pop()
      assert not open_ or t <= open_[-1] + 1e-6
      open_.append(t)
  names = {e['args']['name'] for e in trace['traceEvents'] if e.get('name') == 'thread_name'}
  assert any(n.startswith('tf_XLA') for n in names)


def test_eigen_convolutions_span_launch_to_end_event():
  profile, module = _fixture('seed_k3_b32_cpu_eigen')
  ops, _ = trace_export.op_intervals(profile, module.name)
  got = {(op, s, e) for op, s, e, _, _ in ops}
  want, _, _ = profiling.op_events(profile, module.name)
  assert got == {(op, s, e) for op, s, e, _ in want}
  # The launch event of a convolution is short; its interval runs to its end event.
  conv = [(e - s) for op, s, e, _, _ in ops if op.startswith('convolution')]
  assert conv and max(conv) > 1e6  # ns: over a millisecond, not the ~0.1 ms launch
