"""report.md's "Many devices" section: speed-up, efficiency, collective bytes and comm share per k.

Present only when the run has a devices axis (experiments/devices.py). No jax here.
"""
from __future__ import annotations

from kernelscale.analysis import claims, comm


def _f(v, fmt: str) -> str:
  return '—' if v is None else format(v, fmt)


def _se(fit: dict) -> str:
  return '' if fit.get('exponent_se') is None else f' ± {fit["exponent_se"]:.2f}'


def _forced_words(cores) -> str:
  return (f'These devices are XLA:CPU host devices forced with '
          f'`--xla_force_host_platform_device_count`; they share the same {cores or "few"} CPU '
          'cores, so their step times show the program\'s overheads (splitting the batch, the '
          'all-reduce, keeping devices in step), not a hardware speed-up, and no speed-up '
          'conclusion is drawn from them. The collective ops and bytes, and the correctness of '
          'the data-parallel step (8 devices give the 1-device parameters within 1e-5), carry '
          'over to real devices.')


def section(recs: list[dict]) -> list[str]:
  """Markdown lines; [] for a run where every point ran on one device."""
  ok = [r for r in recs if r.get('status') == 'ok' and (r.get('step_s_median') or 0) > 0]
  s = comm.summary(ok)
  if s is None:
    return []
  lines = ['## Many devices (data parallel)', '']
  if s['forced_host_devices']:
    lines += [_forced_words(next((r.get('cpu_count') for r in ok), None)), '']
  else:
    lines += ['Bytes and op counts come from the optimized HLO; step times from the devices '
              'themselves.', '']
  lines += ['| scaling | k | devices | processes | global batch | per device | step ms | '
            'speed-up | efficiency | collectives | collective bytes | / grad bytes | comm share |',
            '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|']
  for r in s['rows']:
    ops = ', '.join(f'{k} ×{v}' for k, v in (r['collective_ops'] or {}).items()) or '—'
    lines.append(
        f'| {r["batch_scaling"]} | {r["k"]} | {r["n_devices"]} | {r["n_processes"]} | '
        f'{r["global_batch"]} | {r["per_device_batch"]} | {_f(r["step_s"] * 1e3, ".2f")} | '
        f'{_f(r["speedup"], ".2f")} | {_f(r["efficiency"], ".0%")} | {ops} | '
        f'{_f(r["collective_bytes"], ",")} | {_f(r["bytes_over_grad"], ".4f")} | '
        f'{_f(r["comm_share"], ".0%")} |')
  fit = s['bytes_fit']
  lines += ['']
  if fit.get('exponent') is not None:
    lines.append(f'On {s["n_devices"]} devices the collective bytes per step grow ∝ '
                 f'k^{fit["exponent"]:.2f}{_se(fit)} over k = '
                 f'{", ".join(map(str, s["k"]))}: they are the gradients (params × dtype size), '
                 'and only the conv kernels\' k² part of the parameters grows with k.')
  shares = [f'k={k}: {_f(v, ".0%")}' for k, v in zip(s['k'], s['comm_share'])]
  lines += [f'Comm share of the traced step against k on {s["n_devices"]} devices: '
            f'{"; ".join(shares)}.', '']
  return lines


MXU_TILE = 128  # TPU MXU: 128-wide tiles (v2–v5e; v6e's 256-wide MXU pads further)


def _pad(c: int) -> int:
  return -(-c // MXU_TILE) * MXU_TILE


def mxu_padding_note(recs: list[dict]) -> str | None:
  """TPU: the conv FLOPs once channels are padded to the MXU's 128-wide tiles, against the model's.

  Per conv layer the padded work is out_hw² · k² · pad(c_in) · pad(c_out); the
  model's uses the real channel counts. Batch and the three conv phases scale
  both alike. None off TPU or for a model whose shapes are not known here.
  """
  ok = [r for r in recs if r.get('status') == 'ok' and r.get('platform') == 'tpu'
        and r.get('kernel_size')]
  parts = []
  for r in sorted(ok, key=lambda r: r['kernel_size']):
    layers = claims.conv_shapes(r)
    if not layers:
      continue
    k2 = r['kernel_size'] ** 2
    model = sum(l.out_hw ** 2 * k2 * l.c_in * l.c_out for l in layers)
    padded = sum(l.out_hw ** 2 * k2 * _pad(l.c_in) * _pad(l.c_out) for l in layers)
    parts.append(f'k={r["kernel_size"]} {r.get("padding")}: ×{padded / model:.1f}')
  if not parts:
    return None
  return ('TPU MXU padding: with every conv\'s input and output channels padded to '
          f'{MXU_TILE}, the convolutions do this many times the model\'s FLOPs: '
          + ', '.join(dict.fromkeys(parts)) + ' (an estimate from the layer shapes; '
          'XLA may fold kernel taps into the contraction and pad less).')
