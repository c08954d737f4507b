"""Clauses the answer adds about how a run was measured: page faults, other load (records only)."""
from __future__ import annotations

# From this share of the CPU taken by other processes while a point's steps were timed
# (record field other_cpu_share), its step time is reported as possibly inflated.
CONTENDED_SHARE = 0.10

# A step that faulted in at least this share of its scratch buffer's pages was
# paying glibc's mmap-per-block for it (measure.host.configure_malloc).
FAULTED_SHARE = 0.5


def faults_clause(rs) -> str:
  """'' unless the steps re-faulted their scratch buffer every step (malloc=system)."""
  hit = [r for r in rs if r.get('malloc_mode') != 'retain' and r.get('minor_faults_per_step')
         and r.get('temp_bytes')
         and r.get('page_bytes')
         and r['minor_faults_per_step'] * r['page_bytes'] >= FAULTED_SHARE * r['temp_bytes']]
  if not hit:
    return ''
  f = sorted(r['minor_faults_per_step'] for r in hit)
  return (f'; in {len(hit)} of {len(rs)} points each step also page-faulted its XLA scratch buffer '
          f'in again ({f[0]:,.0f}–{f[-1]:,.0f} minor faults per step, a cost that barely grows '
          'with k), which config.malloc=retain removes')


def load_clause(rs) -> str:
  """'' unless other processes took a share of the CPU while some of these points were timed."""
  hit = [r['other_cpu_share'] for r in rs
         if (r.get('other_cpu_share') or 0) >= CONTENDED_SHARE]
  if not hit:
    return ''
  share = (f'{min(hit):.0%}' if f'{min(hit):.0%}' == f'{max(hit):.0%}'
           else f'{min(hit):.0%}–{max(hit):.0%}')
  which = ('this point was' if len(rs) == 1 else
           f'{len(hit)} of these {len(rs)} points {"was" if len(hit) == 1 else "were"}')
  whose = ('its step time' if len(rs) == 1 else 'that step time' if len(hit) == 1
           else 'their step times')
  return (f'; but other processes took {share} of the CPU while {which} timed, so '
          f'{whose} may be inflated (rerun on a quiet machine)')
