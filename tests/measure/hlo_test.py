"""Optimized-HLO parsing: op -> layer/phase labels and conv implementations.

The CPU fixture is real (tests/fixtures/make_trace_fixture.py); the GPU and
TPU modules below are small hand-written modules in the text form XLA prints,
to check the parser on backends this machine does not have.
"""
import gzip
import os

import pytest

from kernelscale import records
from kernelscale.measure import hlo, hlo_labels


FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures')
YNN, EIGEN = 'seed_k3_b32_cpu', 'seed_k3_b32_cpu_eigen'  # the CPU conv paths
CONV_KEYS = {'conv1/forward', 'conv1/backward_filter', 'conv2/forward',
             'conv2/backward_input', 'conv2/backward_filter'}


def _fixture(name=YNN):
  with gzip.open(os.path.join(FIXTURES, name + '.hlo.txt.gz'), 'rt') as f:
    return hlo.parse(f.read())


def test_parse_fixture_module_and_kernels():
  m = _fixture()
  assert m.name == 'jit_train_step' and m.entry in m.computations
  assert hlo_labels.conv_kernels(m) == {'conv1': (3, 3, 1, 32), 'conv2': (3, 3, 32, 64)}


@pytest.mark.parametrize('name', [YNN, EIGEN])
def test_fixture_conv_labels_one_per_phase_and_no_conv1_backward_input(name):
  m = _fixture(name)
  labels = hlo_labels.op_labels(m)
  conv_ops = {}
  for name, lab in labels.items():
    if any(s.opcode == 'convolution' for s in hlo_labels._inner(m, m.instrs[name])):  # pylint: disable=protected-access
      conv_ops.setdefault(lab, []).append(name)
  assert set(conv_ops) == CONV_KEYS
  assert all(len(v) == 1 for v in conv_ops.values()), conv_ops
  assert 'conv1/backward_input' not in labels.values()


@pytest.mark.parametrize('name', [YNN, EIGEN])
def test_fixture_other_phases_present(name):
  labels = set(hlo_labels.op_labels(_fixture(name)).values())
  for want in ('dense/forward', 'dense/backward', 'pooling/forward', 'pooling/backward',
               'activation/forward', 'activation/backward', 'loss/all', 'optimizer/update'):
    assert want in labels, want
  assert not any(l.startswith('mixed/') for l in labels)


@pytest.mark.parametrize('name,impl', [(YNN, 'YNNPACK fusion'),
                                       (EIGEN, 'Eigen (XLA CPU convolution)')])
def test_fixture_conv_impl(name, impl):
  m = _fixture(name)
  assert hlo_labels.conv_impl(m, hlo_labels.op_labels(m), 'cpu') == {k: impl for k in CONV_KEYS}


# Shapes of the seed net's conv2 at k=3, batch 4; no op_name metadata, so the
# phases must come from the shapes alone. The operand transpose has no
# metadata either and must inherit the label of the conv it feeds.
_EIGEN = """HloModule jit_train_step, is_scheduled=true

ENTRY %main (p0: f32[3,3,32,64], x: f32[4,14,14,32], dy: f32[4,14,14,64]) -> (f32[4,14,14,64], f32[4,14,14,32], f32[3,3,32,64]) {
  %p0 = f32[3,3,32,64]{3,2,1,0} parameter(0), metadata={op_name="state.params[\\'conv2\\'][\\'kernel\\']"}
  %x = f32[4,14,14,32]{3,2,1,0} parameter(1)
  %dy = f32[4,14,14,64]{3,2,1,0} parameter(2)
  %fwd = f32[4,14,14,64]{3,2,1,0} convolution(%x, %p0), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f
  %wt = f32[3,3,64,32]{3,2,1,0} transpose(%p0), dimensions={0,1,3,2}
  %bin = f32[4,14,14,32]{3,2,1,0} convolution(%dy, %wt), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f
  %bfl = f32[32,3,3,64]{3,2,1,0} convolution(%x, %dy), window={size=14x14 pad=1_1x1_1}, dim_labels=f01b_i01o->b01f
  ROOT %t = (f32[4,14,14,64]{3,2,1,0}, f32[4,14,14,32]{3,2,1,0}, f32[32,3,3,64]{3,2,1,0}) tuple(%fwd, %bin, %bfl)
}
"""


def test_conv_phase_from_shapes_and_eigen_impl():
  m = hlo.parse(_EIGEN)
  labels = hlo_labels.op_labels(m)
  assert labels['fwd'] == 'conv2/forward'
  assert labels['bin'] == 'conv2/backward_input'
  assert labels['bfl'] == 'conv2/backward_filter'
  assert labels['wt'] == 'conv2/backward_input'  # feeds only the backward-input conv
  impl = hlo_labels.conv_impl(m, labels, 'cpu')
  assert impl['conv2/forward'] == impl['conv2/backward_input'] == 'Eigen (XLA CPU convolution)'
  # This hand-written filter gradient keeps the batch last (f01b): XLA:CPU would run it
  # as its own loop (optimized HLO transposes it to b01f first, as the fixtures show).
  assert impl['conv2/backward_filter'] == (
      'XLA CPU unoptimized loop (dimensions f01b_i01o->b01f, not b01f_01io->b01f)')


