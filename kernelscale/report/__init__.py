"""What a person reads: the plain answer, report.md, results.md, plots, terminal lines. No jax."""
