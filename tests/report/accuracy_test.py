"""report.accuracy: the accuracy section of results.md and its plot."""
from kernelscale.report import accuracy


def _rec(k, acc, wall, padding='SAME'):
  return {'status': 'ok', 'kernel_size': k, 'padding': padding, 'dtype': 'float32',
          'batch_size': 128, 'test_accuracy': acc, 'train_wall_s': wall, 'epoch_s': wall,
          'train_loss': 0.4, 'data_wait_s': 0.01, 'compute_s': wall - 0.1, 'compile_s': 1.0,
          'epochs': 1, 'data': 'fashion_mnist', 'data_version': '3.0.1', 'test_examples': 10000,
          'train_examples': 60000, 'prefetch': 2, 'device_kind': 'cpu'}


def test_plot_and_results_md_section(tmp_path):
  recs = [_rec(3, 0.87, 20.0), _rec(5, 0.88, 35.0), _rec(7, 0.875, 60.0),
          {'status': 'failed', 'kernel_size': 9, 'padding': 'SAME', 'error': 'x'}]
  lines = accuracy.results_md_section(recs, str(tmp_path))
  png = tmp_path / accuracy.PLOT_FILE
  assert png.exists() and png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  text = '\n'.join(lines)
  assert f']({accuracy.PLOT_FILE})' in text and '| 5 | SAME | — | 0.8800 |' in text
  # Step-timing records (no accuracy) add nothing.
  assert accuracy.results_md_section([{'status': 'ok', 'kernel_size': 3}], str(tmp_path / 'x')) == []
