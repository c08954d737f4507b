"""Per-phase attribution check: trace coverage, conv share and tracing overhead.

Runs the sweep (seed net, SAME, batch 128 by default) with profiling on, in
`rounds` fresh sweeps, and prints per kernel size the medians over rounds of:
the untraced median step, the traced-window median step (tracing overhead),
trace_coverage with our split-overlap attribution next to what a plain sum
of op durations would give, the conv phases' share of the step, the
per-phase breakdown and the conv implementation XLA chose.

    python benchmarks/profile_attribution.py                      # jax default: YNNPACK
    python benchmarks/profile_attribution.py --cpu_conv=eigen     # XLA's Eigen conv path
    python benchmarks/profile_attribution.py --kernel_sizes=3,5,7 --rounds=3
    python benchmarks/profile_attribution.py --summarize=<an earlier --workdir>
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import tempfile



def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--kernel_sizes', default='3,5,7')
  ap.add_argument('--padding', default='SAME', choices=('SAME', 'VALID'))
  ap.add_argument('--batch_size', type=int, default=128)
  ap.add_argument('--profile_steps', type=int, default=3)
  ap.add_argument('--rounds', type=int, default=3, help='independent sweeps; medians over them')
  ap.add_argument('--cpu_conv', default='ynnpack', choices=('auto', 'ynnpack', 'eigen'))
  ap.add_argument('--workdir', default=None, help='keep the runs here (default: a temp dir)')
  ap.add_argument('--summarize', default=None,
                  help='only re-read the records under this earlier --workdir (no measuring)')
  a = ap.parse_args()

  if a.summarize:
    from kernelscale import records  # pylint: disable=g-import-not-at-top
    root = a.summarize
    rounds = sorted(glob.glob(os.path.join(root, 'round*', 'results.jsonl')))
    recs_by_round = [records.load(p) for p in rounds]
    backend = {'cpu_conv_path': recs_by_round[0][0].get('cpu_conv_path')}
  else:
    from kernelscale.measure import host  # before jax initialises
    backend = host.configure(a.cpu_conv)  # as run.py: conv path, and malloc=auto
    from experiments import seed  # pylint: disable=g-import-not-at-top
    from kernelscale.measure import sweep  # pylint: disable=g-import-not-at-top

    cfg = seed.get_config()
    cfg.kernel_sizes = tuple(int(k) for k in a.kernel_sizes.split(','))
    cfg.paddings = (a.padding,)
    cfg.batch_size = a.batch_size
    cfg.profile, cfg.profile_steps = True, a.profile_steps
    root = a.workdir or tempfile.mkdtemp(prefix='profile_attribution-')
    recs_by_round = [sweep.run(cfg, os.path.join(root, f'round{r}'), log=lambda _: None,
                               extra_context=backend) for r in range(a.rounds)]
  by_k: dict[int, list[dict]] = {}
  for r, recs in enumerate(recs_by_round):
    for rec in recs:
      if rec['status'] != 'ok' or rec.get('phase_s') is None:
        print(f'k={rec["kernel_size"]} round {r}: no attribution: {rec.get("error")} '
              f'{rec.get("notes")}')
        continue
      by_k.setdefault(rec['kernel_size'], []).append(rec)

  med = statistics.median
  head = next(iter(by_k.values()))[0]
  print(f'seed {head["padding"]} batch {head["batch_size"]} on {head["device_kind"]} '
        f'({os.cpu_count()} cores), cpu conv path {backend.get("cpu_conv_path")}, '
        f'XLA_FLAGS="{head["xla_flags"]}"; medians over {len(recs_by_round)} rounds, '
        f'{head["profile_steps"]} traced steps each; runs in {root}')
  # coverage = attributed / step_s_median (the record's trace_coverage); win-cov divides by
  # the traced window's own median step instead, so machine noise between the timed
  # steps and the window does not enter; sum-cov is what summing op durations would give.
  print(f'{"k":>2} {"step ms":>8} {"traced ms":>9} {"traced/step":>11} {"coverage":>8} '
        f'{"win-cov":>7} {"sum-cov":>7} {"conv/step":>9} {"conv/window":>11}')
  for k, rs in sorted(by_k.items()):
    step = med([r['step_s_median'] for r in rs])
    traced = med([r['trace_step_s_median'] for r in rs])
    cov = med([r['trace_coverage'] for r in rs])
    win_cov = med([sum(r['phase_s'].values()) / r['trace_step_s_median'] for r in rs])
    sum_cov = med([r['trace_op_sum_s'] / r['step_s_median'] for r in rs])
    conv = med([sum(v for p, v in r['phase_s'].items() if p.startswith('conv'))
                / r['step_s_median'] for r in rs])
    conv_win = med([sum(v for p, v in r['phase_s'].items() if p.startswith('conv'))
                    / r['trace_step_s_median'] for r in rs])
    print(f'{k:>2} {step * 1e3:8.1f} {traced * 1e3:9.1f} {traced / step:11.3f} {cov:8.3f} '
          f'{win_cov:7.3f} {sum_cov:7.3f} {conv * 100:8.1f}% {conv_win * 100:10.1f}%')
  for k, rs in sorted(by_k.items()):
    phases = sorted({p for r in rs for p in r['phase_s']})
    parts = [(p, med([r['phase_s'].get(p, 0.0) for r in rs])) for p in phases]
    parts.sort(key=lambda x: -x[1])
    print(f'k={k} phases, ms/step (median over rounds): '
          + ', '.join(f'{p} {v * 1e3:.1f}' for p, v in parts))
    print(f'k={k} conv_impl: {rs[-1]["conv_impl"]}')


if __name__ == '__main__':
  main()
