"""notebooks/colab.ipynb executes headless on CPU in its quick form (KERNELSCALE_QUICK=1)."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_colab_notebook_runs_quick_on_cpu(tmp_path, monkeypatch):
  nbformat = pytest.importorskip('nbformat')
  nbclient = pytest.importorskip('nbclient')
  monkeypatch.setenv('KERNELSCALE_QUICK', '1')
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  monkeypatch.setenv('KERNELSCALE_WORKDIR', str(tmp_path / 'run'))
  nb = nbformat.read(os.path.join(ROOT, 'notebooks', 'colab.ipynb'), as_version=4)
  assert nb.cells[0].cell_type == 'markdown' and 'takes' in nb.cells[0].source
  nbclient.NotebookClient(nb, timeout=300, kernel_name='python3',
                          resources={'metadata': {'path': ROOT}}).execute()
  out = ''.join(o.get('text', '') for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))
  assert 'runtime: cpu; quick: True' in out
  assert (tmp_path / 'run' / 'report.md').exists()
  shown = [o for c in nb.cells for o in c.get('outputs', []) if o.get('output_type') == 'display_data']
  assert any('text/markdown' in o['data'] for o in shown)
  assert any('image/png' in o['data'] for o in shown)
