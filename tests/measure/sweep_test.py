"""sweep.validate in-process: each bad field is named, before any compile.

The same checks through run.py (one line on stderr, exit 2) are in tests/run_test.py,
which the fast tier leaves out; these keep config validation in it.
"""
import pytest

from experiments import seed
from kernelscale.measure import sweep
from kernelscale.net import shapes


def test_quick_config_gives_its_points():
  pts = sweep.validate(seed.get_config('quick'))
  assert [(p.model, p.kernel_size, p.padding, p.batch_size) for p in pts] == [
      ('seed', 3, 'SAME', 8), ('seed', 5, 'SAME', 8)]


@pytest.mark.parametrize('fields,field', [
    ({'kernel_sizes': (0,)}, 'config.kernel_sizes'),
    ({'kernel_sizes': (2.5,)}, 'config.kernel_sizes'),
    ({'kernel_sizes': (3, 'abc')}, 'config.kernel_sizes'),
    ({'kernel_sizes': (3, 3)}, 'config.kernel_sizes'),
    ({'batch_size': 0}, 'config.batch_size'),
    ({'paddings': ('FULL',)}, 'config.paddings'),
    ({'paddings': ('SAME', 'SAME')}, 'config.paddings'),
    ({'dtype': 'int8'}, 'config.dtype'),
    ({'model': 'seed,seed_wide'}, 'config.model'),
    ({'model': 'seed,seed'}, 'config.model'),
    ({'model': 'seed_separable', 'conv_algo': 'auto'}, 'config.conv_algo'),
    ({'profile_steps': 0}, 'config.profile_steps'),
    ({'conv_algo': 'fast'}, 'config.conv_algo'),
    ({'malloc': 'jemalloc'}, 'config.malloc'),
    ({'data_dir': '/tmp'}, 'config.data_dir'),
])
def test_bad_field_is_named(fields, field):
  cfg = seed.get_config('quick')
  for k, v in fields.items():
    setattr(cfg, k, v)
  with pytest.raises(sweep.ConfigError) as e:
    sweep.validate(cfg)
  assert str(e.value).startswith(field + ':')


@pytest.mark.parametrize('fields,says', [
    ({'kernel_sizes': (11,), 'paddings': ('VALID',)}, 'its input is 9x9'),
    ({'model': 'seed,seed_dilated', 'kernel_sizes': (4,)}, 'dilated'),
])
def test_kernel_that_does_not_fit_is_a_shape_error(fields, says):
  cfg = seed.get_config('quick')
  for k, v in fields.items():
    setattr(cfg, k, v)
  with pytest.raises(shapes.ShapeError) as e:
    sweep.validate(cfg)
  assert str(e.value).startswith('config.kernel_sizes:') and says in str(e.value)


def test_a_bad_list_element_is_the_one_named():
  # --config.kernel_sizes=3,x reaches the config as strings: 'x' is wrong, not '3'.
  cfg = seed.get_config('quick')
  cfg.kernel_sizes = ('3', 'x')
  with pytest.raises(sweep.ConfigError) as e:
    sweep.validate(cfg)
  assert str(e.value) == "config.kernel_sizes: 'x' is not an integer >= 1"
