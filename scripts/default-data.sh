#!/bin/sh
# Builds the photo folder the built-in default weights were trained on (see
# docs/default-weights.md): the repository's photographs plus the MATE desktop's nature
# photographs, which the Debian package `mate-backgrounds` installs (GPL-2+; they are used,
# not redistributed). Five photographs go to `zz-heldout/`, which sorts last, so that
# `"val_holdout": 5` in configs/default.json keeps exactly them out of training; the README's
# results table is measured on them.
#
#   sudo apt-get install mate-backgrounds    # Debian/Ubuntu
#   scripts/default-data.sh [OUT]            # OUT defaults to data/default
set -eu
mate=${MATE_BACKGROUNDS:-/usr/share/backgrounds/mate}
out=${1:-data/default}
if [ ! -d "$mate/nature" ]; then
    echo "error: $mate/nature not found; install the Debian package mate-backgrounds" >&2
    echo "       (or set MATE_BACKGROUNDS to a folder holding its nature/ and abstract/)" >&2
    exit 1
fi
rm -rf "$out"
mkdir -p "$out/train" "$out/zz-heldout"
for f in astronaut.png camera.png coins.png grace_hopper.jpg; do
    cp "assets/photos/$f" "$out/train/"
done
for f in chelsea.png coffee.png motorcycle_left.png motorcycle_left_depth.png; do
    cp "assets/photos/$f" "$out/zz-heldout/"
done
for f in "$mate"/nature/*.jpg "$mate/abstract/Elephants.jpg"; do
    name=$(basename "$f")
    case "$name" in
        Garden.jpg | LadyBird.jpg) cp "$f" "$out/zz-heldout/mate-$name" ;;
        *) cp "$f" "$out/train/mate-$name" ;;
    esac
done
echo "$out: $(ls "$out/train" | wc -l) training and $(ls "$out/zz-heldout" | grep -vc _depth) held-out photographs"
