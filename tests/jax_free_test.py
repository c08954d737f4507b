"""analysis and report import no jax, flax or optax, and --report_only runs without them."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, 'tests', 'fixtures', 'seed_cpu')

# Any import of these raises, so a module that needs them fails loudly.
_BLOCK = r'''
import importlib.abc, sys
BLOCKED = ('jax', 'jaxlib', 'flax', 'optax')
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in BLOCKED:
      raise ImportError(f'blocked import of {name}')
sys.meta_path.insert(0, Block())
'''


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-c', _BLOCK + code, *args], capture_output=True,
                        text=True, cwd=ROOT, timeout=300)


def test_every_analysis_and_report_module_imports_without_jax():
  p = _run('''
import importlib, pkgutil
import kernelscale.analysis, kernelscale.report
names = []
for pkg in (kernelscale.analysis, kernelscale.report):
  for m in pkgutil.iter_modules(pkg.__path__):
    importlib.import_module(f'{pkg.__name__}.{m.name}')
    names.append(m.name)
print(sorted(names))
print([m for m in sys.modules if m.split('.')[0] in BLOCKED])
''')
  assert p.returncode == 0, p.stderr
  names, loaded = p.stdout.splitlines()
  assert 'fits' in names and 'claims' in names and 'markdown' in names and 'plots' in names
  assert loaded == '[]'


def test_the_blocker_does_block():
  p = _run('import kernelscale.net.models')
  assert p.returncode != 0 and 'blocked import of' in p.stderr


def test_report_only_runs_without_jax(tmp_path):
  wd = tmp_path / 'wd'
  shutil.copytree(FIXTURE, wd)
  p = _run('import runpy; sys.argv = sys.argv[1:]; runpy.run_path("run.py", run_name="__main__")',
           'run.py', '--report_only', f'--workdir={wd}')
  assert p.returncode == 0, p.stderr
  assert (wd / 'report.md').exists() and (wd / 'analysis.json').exists()