_GPU = """HloModule jit_train_step

ENTRY %main (x: f32[4,28,28,1], w: f32[3,3,1,32]) -> f32[4,28,28,32] {
  %x = f32[4,28,28,1]{3,2,1,0} parameter(0)
  %w = f32[3,3,1,32]{3,2,1,0} parameter(1), metadata={op_name="state.params[\\'conv1\\'][\\'kernel\\']"}
  %cudnn-conv.1 = (f32[4,28,28,32]{3,2,1,0}, u8[0]{0}) custom-call(%x, %w), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, custom_call_target="__cudnn$convForward", metadata={op_name="jit(train_step)/jvp(ConvNet)/conv1/conv_general_dilated"}, backend_config={"operation_queue_id":"0","cudnn_conv_backend_config":{"activation_mode":"kNone","conv_result_scale":1,"algorithm":{"algo_id":"28","math_type":"DEFAULT_MATH","is_cudnn_frontend":false,"workspace_size":"0"}}}
  ROOT %get-tuple-element.3 = f32[4,28,28,32]{3,2,1,0} get-tuple-element(%cudnn-conv.1), index=0
}
"""

_TPU = """HloModule jit_train_step

%fused_computation (param_0: f32[4,28,28,1], param_1: f32[3,3,1,32]) -> f32[4,28,28,32] {
  %param_0 = f32[4,28,28,1]{3,2,1,0} parameter(0)
  %param_1 = f32[3,3,1,32]{3,2,1,0} parameter(1)
  ROOT %convolution.1 = f32[4,28,28,32]{3,2,1,0} convolution(%param_0, %param_1), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, metadata={op_name="jit(train_step)/jvp(ConvNet)/conv1/conv_general_dilated"}
}

ENTRY %main (x: f32[4,28,28,1], w: f32[3,3,1,32]) -> f32[4,28,28,32] {
  %x = f32[4,28,28,1]{3,2,1,0} parameter(0)
  %w = f32[3,3,1,32]{3,2,1,0} parameter(1), metadata={op_name="state.params[\\'conv1\\'][\\'kernel\\']"}
  ROOT %fusion.3 = f32[4,28,28,32]{3,2,1,0} fusion(%x, %w), kind=kOutput, calls=%fused_computation, metadata={op_name="jit(train_step)/jvp(ConvNet)/conv1/conv_general_dilated"}
}
"""


@pytest.mark.parametrize('text,platform,op,impl', [
    (_GPU, 'gpu', 'cudnn-conv.1', 'cuDNN __cudnn$convForward algo 28'),
    (_TPU, 'tpu', 'fusion.3', 'XLA convolution fusion (kOutput)'),
])
def test_gpu_cudnn_and_tpu_fusion_impl(text, platform, op, impl):
  m = hlo.parse(text)
  labels = hlo_labels.op_labels(m)
  assert labels[op] == 'conv1/forward'
  assert hlo_labels.conv_impl(m, labels, platform) == {'conv1/forward': impl}


def test_two_convs_in_one_fusion_are_mixed_not_dropped():
  text = _TPU.replace(
      'ROOT %convolution.1 = f32[4,28,28,32]{3,2,1,0} convolution(%param_0, %param_1)',
      '%convolution.1 = f32[4,28,28,32]{3,2,1,0} convolution(%param_0, %param_1)').replace(
          'metadata={op_name="jit(train_step)/jvp(ConvNet)/conv1/conv_general_dilated"}\n}',
          'metadata={op_name="jit(train_step)/jvp(ConvNet)/conv1/conv_general_dilated"}\n'
          '  ROOT %convolution.2 = f32[1,3,3,32]{3,2,1,0} convolution(%param_0, %convolution.1), '
          'window={size=28x28 pad=1_1x1_1}, dim_labels=f01b_i01o->b01f, '
          'metadata={op_name="jit(train_step)/transpose(jvp(ConvNet))/conv1/conv_general_dilated"}\n}', 1)
  m = hlo.parse(text)
  assert hlo_labels.op_labels(m)['fusion.3'] == 'mixed/conv1.backward_filter+conv1.forward'


