"""Profiler traces: attribution on a checked-in CPU trace, backend planes, a tiny
traced run, and TensorBoard serving the traces (no browser)."""
import glob
import gzip
import json
import os
import shlex
import socket
import subprocess
import time
import urllib.request

import jax
import pytest

from experiments import seed
from kernelscale.measure import hlo, hlo_labels, profiling, sweep


FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures')
CONV_KEYS = {'conv1/forward', 'conv1/backward_filter', 'conv2/forward',
             'conv2/backward_input', 'conv2/backward_filter'}


def _fixture(name):
  stem = os.path.join(FIXTURES, name)
  with gzip.open(stem + '.xplane.pb.gz', 'rb') as f:
    profile = jax.profiler.ProfileData.from_serialized_xspace(f.read())
  with gzip.open(stem + '.hlo.txt.gz', 'rt') as f:
    module = hlo.parse(f.read())
  return profile, module


# Real CPU traces (tests/fixtures/make_trace_fixture.py): jax's default YNNPACK
# conv fusions, and XLA's Eigen convs, which complete asynchronously.
@pytest.mark.parametrize('name', ['seed_k3_b32_cpu', 'seed_k3_b32_cpu_eigen'])
def test_fixture_attribution_phases_and_coverage(name):
  profile, module = _fixture(name)
  att = profiling.attribute(profile, module, hlo_labels.op_labels(module), steps=2)
  ps = att['phase_s']
  assert att['plane'] == '/host:CPU' and att['steps_seen'] == 2 and not att['notes']
  assert CONV_KEYS <= set(ps) and 'conv1/backward_input' not in ps
  assert all(ps[k] > 0 for k in CONV_KEYS)
  assert all(v >= 0 for v in ps.values())
  assert sum(ps.values()) == pytest.approx(att['attributed_s'])
  # Ops overlap across threads: the plain sum exceeds the split (union) time.
  assert att['summed_s'] > att['attributed_s']
  steps = profiling.step_annotations(profile)
  assert len(steps) == 2
  cov = att['attributed_s'] / (sum(steps) / len(steps))
  assert 0.8 <= cov <= 1.2, cov
  # Per traced step, how much of each phase ran beside another phase (per-thread split).
  assert att['method'] == 'threads' and len(att['beside_steps']) == 2
  beside = profiling.summarize_steps(att['per_step'], steps, None,
                                     att['beside_steps'])['phase_beside']
  assert CONV_KEYS <= set(beside) and all(0 <= b['share'] <= 1 for b in beside.values())


def test_async_op_runs_until_its_flow_linked_end_event():
  # 'conv' launches at 0 for 1 us and completes ('end: conv', consumer id 7)
  # at 50 us on another thread; 'copy' is synchronous.
  text = (
      'planes { id: 1 name: "/host:CPU" '
      'lines { id: 1 name: "tf_XLAEigen/1" timestamp_ns: 0 '
      'events { metadata_id: 1 offset_ps: 0 duration_ps: 1000000 '
      'stats { metadata_id: 10 str_value: "conv" } stats { metadata_id: 12 uint64_value: 7 } } '
      'events { metadata_id: 2 offset_ps: 60000000 duration_ps: 10000000 '
      'stats { metadata_id: 10 str_value: "copy" } stats { metadata_id: 12 uint64_value: 8 } } } '
      'lines { id: 2 name: "tf_XLAEigen/2" timestamp_ns: 0 '
      'events { metadata_id: 3 offset_ps: 50000000 duration_ps: 1000 '
      'stats { metadata_id: 13 uint64_value: 7 } } } '
      'event_metadata { key: 1 value { id: 1 name: "conv" } } '
      'event_metadata { key: 2 value { id: 2 name: "copy" } } '
      'event_metadata { key: 3 value { id: 3 name: "end: conv" } } '
      'stat_metadata { key: 10 value { id: 10 name: "hlo_op" } } '
      'stat_metadata { key: 12 value { id: 12 name: "_p" } } '
      'stat_metadata { key: 13 value { id: 13 name: "_c" } } }')
  events, plane, _ = profiling.op_events(jax.profiler.ProfileData.from_text_proto(text))
  spans = {op: (e - s) for op, s, e, _ in events}
  assert plane == '/host:CPU'
  assert spans['conv'] == pytest.approx(50_001)  # ns: launch to completion
  assert spans['copy'] == pytest.approx(10_000)


