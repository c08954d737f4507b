"""Many devices: speed-up, efficiency, collective bytes and comm share per k; the sixth claim.

Reads records with `n_devices` (kernelscale/measure/distributed.py). Strong
scaling keeps the global batch: speed-up = t(1 device) / t(n), efficiency =
speed-up / n. Weak scaling keeps the per-device batch: efficiency = t(1) / t(n).
The comm share is the trace's collective time (`phase_s['comm/…']`) over the
traced step. No jax here (tests/jax_free_test.py).
"""
from __future__ import annotations

from typing import Sequence

from kernelscale.analysis import fits

CLAIM_ID = 6
CLAIM = 'Bigger kernels also cost more in gradient communication (data parallel).'
GROWS = 1.05  # as claims.GROWS: a ratio above this counts as growth


def multi(ok: Sequence[dict]) -> list[dict]:
  """The ok records of a run with a devices axis (empty when every point ran on one device)."""
  if not any((r.get('n_devices') or 1) > 1 for r in ok):
    return []
  return [r for r in ok if r.get('n_devices') is not None]


def comm_share(rec: dict) -> float | None:
  """Collective time over the traced step's attributed time; None without a trace."""
  ph = rec.get('phase_s')
  if not ph:
    return None
  total = sum(v for v in ph.values() if v)
  return sum(v for k, v in ph.items() if v and k.startswith('comm/')) / total if total else None


def rows(ok: Sequence[dict]) -> list[dict]:
  """One row per (batch_scaling, padding, k, n_devices), with speed-up and efficiency."""
  rs = multi(ok)
  base = {(r.get('batch_scaling'), r['padding'], r['kernel_size'], r.get('model')): r
          for r in rs if r['n_devices'] == 1}
  out = []
  for r in sorted(rs, key=lambda r: (r.get('batch_scaling') or '', r['padding'], r['kernel_size'],
                                     r['n_devices'])):
    b = base.get((r.get('batch_scaling'), r['padding'], r['kernel_size'], r.get('model')))
    ratio = b['step_s_median'] / r['step_s_median'] if b else None
    n = r['n_devices']
    weak = r.get('batch_scaling') == 'weak'
    grad = r.get('grad_bytes')
    out.append({'batch_scaling': r.get('batch_scaling'), 'padding': r['padding'],
                'k': r['kernel_size'], 'n_devices': n, 'n_processes': r.get('n_processes') or 1,
                'global_batch': r.get('global_batch'), 'per_device_batch': r.get('per_device_batch'),
                'step_s': r['step_s_median'],
                'speedup': None if weak or ratio is None else ratio,
                'efficiency': None if ratio is None else (ratio if weak else ratio / n),
                'collective_ops': r.get('collective_ops'),
                'collective_bytes': r.get('collective_bytes'), 'grad_bytes': grad,
                'bytes_over_grad': (r['collective_bytes'] / grad
                                    if grad and r.get('collective_bytes') is not None else None),
                'comm_share': comm_share(r), 'platform': r.get('platform')})
  return out


def _largest(rws: list[dict]) -> list[dict]:
  """Strong-scaling rows (else any) at the largest device count."""
  pool = [r for r in rws if r['batch_scaling'] == 'strong' and r['n_devices'] > 1] or [
      r for r in rws if r['n_devices'] > 1]
  if not pool:
    return []
  n = max(r['n_devices'] for r in pool)
  return [r for r in pool if r['n_devices'] == n]


def summary(ok: Sequence[dict]) -> dict | None:
  """Collective bytes ∝ k^e and comm share against k at the largest device count; None: no axis."""
  rws = rows(ok)
  top = sorted(_largest(rws), key=lambda r: r['k'])
  if not top:
    return None
  ks = [r['k'] for r in top]
  return {'n_devices': top[0]['n_devices'], 'k': ks,
          'collective_bytes': [r['collective_bytes'] for r in top],
          'bytes_fit': fits.power_fit(ks, [r['collective_bytes'] for r in top]),
          'comm_share': [r['comm_share'] for r in top],
          'forced_host_devices': all(r['platform'] == 'cpu' for r in top), 'rows': rws}


def claim(ok: Sequence[dict]) -> list[dict]:
  """The sixth claim's verdict, or [] for a run without a devices axis (no sixth row then).

  Rule: does not hold when the collective bytes grow by at most 5% from the
  smallest to the largest k; holds when they grow and the comm share of the step
  grows too, measured on real devices; partly holds when they grow but the share
  does not, or was measured only on forced host devices (shared cores: their
  times do not carry over); not measured with fewer than two kernel sizes.
  """
  s = summary(ok)
  if s is None:
    return []
  out = {'id': CLAIM_ID, 'claim': CLAIM, 'numbers': {k: v for k, v in s.items() if k != 'rows'}}
  b = [(k, v) for k, v in zip(s['k'], s['collective_bytes']) if v]
  if len(b) < 2:
    return [dict(out, verdict='not measured', evidence='needs collective bytes at two kernel '
                 'sizes on more than one device')]
  (k0, b0), (k1, b1) = b[0], b[-1]
  e = s['bytes_fit'].get('exponent')
  sh = [(k, v) for k, v in zip(s['k'], s['comm_share']) if v is not None]
  ev = (f'on {s["n_devices"]} devices the all-reduced bytes go {b0 / 1e6:.2f} → {b1 / 1e6:.2f} MB '
        f'from k={k0} to k={k1} (×{b1 / b0:.2f}' + (f', ∝ k^{e:.2f}' if e is not None else '')
        + '; they equal the gradient bytes, params × dtype size)')
  if sh:
    ev += f'; comm share of the step {sh[0][1]:.0%} at k={sh[0][0]} → {sh[-1][1]:.0%} at k={sh[-1][0]}'
  if b1 / b0 <= GROWS:
    verdict = 'does not hold'
  elif len(sh) >= 2 and sh[-1][1] > GROWS * sh[0][1] and not s['forced_host_devices']:
    verdict = 'holds'
  else:
    verdict = 'partly holds'
    ev += ('; the shares come from forced host devices sharing the CPU cores, so only the bytes '
           'carry over' if s['forced_host_devices'] else '; the comm share does not grow')
  return [dict(out, verdict=verdict, evidence=ev)]