def test_cpu_conv_that_eigen_cannot_take_is_named_as_the_unoptimized_loop():
  # XLA:CPU's own test: no kernel reversal, b01f_01io->b01f; anything else runs as its loop.
  canonical = ('window={size=5x5 pad=2_2x2_2}, dim_labels=b01f_01io->b01f, '
               'metadata={op_name="x"}')
  swapped = ('window={size=5x5 pad=4_4x4_4 rhs_reversal=1x1}, dim_labels=01fb_o01i->f01b, '
             'metadata={op_name="x"}')
  conv = lambda attrs: hlo.Instr('c', 'convolution', 'f32[1]', [], [], '', None, attrs, 'e')  # noqa: E731
  assert hlo_labels._not_eigen(conv(canonical)) is None  # pylint: disable=protected-access
  why = hlo_labels._not_eigen(conv(swapped))  # pylint: disable=protected-access
  assert 'kernel reversed' in why and '01fb_o01i->f01b' in why
  assert hlo_labels._not_eigen(conv(canonical.replace('pad=2_2x2_2', 'rhs_reversal=0x1'))) == (  # pylint: disable=protected-access
      'kernel reversed in the window')
  assert hlo_labels._not_eigen(conv(canonical.replace('pad=2_2x2_2', 'rhs_reversal=0x0'))) is None  # pylint: disable=protected-access
  # The output's form counts too, and the rule holds for 1-D convolutions.
  assert '->f01b' in hlo_labels._not_eigen(conv(canonical.replace('->b01f', '->f01b')))  # pylint: disable=protected-access
  assert hlo_labels._not_eigen(conv('window={size=5}, dim_labels=b0f_0io->b0f')) is None  # pylint: disable=protected-access
  assert 'not b0f_0io->b0f' in hlo_labels._not_eigen(conv('window={size=5}, dim_labels=bf0_0io->b0f'))  # pylint: disable=protected-access
  # Eigen takes f16/f32 only, and 1 to 3 spatial dimensions.
  f64 = hlo.Instr('c', 'convolution', 'f64[1]', [], [], '', None, canonical, 'e')
  assert hlo_labels._not_eigen(f64) == 'element type f64'  # pylint: disable=protected-access
  assert hlo_labels._not_eigen(conv('dim_labels=b0123f_0123io->b0123f')) == '4 spatial dimensions'  # pylint: disable=protected-access


def test_valid_k7_seed_step_runs_one_conv_as_the_unoptimized_loop():
  # This jaxlib's XLA turns conv2's input gradient (7x7 kernel, 5x5 output) into a
  # reversed-kernel convolution that neither Eigen nor YNNPACK takes; no other conv is so.
  import jax  # pylint: disable=g-import-not-at-top
  from kernelscale.data import source  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import timing
  from kernelscale.net import models, train
  module = models.build('seed', 7, 'VALID', 'float32')
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), source.SYNTHETIC_SHAPE)
  comp = timing.compile_aot(train.train_step, (state, source.synthetic_batch(2, 0)))['compiled']
  m = hlo.parse(comp.as_text())
  impl = hlo_labels.conv_impl(m, hlo_labels.op_labels(m), 'cpu')
  assert impl['conv2/backward_input'].startswith(records.UNOPTIMIZED_CPU_CONV)
  assert not any(v.startswith(records.UNOPTIMIZED_CPU_CONV)
                 for k, v in impl.items() if k != 'conv2/backward_input'), impl


# One design in the fast tier (conv1 and conv2dw share a kernel shape); the others slow.
@pytest.mark.parametrize('model,k,convs', [
    ('seed_separable', 5, {'conv1', 'conv2dw', 'conv2pw'}),
    pytest.param('seed_stacked', 5, {'conv1', 'conv2a', 'conv2b'}, marks=pytest.mark.slow),
    # conv2b and conv2c have the same [3, 3, 64, 64] kernel: the op name tells them apart.
    pytest.param('seed_stacked', 7, {'conv1', 'conv2a', 'conv2b', 'conv2c'},
                 marks=pytest.mark.slow),
    pytest.param('seed_spatial', 5, {'conv1', 'conv2v', 'conv2h'}, marks=pytest.mark.slow),
    pytest.param('seed_dilated', 5, {'conv1', 'conv2'}, marks=pytest.mark.slow),
])
def test_each_conv_of_a_design_gets_its_own_label_per_phase(model, k, convs):
  # conv1 and the depthwise conv2dw share a kernel shape at k=5 ([5, 5, 1, 32]);
  # XLA:CPU computes conv2dw's filter gradient as a dense [32, 5, 5, 32] conv.
  import jax  # pylint: disable=g-import-not-at-top
  from kernelscale.data import source  # pylint: disable=g-import-not-at-top
  from kernelscale.measure import timing
  from kernelscale.net import models, train
  module = models.build(model, k, 'SAME', 'float32')
  state = train.create_state(module, 1e-3, jax.random.PRNGKey(0), source.SYNTHETIC_SHAPE)
  comp = timing.compile_aot(train.train_step, (state, source.synthetic_batch(2, 0)))['compiled']
  m = hlo.parse(comp.as_text())
  impl = hlo_labels.conv_impl(m, hlo_labels.op_labels(m), 'cpu')
  want = {f'{c}/{p}' for c in convs for p in ('forward', 'backward_input', 'backward_filter')}
  assert set(impl) == want - {'conv1/backward_input'}
