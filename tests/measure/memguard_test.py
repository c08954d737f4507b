"""measure/memguard.py: a point that would not fit is skipped with its figures."""
import pytest

from kernelscale.measure import memguard


def test_available_memory_is_known_on_this_machine():
  avail = memguard.available_bytes()
  assert avail is not None and avail > 2 ** 26


def test_params_that_do_not_fit_raise_with_figures():
  memguard.check_params(1000, avail=10 ** 9)
  with pytest.raises(memguard.DoesNotFit) as e:
    memguard.check_params(10 ** 9, avail=10 ** 9)
  assert e.value.fields == {'mem_needed_bytes': 16 * 10 ** 9, 'mem_available_bytes': 10 ** 9,
                            'mem_params_bytes': 4 * 10 ** 9}
  assert 'weights, gradients, Adam moments' in str(e.value)


def test_compiled_memory_counts_params_temp_arguments_outputs():
  rec = {'params': 10, 'temp_bytes': 100, 'argument_bytes': 50, 'output_bytes': None}
  memguard.check_compiled(rec, avail=190)
  with pytest.raises(memguard.DoesNotFit) as e:
    memguard.check_compiled(rec, avail=189)
  assert e.value.fields['mem_needed_bytes'] == 190 and e.value.fields['temp_bytes'] == 100


def test_up_front_check_names_the_point():
  assert memguard.check_up_front(10, 'model seed at k=3') is None
  why = memguard.check_up_front(10 ** 13, 'model seed at k=3001')
  assert why.startswith('model seed at k=3001 has 10000000000000 parameters')
