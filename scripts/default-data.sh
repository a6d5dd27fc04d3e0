#!/bin/sh
# Builds the photo folder the built-in default weights are trained and evaluated on (see
# docs/default-weights.md): the repository's photographs plus real photographs that Debian
# packages install (used, never redistributed; each package's licence is in its
# /usr/share/doc/PACKAGE/copyright):
#
#   mate-backgrounds             GPL-2+           nature photographs, one abstract photograph
#   lomiri-wallpapers-16.04      CC-BY(-SA)-4.0, CC0 (per file)   Ubuntu Touch photographs
#   lomiri-wallpapers-20.04      CC-BY(-SA)-4.0 (per file)        two more photographs
#   plasma-workspace-wallpapers  GPL-2+           KDE's photographic wallpapers
#   opencv-doc                   OpenCV's sample images (mixed provenance): textures, faces,
#                                text, objects, buildings
#
# Illustrations and renders (ukui-wallpapers, gnome-backgrounds, the abstract and desktop
# wallpapers of these packages) are left out: no camera noise model fits them, and a
# restoration model should learn from photographs.
#
# Eight photographs go to `zz-heldout/`, which sorts last, so that `"val_holdout": 8` in
# configs/campaign.json keeps exactly them out of training; the README's results table is
# measured on them. They never enter `train/`.
#
#   sudo apt-get install mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 \
#       plasma-workspace-wallpapers opencv-doc
#   scripts/default-data.sh [OUT]            # OUT defaults to data/default
set -eu
bg=${BACKGROUNDS:-/usr/share/backgrounds}
wp=${WALLPAPERS:-/usr/share/wallpapers}
cv=${OPENCV_DATA:-/usr/share/doc/opencv-doc/examples/data}
out=${1:-data/default}

missing=""
[ -d "$bg/mate/nature" ] || missing="$missing mate-backgrounds"
[ -f "$bg/Bridge_by_Sander_Klootwijk.jpg" ] || missing="$missing lomiri-wallpapers-16.04"
[ -f "$bg/Kleiber_by_Lukas_Baubkus.jpg" ] || missing="$missing lomiri-wallpapers-20.04"
[ -d "$wp/EveningGlow" ] || missing="$missing plasma-workspace-wallpapers"
[ -f "$cv/baboon.jpg" ] || missing="$missing opencv-doc"
if [ -n "$missing" ]; then
    echo "error: missing photographs; install the Debian packages:$missing" >&2
    echo "       sudo apt-get install$missing" >&2
    exit 1
fi

# Build into a temporary sibling, then swap it in: an interrupted run leaves the old folder.
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/train" "$tmp/zz-heldout"
trap 'rm -rf "$tmp"' EXIT

# The held-out photographs (never trained on).
for f in chelsea.png coffee.png motorcycle_left.png motorcycle_left_depth.png; do
    cp "assets/photos/$f" "$tmp/zz-heldout/"
done
cp "$bg/mate/nature/Garden.jpg" "$tmp/zz-heldout/mate-Garden.jpg"
cp "$bg/mate/nature/LadyBird.jpg" "$tmp/zz-heldout/mate-LadyBird.jpg"
cp "$bg/Wine_by_Jakkub_Mede.jpg" "$tmp/zz-heldout/lomiri-Wine.jpg"
cp "$bg/picosdeeuropa_by_Aitzol_Berasategi.jpg" "$tmp/zz-heldout/lomiri-picosdeeuropa.jpg"
cp "$wp/EveningGlow/contents/images/2560x1600.jpg" "$tmp/zz-heldout/plasma-EveningGlow.jpg"

# Training photographs.
for f in astronaut.png camera.png coins.png grace_hopper.jpg; do
    cp "assets/photos/$f" "$tmp/train/"
done
for f in "$bg"/mate/nature/*.jpg "$bg/mate/abstract/Elephants.jpg"; do
    name=$(basename "$f")
    case "$name" in
        Garden.jpg | LadyBird.jpg) ;;
        *) cp "$f" "$tmp/train/mate-$name" ;;
    esac
done
for name in Bridge_by_Sander_Klootwijk Dragonfly_by_Bolly Picture_0B_by_freespace \
    Picture_1A_by_freespace aitzgorri_by_Aitzol_Berasategi free_by_Peter_Nerlich \
    friends_by_Aitzol_Berasategi greentock_by_Peter_Nerlich life_by_Aitzol_Berasategi \
    seeding_by_Clements_Engelhardt sunset_by_Aitzol_Berasategi Kleiber_by_Lukas_Baubkus \
    Infinite-Sea_by_Aury88; do
    cp "$bg/$name.jpg" "$tmp/train/lomiri-${name%%_by_*}.jpg"
done
for name in BytheWater ColdRipple ColorfulCups DarkestHour FallenLeaf Grey Kite OneStandsOut \
    Path summer_1am; do
    cp "$wp/$name/contents/images/2560x1600.jpg" "$tmp/train/plasma-$name.jpg"
done
for f in aero3.jpg aloeL.jpg apple.jpg baboon.jpg board.jpg box_in_scene.png building.jpg \
    butterfly.jpg chicky_512.png ela_original.jpg fruits.jpg graf1.png home.jpg \
    imageTextN.png leuvenA.jpg left.jpg messi5.jpg orange.jpg rubberwhale1.png smarties.png \
    squirrel_cls.jpg stuff.jpg sudoku.png; do
    cp "$cv/$f" "$tmp/train/opencv-$f"
done

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$tmp" "$out"
trap - EXIT
echo "$out: $(ls "$out/train" | wc -l) training and $(ls "$out/zz-heldout" | grep -vc _depth) held-out photographs"
