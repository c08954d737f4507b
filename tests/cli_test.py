"""kernelscale/cli.py: the flag checks every benchmark script shares."""
import argparse

import pytest

from kernelscale import cli


def test_kernel_sizes_parses_a_list():
  assert cli.kernel_sizes('3, 5,7,') == [3, 5, 7]


@pytest.mark.parametrize('text, says', [('3,x', 'not a comma-separated list of integers'),
                                        ('', 'give one or more integers >= 1'),
                                        ('0,3', 'give one or more integers >= 1'),
                                        ('5,5', 'lists a kernel size twice')])
def test_kernel_sizes_refuses_bad_lists(capsys, text, says):
  with pytest.raises(SystemExit) as e:
    cli.kernel_sizes(text, '--ks')
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith('error: --ks: ') and says in err


def test_at_least_names_the_first_bad_flag(capsys):
  cli.at_least(argparse.Namespace(steps=1, warmup=0), ('steps', 'warmup'), low=0)
  with pytest.raises(SystemExit):
    cli.at_least(argparse.Namespace(steps=1, rounds=0), ('steps', 'rounds'))
  assert capsys.readouterr().err == 'error: --rounds: 0 is not an integer >= 1\n'
