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
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--kernel_sizes', default='3,5,7')
  ap.add_argument('--padding', default='SAME', choices=('SAME', 'VALID'))
  ap.add_argument('--batch_size', type=int, default=128)
  ap.add_argument('--profile_steps', type=int, default=3)
  ap.add_argument('--rounds', type=int, default=3, help='independent sweeps; medians over them')
  ap.add_argument('--cpu_conv', default='ynnpack', choices=('auto', 'ynnpack', 'eigen'))
  ap.add_argument('--workdir', default=None, help='keep the runs here (default: a temp dir)')
  a = ap.parse_args()

  from kernelscale import device  # before jax initialises
  backend = device.configure_cpu_conv(a.cpu_conv)
  from experiments import seed  # pylint: disable=g-import-not-at-top
  from kernelscale import sweep  # pylint: disable=g-import-not-at-top

  cfg = seed.get_config()
  cfg.kernel_sizes = tuple(int(k) for k in a.kernel_sizes.split(','))
  cfg.paddings = (a.padding,)
  cfg.batch_size = a.batch_size
  cfg.profile, cfg.profile_steps = True, a.profile_steps
  root = a.workdir or tempfile.mkdtemp(prefix='profile_attribution-')
  by_k: dict[int, list[dict]] = {}
  for r in range(a.rounds):
    recs = sweep.run(cfg, os.path.join(root, f'round{r}'), log=lambda _: None,
                     extra_context=backend)
    for rec in recs:
      if rec['status'] != 'ok' or rec.get('phase_s') is None:
        print(f'k={rec["kernel_size"]} round {r}: no attribution: {rec.get("error")} '
              f'{rec.get("notes")}')
        continue
      by_k.setdefault(rec['kernel_size'], []).append(rec)

  med = statistics.median
  head = next(iter(by_k.values()))[0]
  print(f'seed {a.padding} batch {a.batch_size} on {head["device_kind"]} '
        f'({os.cpu_count()} cores), cpu conv path {backend.get("cpu_conv_path")}, '
        f'XLA_FLAGS="{head["xla_flags"]}"; medians over {a.rounds} rounds, '
        f'{a.profile_steps} traced steps each; runs in {root}')
  print(f'{"k":>2} {"step ms":>8} {"traced ms":>9} {"traced/step":>11} {"coverage":>8} '
        f'{"sum-cov":>7} {"conv share":>10}')
  for k, rs in sorted(by_k.items()):
    step = med([r['step_s_median'] for r in rs])
    traced = med([r['trace_step_s_median'] for r in rs])
    cov = med([r['trace_coverage'] for r in rs])
    sum_cov = med([r['trace_op_sum_s'] / r['step_s_median'] for r in rs])
    conv = med([sum(v for p, v in r['phase_s'].items() if p.startswith('conv'))
                / r['step_s_median'] for r in rs])
    print(f'{k:>2} {step * 1e3:8.1f} {traced * 1e3:9.1f} {traced / step:11.3f} {cov:8.3f} '
          f'{sum_cov:7.3f} {conv * 100:9.1f}%')
  for k, rs in sorted(by_k.items()):
    phases = sorted({p for r in rs for p in r['phase_s']})
    parts = [(p, med([r['phase_s'].get(p, 0.0) for r in rs])) for p in phases]
    parts.sort(key=lambda x: -x[1])
    print(f'k={k} phases, ms/step (median over rounds): '
          + ', '.join(f'{p} {v * 1e3:.1f}' for p, v in parts))
    print(f'k={k} conv_impl: {rs[-1]["conv_impl"]}')


if __name__ == '__main__':
  main()
