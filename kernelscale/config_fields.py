"""The config fields as `python run.py --help` lists them: from experiments/seed.py's FIELDS.

One table (seed.FIELDS) gives each field's default and meaning; nothing here
repeats it. Fields only some experiments add are named with their file.
"""
from __future__ import annotations

# Fields an experiment adds to seed's, and the file that documents them.
EXTRA = {'experiments/backends.py': ('child_config', 'compare_cpu_conv', 'rounds',
                                     'cache_decision')}


def _show(value) -> str:
  if isinstance(value, (tuple, list)):
    return ','.join(str(v) for v in value)
  return 'None' if value is None else str(value)


def help_text() -> str:
  """The config-field table for --help: `--config.<field>=<default>  meaning`, one per line."""
  from experiments import seed  # pylint: disable=g-import-not-at-top
  config = seed.get_config()
  rows = [(f'--config.{f}={_show(config[f])}', meaning) for f, _, meaning in seed.FIELDS]
  width = max(len(a) for a, _ in rows) + 2
  lines = ['', 'config fields (--config.<field>=value; defaults of experiments/seed.py, '
           'which every experiment derives from):']
  lines += [f'  {a:<{width}}{m}' for a, m in rows]
  lines += [f'  {path} adds: {", ".join(fields)}' for path, fields in EXTRA.items()]
  return '\n'.join(lines) + '\n'
