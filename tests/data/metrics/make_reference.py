"""Writes the metric test pairs and the scores scikit-image computes for them.

Run from the repository root with scikit-image installed (outside the repository):
    python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install scikit-image
    /tmp/skvenv/bin/python tests/data/metrics/make_reference.py
"""
import json
import numpy as np
import imageio.v3 as iio
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from scipy.ndimage import gaussian_filter

out = "tests/data/metrics/"
rng = np.random.default_rng(5)

def rgb(path):
    im = iio.imread(path)
    if im.ndim == 2:
        im = np.stack([im] * 3, -1)
    return im[..., :3]

def crop_img(image, base=64):
    """PromptIR's utils/image_utils.py crop_img."""
    h, w = image.shape[0], image.shape[1]
    crop_h, crop_w = h % base, w % base
    return image[crop_h // 2:h - crop_h + crop_h // 2, crop_w // 2:w - crop_w + crop_w // 2, :]

pairs = []
# (name, source, crop y, crop x, h, w, degradation)
specs = [
    ("astronaut_noise", "assets/photos/astronaut.png", 60, 180, 48, 64, "noise25"),
    ("chelsea_blur", "assets/photos/chelsea.png", 100, 150, 40, 56, "blur"),
    ("coffee_haze", "assets/photos/coffee.png", 50, 300, 33, 47, "haze"),
    ("camera_noise50", "assets/photos/camera.png", 200, 220, 32, 32, "noise50"),
]
for name, src, y, x, h, w, kind in specs:
    clean = rgb(src)[y:y + h, x:x + w].astype(np.float64)
    if kind.startswith("noise"):
        sigma = float(kind[5:])
        deg = clean + rng.normal(0, sigma, clean.shape)
    elif kind == "blur":
        deg = np.stack([gaussian_filter(clean[..., c], 1.5) for c in range(3)], -1)
    else:
        deg = clean * 0.6 + 0.4 * 230.0
    deg = np.clip(np.round(deg), 0, 255).astype(np.uint8)
    clean = clean.astype(np.uint8)
    iio.imwrite(out + name + "_clean.png", clean)
    iio.imwrite(out + name + "_degraded.png", deg)
    a = iio.imread(out + name + "_clean.png").astype(np.float64) / 255.0
    b = iio.imread(out + name + "_degraded.png").astype(np.float64) / 255.0
    pairs.append({
        "name": name,
        "clean": name + "_clean.png",
        "degraded": name + "_degraded.png",
        "psnr": peak_signal_noise_ratio(a, b, data_range=1),
        "ssim": structural_similarity(a, b, data_range=1, channel_axis=-1),
        # PromptIR's evaluation: both images centre-cropped to a multiple of 16 first
        "psnr_crop16": peak_signal_noise_ratio(crop_img(a, 16), crop_img(b, 16), data_range=1),
        "ssim_crop16": structural_similarity(crop_img(a, 16), crop_img(b, 16), data_range=1,
                                             channel_axis=-1),
    })

import skimage
json.dump({"skimage": skimage.__version__, "numpy": np.__version__, "pairs": pairs},
          open(out + "reference.json", "w"), indent=1)
print(json.dumps(pairs, indent=1))
