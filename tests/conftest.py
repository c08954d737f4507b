"""Test setup: CPU only, offline. The package is installed (-e .), so nothing touches sys.path."""
import os

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
