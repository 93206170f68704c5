#!/usr/bin/env bash
# Checks the GPU path on a machine with an NVIDIA GPU: the demo's VAE parity test on CUDA under
# bwrap and under docker, one line per step. Needs this package installed (pip install -e
# '.[example]' with a CUDA build of torch for bwrap), bubblewrap, and docker with the NVIDIA
# container toolkit and a CUDA image (IMAGE=..., default FastVideo's dev image).
# Usage: bash scripts/gpu-check.sh [workdir]
set -uo pipefail
IMAGE="${IMAGE:-ghcr.io/hao-ai-lab/fastvideo/fastvideo-dev:py3.12-latest}"
WORK="${1:-$(mktemp -d)}"
failed=0
step() {  # step NAME COMMAND...: run it, print one line, keep its output in $WORK/NAME.log
  local name="$1"; shift
  if "$@" >"$WORK/$name.log" 2>&1; then echo "ok    $name"; else echo "FAIL  $name (see $WORK/$name.log)"; failed=1; fi
}

step nvidia-smi nvidia-smi -L
step torch-cuda python -c 'import torch; assert torch.cuda.is_available(), "torch sees no CUDA device"; print(torch.cuda.get_device_name(0))'
step example harness demo --init "$WORK/tinyvid"
PACKET="$WORK/tinyvid/packets/vae.parity-debug.json"
REPO="$WORK/tinyvid/fastvideo"
step doctor-bwrap harness doctor --packet "$PACKET" --repo "$REPO" --sandbox bwrap --gpus all
step demo-bwrap-cuda harness demo --sandbox bwrap --gpus all
step docker-gpu docker run --rm --gpus all "$IMAGE" nvidia-smi -L
step doctor-docker harness doctor --packet "$PACKET" --repo "$REPO" --sandbox docker --image "$IMAGE" --gpus all
step demo-docker-cuda harness demo --sandbox docker --image "$IMAGE" --gpus all
if [ "$failed" = 0 ]; then echo "GPU path: ok"; else echo "GPU path: failed steps above (logs in $WORK)"; fi
exit "$failed"
