"""Numbers from results.jsonl alone: fits, predictions, claim verdicts, delta attribution. No jax."""
