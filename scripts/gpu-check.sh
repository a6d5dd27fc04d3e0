#!/bin/bash
# The GPU session of docs/performance.md and docs/default-weights.md, as one script, run from
# the repository root on the GPU machine after scripts/gpu-prepare.sh here:
#
#   OUT=gpu-out BUDGET=540 scripts/gpu-check.sh
#
# 1. the official PromptIR training step in PyTorch on the card, batch 16/32/64/128 (128² crops);
# 2. the default-weights campaign (examples/campaign) on wgpu, on every GPU of the machine
#    (several: data-parallel, docs/scaling.md; one: the same code with one shard): its
#    held-out evaluation of the
#    current weights first (the CPU's scores are in weights/campaign.json: a check that the
#    wgpu path computes what flex computes), then a probe of the training rate at batch
#    16/32/64/128 on the real data, then a stretch at the fastest batch for the time left,
#    evaluated, and the weights replaced only if they restore better. The new
#    weights/default.bpk and weights/campaign.json are copied to $OUT for committing, and the
#    stretch's branch.bpk for runs/campaign/ (docs/default-weights.md).
#
# BUDGET is the wall time, in seconds, the whole script may take.
set -u
OUT=${OUT:-gpu-out}
BUDGET=${BUDGET:-540}
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
chmod +x "$BIN"/campaign
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc

log "1. official PromptIR training step in PyTorch on the card"
timeout 150 python3 scripts/torch_train_step.py cuda 16 32 64 128 2>&1 | tail -5

left=$((BUDGET - $(elapsed) - 30))
gpus=$(nvidia-smi -L | grep -c '^GPU')
devices=$(seq -s, -f 'wgpu:%g' 0 $((gpus > 0 ? gpus - 1 : 0)))
[ "$gpus" -le 1 ] && devices=wgpu
log "2. campaign on $devices: evaluation, probe of batch 16/32/64/128, stretch ($left s in all)"
cp weights/campaign.json "$OUT/campaign-before.json"
timeout $((left + 20)) "$BIN/campaign" --device "$devices" --data .gpu/data/default \
    --runs /tmp/campaign --minutes $(awk -v s="$left" 'BEGIN { printf "%.1f", (s - 200) / 60 }') \
    --probe 16,32,64,128 --probe-seconds 40
log "campaign exit status $?"
cp weights/default.bpk weights/campaign.json "$OUT/"
# the stretch's branch, which the next stretch continues (docs/default-weights.md): copy it
# to runs/campaign/branch.bpk on the build machine
[ -f /tmp/campaign/branch.bpk ] && cp /tmp/campaign/branch.bpk "$OUT/"
for f in /tmp/campaign/stretch-*/train.csv /tmp/campaign/stretch-*/val.csv; do
    [ -f "$f" ] && cp "$f" "$OUT/"
done
log "done"
