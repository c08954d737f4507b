"""Collectives read from optimized HLO text: CPU's tuple all-reduce, GPU/TPU's async forms."""
from kernelscale.measure import collectives, hlo, hlo_labels

_CPU = '''HloModule jit_train_step, entry_computation_layout={()->()}

%add (x: f32[], y: f32[]) -> f32[] {
  %x = f32[] parameter(0)
  %y = f32[] parameter(1)
  ROOT %add = f32[] add(%x, %y)
}

ENTRY %main (p0: f32[5,5,1,32], p1: f32[32]) -> (f32[5,5,1,32], f32[32], f32[]) {
  %p0 = f32[5,5,1,32]{3,2,1,0} parameter(0)
  %p1 = f32[32]{0} parameter(1)
  %c = f32[] constant(1)
  ROOT %all-reduce.10 = (f32[5,5,1,32]{3,2,1,0}, f32[32]{0}, /*index=2*/f32[]) all-reduce(%p0, %p1, %c), replica_groups={{0,1,2,3,4,5,6,7}}, to_apply=%add
}
'''

_GPU = '''HloModule jit_train_step

%add (x: bf16[], y: bf16[]) -> bf16[] {
  %x = bf16[] parameter(0)
  %y = bf16[] parameter(1)
  ROOT %add = bf16[] add(%x, %y)
}

ENTRY %main (p0: bf16[1024], p1: f32[64]) -> f32[512] {
  %p0 = bf16[1024]{0} parameter(0)
  %p1 = f32[64]{0} parameter(1)
  %ars = bf16[1024]{0} all-reduce-start(%p0), replica_groups={}, to_apply=%add
  %ard = bf16[1024]{0} all-reduce-done(%ars)
  %ags = (f32[64]{0}, f32[512]{0}) all-gather-start(%p1), dimensions={0}
  %agd = f32[512]{0} all-gather-done(%ags)
  %rs = f32[8]{0} reduce-scatter(%p1), dimensions={0}, to_apply=%add
  ROOT %out = f32[512]{0} add(%agd, %agd)
}
'''


def test_cpu_tuple_all_reduce_counts_each_array():
  got = collectives.collectives(_CPU)
  assert got == {'collective_ops': {'all-reduce': 1}, 'collective_bytes': (5 * 5 * 32 + 32 + 1) * 4}


def test_async_pairs_count_once_at_the_start():
  got = collectives.collectives(_GPU)
  assert got['collective_ops'] == {'all-gather': 1, 'all-reduce': 1, 'reduce-scatter': 1}
  assert got['collective_bytes'] == 1024 * 2 + 512 * 4 + 8 * 4


def test_no_collectives_is_zero_bytes():
  text = _CPU.replace('all-reduce(', 'tuple(').replace(', replica_groups={{0,1,2,3,4,5,6,7}}, to_apply=%add', '')
  assert collectives.collectives(text) == {'collective_ops': {}, 'collective_bytes': 0}


def test_collectives_get_the_comm_label():
  labels = hlo_labels.op_labels(hlo.parse(_GPU))
  assert labels['ars'] == labels['ard'] == 'comm/all-reduce'
  assert labels['ags'] == 'comm/all-gather'
  assert collectives.kind('all-reduce-done') == 'all-reduce' and collectives.kind('add') is None
