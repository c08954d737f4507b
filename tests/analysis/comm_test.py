"""analysis/comm.py and report/devices.py on made-up records: speed-up, bytes ∝ k^e, claim six."""
from kernelscale.analysis import comm
from kernelscale.report import devices, notes


def _rec(k, n, step, scaling='strong', platform='cpu', comm_s=None):
  params = 400_000 + 2048 * k * k
  return {'status': 'ok', 'kernel_size': k, 'padding': 'SAME', 'model': 'seed', 'n_devices': n,
          'batch_scaling': scaling, 'global_batch': 64, 'per_device_batch': 64 // n,
          'step_s_median': step, 'grad_bytes': 4 * params, 'platform': platform, 'cpu_count': 2,
          'collective_ops': {'all-reduce': 1} if n > 1 else {},
          'collective_bytes': 4 * params + 8 if n > 1 else 0,
          'phase_s': {'conv2/forward': step * 0.8, 'comm/all-reduce': comm_s or 0.0}}


def _run(platform='cpu', shares=(0.001, 0.01)):
  return [_rec(3, 1, 0.02, platform=platform), _rec(3, 8, 0.01, platform=platform, comm_s=shares[0]),
          _rec(9, 1, 0.10, platform=platform), _rec(9, 8, 0.04, platform=platform, comm_s=shares[1])]


def test_no_devices_axis_no_section_and_no_sixth_claim():
  one = [_rec(3, 1, 0.02), _rec(9, 1, 0.1)]
  assert comm.claim(one) == [] and devices.section(one) == []


def test_speedup_efficiency_and_bytes():
  rows = {(r['k'], r['n_devices']): r for r in comm.rows(_run())}
  assert abs(rows[(3, 8)]['speedup'] - 2.0) < 1e-9 and abs(rows[(3, 8)]['efficiency'] - 0.25) < 1e-9
  assert abs(rows[(9, 8)]['bytes_over_grad'] - 1) < 1e-4
  s = comm.summary(_run())
  assert s['n_devices'] == 8 and s['k'] == [3, 9] and 0 < s['bytes_fit']['exponent'] < 1


def test_claim_on_forced_host_devices_is_at_most_partly():
  (c,) = comm.claim(_run())
  assert c['id'] == 6 and c['verdict'] == 'partly holds' and 'forced host devices' in c['evidence']
  (c,) = comm.claim(_run('gpu'))
  assert c['verdict'] == 'holds'
  (c,) = comm.claim(_run('gpu', shares=(0.004, 0.002)))
  assert c['verdict'] == 'partly holds'


def test_section_says_forced_devices_draw_no_speedup_conclusion():
  text = '\n'.join(devices.section(_run()))
  assert 'share the same 2 CPU cores' in text and 'no speed-up conclusion' in text
  assert 'collective bytes per step grow ∝ k^' in text and '| strong | 9 | 8 |' in text


def test_tpu_mxu_padding_is_counted_per_k():
  recs = [dict(_rec(k, 1, 0.01), platform='tpu') for k in (3, 5)]
  line = devices.mxu_padding_note(recs)
  assert line.startswith('TPU MXU padding') and 'k=3 SAME: ×' in line and 'k=5 SAME: ×' in line
  assert any(n.startswith('TPU MXU padding') for n in notes.platform_notes(recs))
  assert devices.mxu_padding_note(_run()) is None  # not on TPU
