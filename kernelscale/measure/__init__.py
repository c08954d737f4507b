"""The only stage that runs jax: host setup, the sweep, timing, traces, HLO reading, ceilings, training."""
