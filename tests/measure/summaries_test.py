"""TensorBoard scalars and hparams written per point, read back with tensorboard's own reader."""
import glob
import os

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from kernelscale import records
from kernelscale.measure import summaries


def _load(logdir):
  acc = event_accumulator.EventAccumulator(logdir, size_guidance={'scalars': 0, 'tensors': 0})
  acc.Reload()
  return acc


def test_points_write_scalars_against_k_and_hparams(fixture_run, tmp_path):
  recs, _ = fixture_run('seed_cpu')
  for r in recs:  # as the sweep does: append the record, then write its summaries
    records.append(str(tmp_path / 'results.jsonl'), r)
    assert summaries.write_point(str(tmp_path), r) == []
  ok = [r for r in recs if r['status'] == 'ok']
  root = tmp_path / 'tensorboard'
  # The Scalars tab: one run per padding, each figure against k.
  for pad in {r['padding'] for r in ok}:
    acc = _load(str(root / f'sweep-{pad}'))
    tags = set(acc.Tags()['scalars'])
    assert {'step_ms/median', 'step_ms/p10', 'step_ms/p90', 'compile_s', 'achieved_gflop_per_s',
            'xla_gflop', 'temp_mib'} <= tags
    ev = acc.Scalars('step_ms/median')
    mine = sorted((r['kernel_size'], r['step_s_median'] * 1e3) for r in ok if r['padding'] == pad)
    assert [(e.step, round(e.value, 3)) for e in ev] == [(k, round(v, 3)) for k, v in mine]
    assert len(glob.glob(str(root / f'sweep-{pad}' / 'events.*'))) == 1
  # The HParams tab: one session per point, with k, padding, model, conv_algo, devices.
  r = ok[0]
  acc = _load(str(root / r['point']))
  meta = acc.SummaryMetadata('_hparams_/session_start_info')
  data = plugin_data_pb2.HParamsPluginData.FromString(meta.plugin_data.content)
  hp = data.session_start_info.hparams
  assert hp['k'].number_value == r['kernel_size']
  assert hp['padding'].string_value == r['padding']
  assert {'k', 'padding', 'model', 'devices'} <= set(hp)
  assert 'step_ms/median' in acc.Tags()['scalars']
  if r.get('phase_s'):
    assert any(t.startswith('phase_ms/conv') for t in acc.Tags()['scalars'])


def test_missing_figures_are_left_out_and_failed_points_write_nothing(tmp_path):
  assert summaries.scalars({'step_s_median': 0.01, 'xla_flops': None}) == {'step_ms/median': 10.0}
  assert summaries.write_point(str(tmp_path), {'status': 'failed', 'point': 'p'}) == []
  assert not glob.glob(os.path.join(tmp_path, '**', 'events.*'), recursive=True)
