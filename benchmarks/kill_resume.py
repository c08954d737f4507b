"""Faults: SIGKILL (or SIGTERM) a sweep at random moments, --resume after each, check the records.

Each round starts run.py (the first fresh, later ones with --resume) into one
workdir and kills it after a random delay, so kills land in jax's import, a
compile, a step, a record's write, the ceilings or the report. A last
--resume then runs to the end. The figure: every point of the sweep exactly
once with status ok, every line of results.jsonl valid JSON.

    python benchmarks/kill_resume.py                 # 20 SIGKILLs, 6 quick points (~4 min, 2 cores)
    python benchmarks/kill_resume.py --kills=5 --signal=TERM
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ('--config=' + os.path.join(ROOT, 'experiments', 'seed.py') + ':quick',
        '--config.kernel_sizes=3,5,7', '--config.paddings=SAME,VALID', '--config.profile=False')
POINTS = {f'seed-k{k}-{p}-float32-b8' for k in (3, 5, 7) for p in ('SAME', 'VALID')}


def _start(workdir: str, resume: bool) -> subprocess.Popen:
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  return subprocess.Popen([sys.executable, os.path.join(ROOT, 'run.py'), *ARGS,
                           f'--workdir={workdir}', *(['--resume'] if resume else [])],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def check(workdir: str, points=POINTS) -> list[str]:
  """What is wrong with workdir's results.jsonl ([] when every point is there exactly once)."""
  problems = []
  counts: collections.Counter = collections.Counter()
  with open(os.path.join(workdir, 'results.jsonl'), encoding='utf-8') as f:
    text = f.read()
  if text and not text.endswith('\n'):
    problems.append('last line not whole')
  for i, line in enumerate(text.splitlines(), 1):
    try:
      rec = json.loads(line)
    except json.JSONDecodeError:
      problems.append(f'line {i} is not JSON')
      continue
    counts[rec.get('point')] += 1
    if rec.get('status') != 'ok':
      problems.append(f'line {i}: status {rec.get("status")}')
  for p in sorted(points):
    if counts[p] != 1:
      problems.append(f'{p}: {counts[p]} records')
  problems += [f'{p}: not a point of the sweep' for p in counts if p not in points]
  return problems


def run(kills: int, sig: int, max_delay_s: float, seed: int, workdir: str, log=print) -> dict:
  """kills rounds of start-then-kill, then a --resume to the end; returns the figures."""
  rng = random.Random(seed)
  codes = collections.Counter()
  tracebacks = 0
  for i in range(kills):
    p = _start(workdir, resume=i > 0)
    delay = rng.uniform(0.0, max_delay_s)
    time.sleep(delay)
    if p.poll() is None:
      p.send_signal(sig)
    out, err = p.communicate()
    tracebacks += 'Traceback' in out + err
    codes[p.returncode] += 1
    lines = 0
    if os.path.exists(os.path.join(workdir, 'results.jsonl')):
      with open(os.path.join(workdir, 'results.jsonl'), encoding='utf-8') as f:
        lines = sum(1 for _ in f)
    log(f'kill {i + 1}/{kills} after {delay:.1f} s: exit {p.returncode}, {lines} record(s)')
  p = _start(workdir, resume=kills > 0)
  out, err = p.communicate()
  problems = check(workdir) if p.returncode == 0 else [f'final --resume exit {p.returncode}: '
                                                       f'{err.strip().splitlines()[-1:]}']
  return {'kills': kills, 'exit_codes': dict(codes), 'final_rc': p.returncode,
          'problems': problems, 'tracebacks': tracebacks + ('Traceback' in out + err)}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--kills', type=int, default=20)
  ap.add_argument('--signal', default='KILL', choices=('KILL', 'TERM', 'INT'))
  ap.add_argument('--max_delay_s', type=float, default=12.0,
                  help='kill moments are uniform in [0, this]; about one quick sweep here')
  ap.add_argument('--seed', type=int, default=0)
  a = ap.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.time()
    res = run(a.kills, getattr(signal, f'SIG{a.signal}'), a.max_delay_s, a.seed,
              os.path.join(tmp, 'wd'))
  print(f'{a.kills} SIG{a.signal} at random moments, then --resume: exit codes '
        f'{res["exit_codes"]}, final exit {res["final_rc"]}; '
        + ('every point exactly once, valid JSONL' if not res['problems'] else
           f'PROBLEMS: {res["problems"]}') + f'; {res["tracebacks"]} traceback(s) '
        f'({time.time() - t0:.0f} s)')
  sys.exit(1 if res['problems'] else 0)


if __name__ == '__main__':
  main()