def test_split_time_shares_overlap_and_sums_to_union():
  got = profiling.split_time([('a', 0, 10), ('b', 5, 15), ('c', 20, 30)])
  assert got == pytest.approx({'a': 7.5, 'b': 7.5, 'c': 10})
  assert sum(got.values()) == pytest.approx(25)  # union of [0,15] and [20,30]


def _space(plane: str, line: str, ops: list[tuple[str, int, int]], stat='hlo_op') -> str:
  evs = ''.join(
      f'events {{ metadata_id: {i + 1} offset_ps: {s * 1000} duration_ps: {d * 1000} '
      + (f'stats {{ metadata_id: 10 str_value: "{op}" }} ' if stat else '')
      + 'stats { metadata_id: 11 str_value: "jit_train_step" } }'
      for i, (op, s, d) in enumerate(ops))
  meta = ''.join(f'event_metadata {{ key: {i + 1} value {{ id: {i + 1} name: "{op}" }} }}'
                 for i, (op, _, _) in enumerate(ops))
  return (f'planes {{ id: 1 name: "{plane}" lines {{ id: 1 name: "{line}" timestamp_ns: 0 '
          f'{evs} }} {meta} stat_metadata {{ key: 10 value {{ id: 10 name: "hlo_op" }} }} '
          'stat_metadata { key: 11 value { id: 11 name: "hlo_module" } } } '
          'planes { id: 2 name: "/host:CPU" }')


_GPU_HLO = """HloModule jit_train_step

ENTRY %main (x: f32[4,28,28,1], w: f32[3,3,1,32]) -> f32[4,28,28,32] {
  %x = f32[4,28,28,1]{3,2,1,0} parameter(0)
  %w = f32[3,3,1,32]{3,2,1,0} parameter(1), metadata={op_name="state.params[\\'conv1\\'][\\'kernel\\']"}
  %cudnn-conv.1 = (f32[4,28,28,32]{3,2,1,0}, u8[0]{0}) custom-call(%x, %w), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, custom_call_target="__cudnn$convForward", metadata={op_name="jit(train_step)/jvp(ConvNet)/conv1/conv_general_dilated"}
  ROOT %relu = f32[4,28,28,32]{3,2,1,0} get-tuple-element(%cudnn-conv.1), index=0, metadata={op_name="jit(train_step)/jvp(ConvNet)/jit(relu)/max"}
}
"""


@pytest.mark.parametrize('plane,line,stat', [('/device:GPU:0', 'Stream #7(compute)', 'hlo_op'),
                                             ('/device:TPU:0', 'XLA Ops', None)])
def test_device_planes_are_used(plane, line, stat):
  ops = [('cudnn-conv.1', 0, 3000), ('relu', 3000, 1000), ('cudnn-conv.1', 10000, 3000),
         ('relu', 13000, 1000)]
  profile = jax.profiler.ProfileData.from_text_proto(_space(plane, line, ops, stat))
  module = hlo.parse(_GPU_HLO)
  att = profiling.attribute(profile, module, hlo_labels.op_labels(module), steps=2)
  assert att['plane'] == plane
  assert att['phase_s'] == pytest.approx({'conv1/forward': 3e-6, 'activation/forward': 1e-6})


def test_trace_without_op_events_gives_null_and_a_reason():
  profile = jax.profiler.ProfileData.from_text_proto(
      _space('/device:GPU:0', 'Stream #7', [('kernel', 0, 10)], stat=None))
  module = hlo.parse(_GPU_HLO)
  att = profiling.attribute(profile, module, hlo_labels.op_labels(module), steps=1)
  assert att['phase_s'] is None and att['attributed_s'] is None
  assert 'no per-op' in att['notes'][0]


@pytest.fixture(scope='module')
def traced(tmp_path_factory):
  """A tiny traced point (seed k=3, batch 4, 2 traced steps) measured in-process."""
  wd = str(tmp_path_factory.mktemp('wd'))
  cfg = seed.get_config('quick')
  cfg.batch_size, cfg.timed_steps, cfg.profile_steps = 4, 2, 2
  pt = sweep.validate(cfg)[0]
  return sweep.measure_point(pt, cfg, wd), wd, pt


