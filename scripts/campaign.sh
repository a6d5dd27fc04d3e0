#!/bin/sh
# One stretch of the default-weights campaign on this machine's CPU (docs/default-weights.md):
# trains the built-in weights further for at most MINUTES at the lowest priority, evaluates
# them on the held-out photographs, and commits weights/default.bpk and weights/campaign.json
# when they restore better. Run from the repository root, after scripts/default-data.sh.
#
#   scripts/campaign.sh MINUTES [extra arguments of the campaign example]
set -eu
minutes=${1:?usage: scripts/campaign.sh MINUTES [campaign options]}
shift
if [ ! -d data/default/zz-heldout ]; then
    echo "error: data/default not found: run scripts/default-data.sh first" >&2
    exit 1
fi
cargo build --release --example campaign
before=$(git hash-object weights/default.bpk)
mkdir -p runs
log=runs/campaign-$(date -u +%Y%m%dT%H%M%S).log
nice -n 19 target/release/examples/campaign --minutes "$minutes" "$@" 2>&1 | tee "$log"
if [ "$(git hash-object weights/default.bpk)" != "$before" ]; then
    git add weights/default.bpk weights/campaign.json
    git commit -m "Default weights: campaign stretch accepted ($(tail -1 "$log" | tr -d '\r' | cut -c1-150))"
else
    git add weights/campaign.json
    git commit -m "Campaign state: stretch not accepted (the weights in use restore better)" || true
fi
