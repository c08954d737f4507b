"""backends.md: the CPU conv paths side by side (measure.conv_paths measured them)."""
from __future__ import annotations

import os


def markdown(rows: list[dict], geo: float | None) -> str:
  """The comparison as a markdown table, with the verdict line."""
  lines = ['| k | padding | YNNPACK (jax default) step ms | Eigen step ms | Eigen speed-up |',
           '|---:|---|---:|---:|---:|']
  for r in rows:
    f = lambda key, s=1e3: f'{r[key] * s:.2f}' if key in r else '—'  # noqa: E731
    lines.append(f'| {r["kernel_size"]} | {r["padding"]} | {f("ynnpack_step_s")} | '
                 f'{f("eigen_step_s")} | {f("speedup_eigen", 1)} |')
  if geo is not None:
    faster = 'Eigen' if geo > 1 else 'YNNPACK (the default)'
    lines += ['', f'Geometric-mean speed-up of Eigen over the out-of-the-box YNNPACK path: '
              f'**{geo:.2f}×** — {faster} is faster on this machine.']
  return '\n'.join(lines)


def write(rows: list[dict], geo: float | None, conv_algo: str, workdir: str) -> str:
  """Writes <workdir>/backends.md; returns the table's markdown."""
  md = markdown(rows, geo)
  with open(os.path.join(workdir, 'backends.md'), 'w', encoding='utf-8') as f:
    f.write('# CPU convolution paths, side by side\n\n'
            f'Convolutions: conv_algo={conv_algo}.\n\n' + md + '\n')
  return md