def test_tiny_traced_run_record(traced):
  rec, wd, pt = traced
  assert rec['profile_steps'] == 2
  assert rec['trace_dir'] == os.path.join('tensorboard', pt.name)
  assert CONV_KEYS <= set(rec['phase_s']) and 'conv1/backward_input' not in rec['phase_s']
  assert rec['trace_coverage'] > 0 and rec['trace_step_s_median'] > 0
  assert set(rec['conv_impl']) == CONV_KEYS
  assert CONV_KEYS <= set(rec['phase_beside']) <= set(rec['phase_s'])
  json.dumps(rec)  # a record must serialise


def test_trace_files_load_with_profiledata(traced):
  rec, wd, _ = traced
  pbs = glob.glob(os.path.join(wd, rec['trace_dir'], 'plugins', 'profile', '*', '*.xplane.pb'))
  assert len(pbs) == 1
  profile = jax.profiler.ProfileData.from_file(pbs[0])
  assert '/host:CPU' in [p.name for p in profile.planes]
  assert len(profiling.step_annotations(profile)) == 2


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _get(url: str):
  with urllib.request.urlopen(url, timeout=5) as r:
    body = r.read()
    if r.headers.get('Content-Encoding') == 'gzip':  # the profile plugin gzips its JSON
      body = gzip.decompress(body)
    return json.loads(body.decode())


