# Scores the classical methods a user would otherwise pick on exactly the degraded images that
# `evaluate --save-inputs` wrote, for the README's results table (docs/default-weights.md):
#
#   - BM3D (PyPI `bm3d`, colour: bm3d_rgb), blind: sigma estimated by
#     skimage.restoration.estimate_sigma (averaged over the channels), as the network is blind;
#   - non-local means (scikit-image, fast mode, h = 0.8 * sigma_hat, 5x5 patches, distance 6);
#   - total variation (scikit-image, Chambolle, weight = sigma_hat);
#   - the dark channel prior (He et al. 2009) for haze: 15x15 dark channel, atmospheric light
#     from the brightest 0.1% of it, omega = 0.95, transmission refined by a guided filter
#     (radius min(H, W) / 20, eps = 1e-3, on the grey image), t >= 0.1.
#
# PSNR and SSIM are scikit-image's (data_range 1, SSIM on RGB with channel_axis), which the
# crate's metrics reproduce. Run outside the repository's build, with the PyPI packages
# installed (numpy, scipy, scikit-image, bm3d):
#
#   python3 scripts/classical_baselines.py runs/eval [TASK ...]   # -> runs/eval/classical.csv
#
# Rows are appended to classical.csv as they are computed, and (task, method, image) rows already
# there are not computed again: an interrupted run continues where it stopped. METHODS=nlm,tv
# (environment) limits the methods run (bm3d, nlm, tv, dcp).
import csv
import os
import sys
import time

import numpy as np
from scipy.ndimage import minimum_filter, uniform_filter
from skimage.io import imread
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, estimate_sigma

NOISE = ["denoise_10", "denoise_15", "denoise_25", "denoise_35", "denoise_50", "denoise_blind", "clean"]


def load(path):
    raw = imread(path)
    x = raw.astype(np.float64) / float(np.iinfo(raw.dtype).max)
    if x.ndim == 2:
        x = np.stack([x] * 3, axis=-1)
    return x[..., :3]


def sigma_hat(x):
    return float(estimate_sigma(x, channel_axis=-1, average_sigmas=True))


def bm3d_blind(x):
    import bm3d

    s = max(sigma_hat(x), 1e-3)
    return np.clip(bm3d.bm3d_rgb(x, s), 0, 1)


def nlm(x):
    s = sigma_hat(x)
    return denoise_nl_means(x, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5,
                            patch_distance=6, channel_axis=-1)


def tv(x):
    return denoise_tv_chambolle(x, weight=sigma_hat(x), channel_axis=-1)


def guided_filter(guide, src, r, eps):
    size = 2 * r + 1
    mean_i = uniform_filter(guide, size)
    mean_p = uniform_filter(src, size)
    cov_ip = uniform_filter(guide * src, size) - mean_i * mean_p
    var_i = uniform_filter(guide * guide, size) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return uniform_filter(a, size) * guide + uniform_filter(b, size)


def dark_channel_prior(x, patch=15, omega=0.95, t0=0.1):
    dark = minimum_filter(x.min(axis=2), size=patch)
    n = max(1, int(dark.size * 0.001))
    idx = np.argsort(dark.ravel())[-n:]
    a = x.reshape(-1, 3)[idx].max(axis=0)
    t = 1 - omega * minimum_filter((x / a).min(axis=2), size=patch)
    grey = x @ np.array([0.299, 0.587, 0.114])
    r = max(1, min(x.shape[:2]) // 20)
    t = np.clip(guided_filter(grey, t, r, 1e-3), t0, 1)
    return np.clip((x - a) / t[..., None] + a, 0, 1)


def main():
    root = sys.argv[1]
    tasks = sys.argv[2:] or NOISE + ["dehaze"]
    only = set(filter(None, os.environ.get("METHODS", "").split(",")))
    out = os.path.join(root, "classical.csv")
    rows = []
    if os.path.exists(out):
        with open(out, newline="") as f:
            r = csv.reader(f)
            next(r, None)
            rows = [(t, m, n, float(p), float(q), float(sec)) for t, m, n, p, q, sec in r]
    done = {(r[0], r[1], r[2]) for r in rows}
    fresh = not os.path.exists(out)
    with open(out, "a", newline="") as f:
        w = csv.writer(f)
        if fresh:
            w.writerow(["task", "method", "image", "psnr", "ssim", "seconds"])
        for task in tasks:
            methods = {"dehaze": {"dcp": dark_channel_prior}}.get(
                task, {"bm3d": bm3d_blind, "nlm": nlm, "tv": tv})
            methods = {k: v for k, v in methods.items() if not only or k in only}
            folder = os.path.join(root, "inputs", task)
            for name in sorted(os.listdir(folder)):
                todo = {k: v for k, v in methods.items() if (task, k, name) not in done}
                if not todo:
                    continue
                x = load(os.path.join(folder, name))
                clean = load(os.path.join(root, "clean", task, name))
                for method, fn in todo.items():
                    t0 = time.time()
                    y = fn(x)
                    psnr = peak_signal_noise_ratio(clean, y, data_range=1.0)
                    ssim = structural_similarity(clean, y, data_range=1.0, channel_axis=-1)
                    row = (task, method, name, psnr, ssim, time.time() - t0)
                    rows.append(row)
                    w.writerow(row)
                    f.flush()
                    print(f"{task} {method} {name}: {psnr:.2f} dB / {ssim:.4f} "
                          f"({time.time() - t0:.1f} s)", flush=True)
    print("| task | method | images | PSNR | SSIM |")
    print("|---|---|---|---|---|")
    keys = sorted({(r[0], r[1]) for r in rows if r[0] in tasks},
                  key=lambda k: (tasks.index(k[0]), k[1]))
    for task, method in keys:
        sel = [r for r in rows if r[0] == task and r[1] == method]
        print(f"| {task} | {method} | {len(sel)} | {np.mean([r[3] for r in sel]):.2f} | "
              f"{np.mean([r[4] for r in sel]):.4f} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
