"""A workdir's reports, from its files alone: results.md, analysis.json, report.md, terminal lines.

run.py calls `results` and `analyse` after a sweep, and `report_only` for
--report_only, which therefore never initialises jax.
"""
from __future__ import annotations

import os

from kernelscale import cli, records
from kernelscale.report import markdown, terminal


def results(recs: list[dict], workdir: str, tensorboard: str | None) -> None:
  """Prints the table, writes results.md and names where everything went."""
  print()
  print(markdown.text_table(recs))
  md = markdown.write_results_md(recs, workdir)
  print(f'\nresults: {os.path.join(os.path.abspath(workdir), "results.jsonl")}')
  print(f'summary: {os.path.abspath(md)}')
  if tensorboard:
    print(f'traces:  {tensorboard}')


def analyse(recs: list[dict], workdir: str, ceil: dict | None, predict_k: int | None) -> None:
  """Writes analysis.json, report.md and the plots; prints the answer, paths and --predict."""
  out = markdown.write_all(recs, workdir, ceil, predict_k=predict_k)
  print('\n'.join(terminal.analysis_lines(out['analysis'], predict_k)))
  print(f'analysis: {os.path.abspath(out["analysis_json"])}')
  print(f'report: {os.path.abspath(out["report_md"])}')


def report_only(workdir: str | None, predict_k: int | None) -> None:
  """--report_only: everything from the workdir's files, nothing measured; bad input exits 2."""
  if not workdir:
    cli.fail('--workdir: --report_only needs the --workdir of an earlier run')
  path = os.path.join(workdir, 'results.jsonl')
  if not os.path.isfile(path):
    cli.fail(f'--workdir: no results.jsonl in {workdir!r}; run a sweep there first')
  try:
    recs = records.load(path)
  except ValueError as e:
    cli.fail(f'--workdir: {e}')
  if not recs:
    cli.fail(f'--workdir: {path} holds no records')
  paths = {r.get('cpu_conv_path') for r in recs if r.get('cpu_conv_path')}
  if len(paths) > 1:
    # One analysis over two conv paths would fit a law through two machines.
    cli.fail(f'--workdir: {workdir!r} holds records of several CPU conv paths '
             f'({", ".join(sorted(paths))}: an experiments/backends.py run); its comparison is '
             'backends.md there; --report_only works on each <path>-roundN folder inside it')
  ok = [r for r in recs if r.get('status') == 'ok']
  key = records.device_key(ok[0].get('platform'), ok[0].get('device_kind')) if ok else None
  print(markdown.text_table(recs))
  markdown.write_results_md(recs, workdir)
  analyse(recs, workdir, records.load_ceilings(workdir).get(key), predict_k)