@pytest.mark.slow  # starts a tensorboard server in a subprocess
def test_tensorboard_command_serves_the_profile_plugin(traced):
  _, wd, pt = traced
  cmd = profiling.tensorboard_command(wd)
  assert cmd and cmd.endswith(f'--logdir {os.path.abspath(os.path.join(wd, "tensorboard"))}')
  port = _free_port()
  proc = subprocess.Popen(shlex.split(cmd) + ['--host', '127.0.0.1', '--port', str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  try:
    base = f'http://127.0.0.1:{port}'
    plugins, deadline = None, time.time() + 90
    while time.time() < deadline:
      try:
        plugins = _get(base + '/data/plugins_listing')
        break
      except OSError:
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        time.sleep(0.5)
    assert plugins is not None, 'tensorboard did not answer'
    assert plugins['profile']['enabled'], plugins.get('profile')
    runs = _get(base + '/data/plugin/profile/runs')
    assert any(r.startswith(pt.name + '/') for r in runs), runs
  finally:
    proc.terminate()
    try:
      proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()


def test_profiler_failure_keeps_the_point_with_null_fields(monkeypatch, tmp_path):
  def boom(*args, **kwargs):
    raise RuntimeError('another profiler session is active')

  monkeypatch.setattr(profiling, 'trace_steps', boom)
  with gzip.open(os.path.join(FIXTURES, 'seed_k3_b32_cpu.hlo.txt.gz'), 'rt') as f:
    text = f.read()
  _, fields, notes = profiling.profile_point(None, 'state', {}, text, 'cpu', 2,
                                             str(tmp_path / 'tb' / 'p'), str(tmp_path), 0.1)
  assert fields['phase_s'] is None and fields['trace_coverage'] is None
  assert fields['conv_impl']['conv2/forward'] == 'YNNPACK fusion'  # from the HLO alone
  assert 'profiling failed' in notes[0] and 'another profiler' in notes[0]


def _ev(meta, start_us, dur_us, **stats):
  ids = {'hlo_op': 10, '_p': 12, '_c': 13}
  st = ''.join(f'stats {{ metadata_id: {ids[k]} '
               + (f'str_value: "{v}" }} ' if isinstance(v, str) else f'uint64_value: {v} }} ')
               for k, v in stats.items())
  return (f'events {{ metadata_id: {meta} offset_ps: {int(start_us * 1e6)} '
          f'duration_ps: {int(dur_us * 1e6)} {st}}} ')


def test_a_waiting_op_does_not_take_the_time_of_the_op_that_runs():
  # Thread 1 runs 'loop' (a slow conv) for 10 us. Thread 2 launches 'dot' (1 us),
  # whose one pool task (Record _p 9 -> region _c 9) runs 1-2 us; its 'end: dot'
  # comes only at 10 us, behind the loop. Split by op intervals, 'dot' took half the
  # loop; by what each thread executes it gets only what ran.
  names = ['loop', 'dot', 'end: dot', 'ThreadpoolListener::Record',
           'ThreadpoolListener::StartRegion', 'ThreadpoolListener::StopRegion']
  meta = ''.join(f'event_metadata {{ key: {i + 1} value {{ id: {i + 1} name: "{n}" }} }} '
                 for i, n in enumerate(names))
  text = ('planes { id: 1 name: "/host:CPU" '
          'lines { id: 1 name: "tf_XLAEigen/1" timestamp_ns: 0 '
          + _ev(1, 0, 10, hlo_op='loop') + _ev(3, 10, 0.001, _c=7) + '} '
          'lines { id: 2 name: "tf_XLAEigen/2" timestamp_ns: 0 '
          + _ev(2, 0, 1, hlo_op='dot', _p=7) + _ev(4, 0.5, 0, _p=9)
          + _ev(5, 1, 0, _c=9) + _ev(6, 2, 0) + '} '
          + meta + 'stat_metadata { key: 10 value { id: 10 name: "hlo_op" } } '
          'stat_metadata { key: 12 value { id: 12 name: "_p" } } '
          'stat_metadata { key: 13 value { id: 13 name: "_c" } } }')
  profile = jax.profiler.ProfileData.from_text_proto(text)
  plane = next(p for p in profile.planes if p.name == '/host:CPU')
  got = profiling.thread_split(profiling._thread_segments(plane, None), 0, 20_000)
  assert got == pytest.approx({'loop': 9_000, 'dot': 1_000})  # ns
  events, _, _ = profiling.op_events(profile)
  old = profiling.split_time([(op, s, e) for op, s, e, _ in events])
  assert old['dot'] == pytest.approx(5_000, abs=2)  # the equal split this replaces


def test_outlier_traced_steps_are_dropped_and_named():
  per_step = [{'conv': 0.010, 'other/all': 0.001}] * 4 + [{'conv': 0.040, 'other/all': 0.001}]
  got = profiling.summarize_steps(per_step, [0.012, 0.0115, 0.0112, 0.0111, 0.045], 0.010)
  assert got['trace_dropped_steps'] == [4] and got['trace_steps_used'] == 4
  assert got['phase_s']['conv'] == pytest.approx(0.010)
  assert got['trace_step_s_median'] == pytest.approx(0.01135)
  assert got['trace_overhead'] == pytest.approx(1.135)
  assert 0.9 <= got['trace_coverage'] <= 1.0


def test_beside_time_counts_only_time_beside_a_different_phase():
  # Thread 0 runs a (conv) 0-10 then b 12-14; thread 1 runs b 5-10, a 10-12 and a 12-13.
  segs = [[('a', 0, 10), ('b', 12, 14)], [('b', 5, 10), ('a', 10, 13)]]
  got = profiling.beside_time(segs, 0, 100)
  assert got['a'] == (13, 6, {'b': 6})  # 0-13 running; beside b 5-10 and 12-13
  assert got['b'] == (7, 6, {'a': 6})   # 5-10 and 12-14 running
  # The window clips, and a key function groups ops (here both into one phase: never beside).
  assert profiling.beside_time(segs, 0, 7)['a'] == (7, 2, {'b': 2})
  assert profiling.beside_time(segs, 0, 100, key=lambda op: 'x') == {'x': (14, 0, {})}
  # Split per thread, the shared 6 units go half to each: a gets 13 - 3, b 7 - 3.
  split = profiling.thread_split(segs, 0, 100)
  assert split['a'] == pytest.approx(10) and split['b'] == pytest.approx(4)


def test_phase_beside_pools_the_kept_steps_only():
  per_step = [{'conv': 0.010}] * 3 + [{'conv': 0.040}]
  beside = [{'conv': (10.0, 1.0, {'dense': 1.0})}] * 3 + [{'conv': (40.0, 40.0, {'pool': 40.0})}]
  got = profiling.summarize_steps(per_step, [0.011, 0.011, 0.011, 0.045], 0.010, beside)
  assert got['trace_dropped_steps'] == [3]
  assert got['phase_beside'] == {'conv': {'share': pytest.approx(0.1), 'with': 'dense'}}
  assert profiling.summarize_steps(per_step, [0.011] * 4, 0.010)['phase_beside'] is None
