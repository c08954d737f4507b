"""Where batches come from: synthetic (offline default) or TFDS, the host pipeline, offline preparation."""
