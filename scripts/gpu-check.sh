#!/bin/bash
# The GPU session of docs/performance.md and docs/default-weights.md, as one script: checks
# that the wgpu backend computes the CPU's outputs (flex's, which match the official code),
# times the
# forward pass against the official PyTorch PromptIR on the same card, then trains the
# default weights with the time that is left.
#
# Prepared on a build machine with scripts/gpu-prepare.sh (binaries built with
# `--features wgpu`, the training photographs, the official model file for the PyTorch
# timing), then run from the repository root on the GPU machine:
#
#   OUT=gpu-out BUDGET=560 scripts/gpu-check.sh
#
# BUDGET is the wall time, in seconds, the whole script may take; the training run gets what
# the checks leave, minus a margin, and its step count is derived from a short probe run.
set -u
OUT=${OUT:-gpu-out}
BUDGET=${BUDGET:-560}
BIN=${BIN:-.gpu/bin}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu.log") 2>&1
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
log() { echo "[$(elapsed) s] $*"; }

# The Vulkan loader (the image has the NVIDIA driver and its ICD file, not always the loader).
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f $icd ] && export VK_DRIVER_FILES=$icd
python3 -c 'import lzma, sys
for f in sys.argv[1:]:
    open(f[:-3], "wb").write(lzma.open(f).read())' "$BIN"/*.xz
chmod +x "$BIN"/train "$BIN"/forward
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc

log "1+2. wgpu vs flex (same weights and input), then forward timings on wgpu"
for preset in promptir dppd; do
    timeout 150 "$BIN/forward" --check --backend wgpu --preset $preset --size 256 --size 512 --runs 5 2>&1 |
        grep -v XDG_RUNTIME | tail -4
done
timeout 90 "$BIN/forward" --check --backend wgpu --preset dppd-small --size 512 --size 1024 --runs 5 2>&1 |
    grep -v XDG_RUNTIME | tail -4

log "3. forward timings: official PromptIR in PyTorch on the same card"
timeout 120 python3 scripts/torch_forward.py cuda 256 512 2>&1 | tail -4

log "4. default weights: probe the training speed"
# An array, not a shell function: `timeout` runs programs, not functions.
train=("$BIN/train" --config configs/default.json --data .gpu/data/default --device wgpu)
timeout 120 "${train[@]}" --out /tmp/probe --steps 40 > /tmp/probe.log 2>&1
tail -2 /tmp/probe.log
rate=$(grep -o 'done: step [0-9]*, [0-9.]* images/s' /tmp/probe.log | awk '{print $4}')
left=$((BUDGET - $(elapsed) - 45))
steps=$(awk -v r="${rate:-0}" -v t=$left 'BEGIN { s = int(r * t * 0.85 / 16 / 100) * 100; print (s < 100 ? 0 : s) }')
log "probe: ${rate:-?} images/s; $left s left; training $steps steps of 16"
if [ "$steps" -gt 0 ]; then
    timeout $((left + 20)) "${train[@]}" --out /tmp/run --steps "$steps" > /tmp/train.log 2>&1
    log "training exit status $?"
    grep -E "step [0-9]*00/|done|error|\|" /tmp/train.log | tail -30
    cp /tmp/train.log "$OUT/train.log"
    for f in final.bpk best.bpk train.csv val.csv curves.png; do
        [ -f /tmp/run/$f ] && cp /tmp/run/$f "$OUT/"
    done
    # Killed before the end: bring the newest checkpoint back, to finish with --resume.
    if [ ! -f /tmp/run/final.bpk ]; then
        last=$(ls -t /tmp/run/checkpoints/* 2>/dev/null | head -1)
        [ -n "$last" ] && cp "$last" "$OUT/"
    fi
fi
log "done"
