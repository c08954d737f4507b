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
