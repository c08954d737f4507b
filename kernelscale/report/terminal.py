"""What the terminal shows: progress lines while measuring, the answer and predictions after.

run.py prints these; they read records and analysis.json's dict only.
"""
from __future__ import annotations

from kernelscale import progress
from kernelscale.analysis import claims, predict
from kernelscale.net import shapes


class SweepProgress:
  """sweep.run's on_record: each point's progress line, with a bar and an ETA over the sweep.

  The bar (a terminal only) shows from the start, so the first compile is not silence;
  elsewhere each point's line ends with ', ETA ...'.
  """

  def __init__(self, n: int):
    self._bar = progress.Bar(n, desc='sweep', unit='point')

  def __call__(self, i: int, n: int, rec: dict) -> None:
    self._bar.update(1, line=progress_line(i, n, rec), total=n)
    if i >= n:
      self._bar.close()


def progress_line(i: int, n: int, rec: dict) -> str:
  head = f'[{i}/{n}] k={rec["kernel_size"]:<2} {rec["padding"]:<5}'
  if rec.get('block', 'plain') != 'plain':
    head += f' {rec["block"]}'
  if rec.get('features'):
    head += f' widths {rec["features"]}'
  if rec.get('repeat'):
    head += f' repeat {rec["repeat"] + 1}'
  if rec['status'] != 'ok':
    return f'{head} {str(rec["status"]).upper()}: {rec.get("error")}'
  line = (f'{head} compile {rec["compile_s"]:.2f} s, step {rec["step_s_median"] * 1e3:.1f} ms '
          f'(median of {rec["steps_timed"]}), {rec["point_wall_s"]:.1f} s wall')
  other = rec.get('other_cpu_share')
  if other is not None and other >= claims.CONTENDED_SHARE:
    line += f', other processes took {other:.0%} of the CPU (step time may be inflated)'
  algos = rec.get('conv_algos') or {}
  if shapes.substituted(algos.values()):
    line += ', ' + ' '.join(f'{layer} {a}' for layer, a in sorted(algos.items()))
  if rec.get('test_accuracy') is not None:
    line += (f', test accuracy {rec["test_accuracy"]:.4f}, epoch {rec["epoch_s"]:.1f} s '
             f'(data wait {rec["data_wait_s"]:.2f} s)')
    if rec.get('eval_every'):
      line += (f', {rec["target_accuracy"]:g} reached after {rec["steps_to_target"]} steps'
               if rec.get('steps_to_target') is not None else
               f', {rec["target_accuracy"]:g} not reached')
  return line


def analysis_lines(res: dict, predict_k: int | None) -> list[str]:
  """The answer, each claim's verdict, the leave-one-out error and any --predict lines."""
  plain = (res.get('plain_answer') or {}).get('sentences')
  out = [''] + ([' '.join(plain), ''] if plain else []) + ['In numbers: ' + ' '.join(res['answer'])]
  # Each claim in words, so the verdict reads without the report.
  out += [f'  claim {c["id"]}' + (f' ({c["name"]})' if c.get('name') else '')
          + f': {c["verdict"]} — {c.get("claim") or claims.CLAIMS.get(c["id"], "")}'
          for c in res['claims']]
  if res['loo_median_abs_rel_error'] is not None:
    line = (f'leave-one-out median |error| {res["loo_median_abs_rel_error"]:.1%} '
            f'({res["prediction_model_words"]})')
    off = res['loo'][res['prediction_model']]['set_apart']
    if off:
      line += ('; set apart (XLA\'s unoptimized conv loop, see report): '
               + ', '.join(p['where'] for p in off))
      if res['loo_all_points_median_abs_rel_error'] is not None:
        line += f'; {res["loo_all_points_median_abs_rel_error"]:.1%} with them'
    out.append(line)
  elif res.get('unoptimized_loop_points'):
    out.append('leave-one-out: no law could be fitted once the points run as XLA\'s unoptimized '
               'conv loop were set apart (see report)')
  if predict_k is not None:
    out += [prediction_line(p) for p in res['predictions']]  # also in analysis.json
  return out


def prediction_line(p: dict) -> str:
  """One --predict result: the step time with its interval, or why there is none."""
  head = f'predicted step at k={p["k"]} {p["group"]}:'
  if p.get('set_apart_k'):
    head = head[:-1] + f' (k={",".join(map(str, p["set_apart_k"]))} set apart):'
  if 'reason' in p:
    return f'{head} none ({p["reason"]})'
  if p['lo_s'] is None:
    return (f'{head} {p["step_s"] * 1e3:.1f} ms (no interval: too few points) '
            f'[{predict.MODEL_WORDS[p["model"]]}]')
  return (f'{head} {p["step_s"] * 1e3:.1f} ms, {p["interval"]:.0%} interval '
          f'{p["lo_s"] * 1e3:.1f}–{p["hi_s"] * 1e3:.1f} ms '
          f'[{predict.MODEL_WORDS[p["model"]]}, measured k={p["measured_k"]}]')
