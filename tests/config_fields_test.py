"""--help's config-field table comes from experiments/seed.py's FIELDS, the one table."""
import ml_collections

from experiments import accuracy, seed
from kernelscale import config_fields


def test_help_lists_every_field_with_default_and_meaning():
  text = config_fields.help_text()
  config = seed.get_config()
  assert {f for f, _, _ in seed.FIELDS} == set(config.keys())
  for field, _, meaning in seed.FIELDS:
    line = next(l for l in text.splitlines() if l.strip().startswith(f'--config.{field}='))
    assert meaning in line
  assert '--config.kernel_sizes=3,5,7,9 ' in text and '--config.data_dir=None ' in text
  # Every field of every derived experiment is listed, or named with its file.
  for field in accuracy.get_config().keys():
    assert f'--config.{field}=' in text


def test_fields_build_independent_configs():
  a, b = seed.get_config(), seed.get_config()
  a.data_dir = '/x'
  assert b.data_dir is None  # placeholders are not shared between configs
  assert isinstance(a, ml_collections.ConfigDict)
