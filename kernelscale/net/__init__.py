"""The network: flax models, their jax-free shapes, conv algorithms, analytic FLOPs, the train step."""
