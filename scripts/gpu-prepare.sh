#!/bin/bash
# Prepares .gpu/ for scripts/gpu-check.sh on the build machine: the campaign example built with
# the wgpu backend (the GPU machine has no Rust toolchain and no network), stripped and
# compressed; the training and held-out photographs (scripts/default-data.sh, which needs the
# Debian packages it names); and the official PromptIR model file for the PyTorch timing,
# which must be put at .gpu/promptir_model.py by hand (net/model.py of
# https://github.com/va1shn9v/PromptIR). .gpu/ is ignored by git.
#
# What travels to the GPU machine is limited to 64 MiB of ignored files: the campaign binary
# (~17 MB compressed) and the photographs (~45 MB) fit; nothing else should be added.
set -eu
cargo build --release --features wgpu --example campaign
rm -rf .gpu/bin && mkdir -p .gpu/bin
cp target/release/examples/campaign .gpu/bin/campaign
strip .gpu/bin/*
xz -T2 -6 .gpu/bin/*
scripts/default-data.sh .gpu/data/default
if [ ! -f .gpu/promptir_model.py ]; then
    echo "warning: .gpu/promptir_model.py is missing: the PyTorch timing will fail" >&2
fi
du -sh .gpu .gpu/* .gl 2>/dev/null
