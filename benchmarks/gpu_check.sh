#!/usr/bin/env bash
# One prepared GPU check, expected to take under 5 minutes on one GPU (each step's
# timeout is a cap, 11 minutes in all): the default sweep, the PyTorch peer
# benchmark, the ceiling benchmark and the devices experiment. Prints where results went. Not yet run on
# a GPU. On a GPU, jax's default matmul precision may use TF32, so the ceiling
# and the torch row's fraction of it are looser than on CPU.
#
#   bash benchmarks/gpu_check.sh            # needs jax with CUDA (and torch with CUDA for the peer)
#   PYTHON=/path/to/python OUT_DIR=runs/gpu bash benchmarks/gpu_check.sh
#
# jax for CUDA: pip install "jax[cuda12]==0.10.2" (the pinned jax, CUDA plugin added).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT_DIR:-runs/gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
status=0

$PY - <<'PY' || { echo "gpu_check: jax sees no GPU; install jax[cuda12]==0.10.2" >&2; exit 2; }
import jax
d = jax.devices()[0]
print('device:', d.platform, d.device_kind, 'jax', jax.__version__)
assert d.platform == 'gpu'
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== default sweep (seed, SAME+VALID, k=3..9, batch 128)"
timeout 180 $PY run.py --workdir="$OUT_DIR/sweep" 2>&1 | tee "$OUT_DIR/sweep.log" || status=1

echo "== same sweep at precision=highest (full float32, no TF32)"
timeout 120 $PY run.py --config.precision=highest --config.paddings=SAME \
  --config.profile=False --workdir="$OUT_DIR/sweep-highest" 2>&1 | tail -8 || status=1

echo "== peer: PyTorch eager on the same GPU"
timeout 90 $PY benchmarks/peer_torch.py --device=cuda 2>&1 | tee "$OUT_DIR/peer.log" || status=1

echo "== ceiling: achieved train-step FLOP/s over measured matmul FLOP/s"
timeout 120 $PY benchmarks/step_vs_ceiling.py 2>&1 | tee "$OUT_DIR/ceiling.log" || status=1

echo "== devices: data parallel on the GPUs there are (1 GPU: devices=1, bytes 0; see the report)"
NGPU=$($PY -c 'import jax; print(jax.device_count())' 2>/dev/null || echo 1)
DEVS=$(for n in 1 2 4 8; do [ "$n" -le "$NGPU" ] && printf '%s,' "$n"; done); DEVS=${DEVS%,}
timeout 150 $PY run.py --config=experiments/devices.py --config.devices="$DEVS" \
  --workdir="$OUT_DIR/devices" 2>&1 | tail -12 || status=1

echo "gpu_check: outputs in $OUT_DIR (exit $status)"
exit $status
