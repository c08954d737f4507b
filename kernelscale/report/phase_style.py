"""What the plots share: one colour per phase group, the grouping of small phases, the loop symbol.

phases.png and delta_attribution.png both colour a phase from `COLORS`, so
"conv backward-input" is the same orange in both; `fold` keeps a legend short
by merging the smallest groups into "other". `LOOP` is the one symbol every
plot draws around a point whose convolution XLA:CPU ran as its own
unoptimized loop (records.unoptimized_convs).
"""
from __future__ import annotations

from typing import Sequence

# Phase keys (profiling's phase_s: "layer/phase") -> the groups the plots draw, in order.
GROUPS = (
    ('conv forward', lambda k: k.startswith('conv') and k.endswith('/forward')),
    ('conv backward-input', lambda k: k.startswith('conv') and k.endswith('/backward_input')),
    ('conv backward-filter', lambda k: k.startswith('conv') and k.endswith('/backward_filter')),
    ('conv backward (input and filter not told apart)',
     lambda k: k.startswith('conv') and k.endswith('/backward')),
    ('dense', lambda k: k.startswith('dense')),
    ('pooling', lambda k: k.startswith('pooling')),
    ('activation', lambda k: k.startswith('activation')),
    ('loss', lambda k: k.startswith('loss')),
    ('optimizer', lambda k: k.startswith('optimizer')),
)
OTHER = 'other'
UNATTRIBUTED = 'unattributed'
# tab10's hues, fixed per group (colour-blind-safe enough to tell 8 apart); grey for the rest.
COLORS = {
    'conv forward': '#1f77b4', 'conv backward-input': '#ff7f0e', 'conv backward-filter': '#2ca02c',
    'conv backward (input and filter not told apart)': '#bcbd22', 'dense': '#8c564b',
    'pooling': '#9467bd', 'activation': '#e377c2', 'loss': '#17becf', 'optimizer': '#d62728',
    OTHER: '#7f7f7f', UNATTRIBUTED: '#d9d9d9',
}
# The unoptimized-loop symbol: a red ring drawn around the point (or bar end).
LOOP = {'marker': 'o', 'markersize': 15, 'markerfacecolor': 'none', 'markeredgecolor': '#d62728',
        'markeredgewidth': 1.8, 'linestyle': 'none'}
LOOP_LABEL = "ran a conv as XLA's unoptimized loop"


def group_of(key: str) -> str:
  """The plot group of one phase key, e.g. 'conv2/backward_input' -> 'conv backward-input'."""
  return next((name for name, match in GROUPS if match(key)), OTHER)


def fold(totals: dict[str, float], limit: int) -> tuple[list[str], dict[str, str]]:
  """Keeps the `limit` largest groups and folds the rest into 'other'.

  Args:
    totals: {group: total size (e.g. summed |ms|)}; zero groups are dropped.
    limit: how many groups besides 'other' may keep their own legend entry.

  Returns:
    (groups to draw in GROUPS order, then 'other' if any; {group: group drawn as}).
  """
  order = [n for n, _ in GROUPS]
  live = [g for g in order if totals.get(g, 0.0) > 0]
  keep = set(sorted(live, key=lambda g: -totals[g])[:limit]) if len(live) > limit else set(live)
  where = {g: (g if g in keep else OTHER) for g in order}
  where[OTHER] = OTHER
  drawn = [g for g in order if g in keep]
  if any(where[g] == OTHER for g in live) or totals.get(OTHER, 0.0) > 0:
    drawn.append(OTHER)
  return drawn, where


def other_label(where: dict[str, str], live: Sequence[str]) -> str:
  """'other' or 'other (dense, loss, optimizer)': what the grey bar holds."""
  folded = [g for g in live if g != OTHER and where.get(g) == OTHER]
  return f'{OTHER} ({", ".join(folded)})' if folded else OTHER
