"""Test setup: CPU only, offline; loaders of the fixture runs under tests/fixtures/.

The package is installed (-e .), so nothing touches sys.path.
"""
import json
import os
import shutil

import pytest

os.environ.setdefault('JAX_PLATFORMS', 'cpu')

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')


def _records_and_ceiling(folder):
  from kernelscale import records  # pylint: disable=g-import-not-at-top
  recs = records.load(os.path.join(folder, 'results.jsonl'))
  with open(os.path.join(folder, 'ceilings.json'), encoding='utf-8') as f:
    ceil = json.load(f)['cpu/cpu']
  return recs, ceil


@pytest.fixture
def fixture_run():
  """load(name) -> (records, the cpu/cpu ceiling) of tests/fixtures/<name>/.

  Each call reads the files afresh, so a test may change what it gets.
  """
  return lambda name: _records_and_ceiling(os.path.join(FIXTURES, name))


@pytest.fixture
def fixture_workdir(tmp_path):
  """copy(name) -> (workdir, records, ceiling): tests/fixtures/<name>/ copied under tmp_path."""
  def copy(name):
    wd = tmp_path / name
    shutil.copytree(os.path.join(FIXTURES, name), wd)
    return (str(wd), *_records_and_ceiling(str(wd)))
  return copy


def _alone_point(phase, alone, traced_step, alone_traced=None, beside=None, other=None,
                 overhead=1.12, rest=0.070):
  """One profiled point: `phase` took traced_step s per traced step, everything else `rest`.

  The untraced step is the traced one / overhead, so the table's scale is about 1 / overhead.
  """
  traced_total = traced_step + rest
  rec = {'point': 'p', 'padding': 'SAME', 'kernel_size': 7, 'trace_coverage': 1.0,
         'trace_overhead': overhead, 'trace_step_s_median': traced_total,
         'step_s_median': traced_total / overhead,
         'phase_s': {phase: traced_step, 'other/all': rest}, 'conv_alone_s': {phase: alone}}
  if alone_traced is not None:
    rec['conv_alone_traced_s'] = {phase: alone_traced}
  if beside is not None:
    rec['phase_beside'] = {phase: {'share': beside, 'with': 'conv1/backward_filter'}}
  if other is not None:
    rec['conv_alone_other_cpu_share'] = other
  return rec


@pytest.fixture
def alone_point():
  """make(phase, alone, traced_step, ...) -> a profiled record whose one conv phase was also
  timed alone (conv_alone_s, optionally conv_alone_traced_s, phase_beside, other load)."""
  return _alone_point
