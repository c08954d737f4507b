"""report.notes: what report.md says about the machine the records ran on."""
from kernelscale.analysis import claims
from kernelscale.report import notes


def test_platform_notes_per_backend():
  cpu = [{'status': 'ok', 'platform': 'cpu', 'cpu_conv_path': 'eigen',
          'cpu_conv_reason': 'set', 'cpu_conv_speedup_vs_default': 1.5}]
  assert '1.50x' in notes.platform_notes(cpu)[0]
  gpu = [{'status': 'ok', 'platform': 'gpu', 'precision': 'highest', 'dtype': 'float32',
          'xla_gpu_autotune_level': 2}]
  assert 'autotune level 2' in notes.platform_notes(gpu)[0]
  tpu = [{'status': 'ok', 'platform': 'tpu'}]
  assert 'padded to 128' in notes.platform_notes(tpu)[0]
  assert notes.platform_notes([{'status': 'failed'}]) == []


def test_malloc_note_in_cpu_platform_notes():
  base = {'status': 'ok', 'platform': 'cpu', 'cpu_conv_path': 'eigen', 'cpu_conv_reason': 'set'}
  kept = [dict(base, malloc='auto', malloc_mode='retain', minor_faults_per_step=0.0,
               temp_bytes=45 << 20)]
  note = notes.platform_notes(kept)[1]
  assert 'kept freed memory' in note and '0 minor page faults' in note and '45 MiB' in note
  faulting = [dict(base, malloc='system', malloc_mode='system', minor_faults_per_step=f,
                   temp_bytes=57 << 20) for f in (11_000.0, 14_600.0)]
  note = notes.platform_notes(faulting)[1]
  assert 'afresh' in note and '11,000-14,600 minor page faults' in note
  small = [dict(r, temp_bytes=5 << 20) for r in faulting]  # below glibc's mmap threshold
  assert 'afresh' not in notes.platform_notes(small)[1]
  assert 'predate config.malloc' in notes.platform_notes([base])[1]


def test_platform_notes_name_convolutions_run_as_the_unoptimized_loop():
  eigen = 'Eigen (XLA CPU convolution)'
  rec = {'status': 'ok', 'platform': 'cpu', 'cpu_conv_path': 'eigen', 'padding': 'VALID',
         'kernel_size': 7, 'malloc_mode': 'retain',
         'conv_impl': {'conv1/forward': eigen, 'conv2/forward': eigen,
                       'conv2/backward_filter': eigen,
                       'conv2/backward_input': 'XLA CPU unoptimized loop (kernel reversed in the window)'},
         'phase_s': {'conv1/forward': 0.1, 'conv2/forward': 0.01, 'conv2/backward_filter': 0.02,
                     'conv2/backward_input': 0.05},
         'analytic_phase_flops': {'conv1/forward': 1e9, 'conv2/forward': 1e9,
                                  'conv2/backward_filter': 1e9, 'conv2/backward_input': 1e9}}
  said = notes.platform_notes([rec])
  slow = [n for n in said if 'unoptimized loop' in n]
  assert len(slow) == 1
  assert 'VALID k=7 conv2/backward_input (kernel reversed in the window; 20.0 GFLOP/s' in slow[0]
  assert 'against 50.0 GFLOP/s' in slow[0]  # median of the other phases' 10, 100 and 50
  rec['conv_impl']['conv2/backward_input'] = eigen
  assert not any('unoptimized loop' in n for n in notes.platform_notes([rec]))
  # A hand-edited record with a conv_impl that is not text is not the loop, and no crash.
  rec['conv_impl']['conv2/backward_input'] = None
  assert not any('unoptimized loop' in n for n in notes.platform_notes([rec]))


def test_platform_notes_say_when_other_load_inflated_step_times():
  base = {'status': 'ok', 'platform': 'cpu', 'cpu_conv_path': 'eigen', 'padding': 'SAME',
          'malloc_mode': 'retain'}
  quiet = [dict(base, kernel_size=k, other_cpu_share=s) for k, s in ((3, 0.01), (5, 0.04))]
  [line] = [n for n in notes.platform_notes(quiet) if n.startswith('Other load')]
  assert 'at most 4.0%' in line and 'inflated' not in line and 'Not measured' not in line
  # Just under the threshold is quiet, at it is flagged.
  edge = [dict(base, kernel_size=3, other_cpu_share=claims.CONTENDED_SHARE - 1e-4)]
  assert not any('inflated' in n for n in notes.platform_notes(edge))
  edge[0]['other_cpu_share'] = claims.CONTENDED_SHARE
  assert any('inflated' in n for n in notes.platform_notes(edge))
  busy = quiet + [dict(base, kernel_size=7, other_cpu_share=0.45)]
  [line] = [n for n in notes.platform_notes(busy) if 'Other load' in n]
  assert 'inflated' in line and 'SAME k=7 (45%)' in line and '1 of 3 measured points' in line
  assert 'k=5' not in line
  # Points not measured are named as such, never vouched for.
  part = quiet + [dict(base, kernel_size=7, other_cpu_share=None)]
  [line] = [n for n in notes.platform_notes(part) if n.startswith('Other load')]
  assert 'the 2 measured points' in line and 'Not measured at 1 of the 3 points' in line
  # Not measured (not Linux, or records from before the field): no sentence at all.
  assert not [n for n in notes.platform_notes([dict(base, kernel_size=3)]) if 'Other load' in n]
