#!/bin/bash
# Prepares .gpu/ for scripts/gpu-check.sh on the build machine: release binaries (the
# training example and the forward benchmark) with the wgpu backend (the GPU machine has no Rust toolchain and no network), stripped and
# compressed; the training photographs (scripts/default-data.sh); and the official PromptIR
# model file for the PyTorch timing, which must be put at .gpu/promptir_model.py by hand
# (net/model.py of https://github.com/va1shn9v/PromptIR). .gpu/ must be ignored by git:
#   echo /.gpu/ >> .git/info/exclude
set -eu
cargo build --release --features wgpu --example train --bench forward
rm -rf .gpu/bin && mkdir -p .gpu/bin
newest() { ls -t $1 | grep -v '\.d$' | head -1; }
cp target/release/examples/train .gpu/bin/train
cp "$(newest 'target/release/deps/forward-*')" .gpu/bin/forward
strip .gpu/bin/*
# ~100 MB each stripped, ~17 MB with xz: what travels to the GPU machine is limited.
xz -T2 -6 .gpu/bin/*
scripts/default-data.sh .gpu/data/default
if [ ! -f .gpu/promptir_model.py ]; then
    echo "warning: .gpu/promptir_model.py is missing: the PyTorch timing will fail" >&2
fi
du -sh .gpu .gl 2>/dev/null
