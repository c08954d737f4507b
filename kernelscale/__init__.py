"""kernelscale: measure why CNN train-step time grows with the conv kernel size."""
