"""How well `ganforge project` reproduces real photos, by setting: the feature loss (EfficientNet-Lite0's ImageNet
features, the default with ganforge[projected], or the fixed random-conv ones that were the old projector), its
weight beside pixel MSE, and pivotal tuning after the projection (`project --tune`). Every setting sees the same
images, steps and starts. Scored by PSNR (pixels), by the distance between target and projection in Lite0's
features (the loss's own network: mean squared difference of its normalised taps, as the loss weighs them) and in
a network no loss uses (Inception's pool features, cosine distance). Writes a figure of target | setting... rows.
Usage:
    python benchmarks/projector.py RUN FACES_DIR --count 4 --steps 200 --figure projector.png
    python benchmarks/projector.py RUN FACES_DIR --settings random-conv:1,lite0:1,lite0:1:100 --figure tuning.png
--settings lists FEATURES:WEIGHT[:TUNE] (the feature loss, its weight beside pixel MSE, and the steps of pivotal
tuning after the projection); default both feature losses at weight 1, untuned.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from ganforge.explore.project import feature_network, load_target, project
from ganforge.images import make_grid, save_png
from ganforge.metrics.features import load_extractor

SETTINGS = "random-conv:1,lite0:1"
Setting = tuple[str, float, int]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("faces", type=Path, help="folder of photos; the last --count in name order are used")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--starts", type=int, default=64)
    parser.add_argument("--figure", type=Path, required=True)
    parser.add_argument("--figure-rows", type=int, default=6, help="photos shown in the figure")
    parser.add_argument("--settings", default=SETTINGS, help="FEATURES:WEIGHT[:TUNE], comma-separated")
    args = parser.parse_args()
    settings = [_setting(text) for text in args.settings.split(",")]
    # Tuned settings run first: a projection with --tune also reports its pivot, the same projection untuned.
    order = sorted(settings, key=lambda setting: -setting[2])
    photos = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in {".jpg", ".png"})[-args.count:]
    inception = load_extractor("inception")
    lite0 = feature_network("lite0", 3, torch.device("cpu"))
    rows: list[torch.Tensor] = []
    scores: dict[Setting, list[tuple[float, float, float]]] = {setting: [] for setting in settings}
    with tempfile.TemporaryDirectory() as folder:
        for number, photo in enumerate(photos):
            found = {}
            for name, weight, tune in order:
                if (name, weight, tune) in found:  # an untuned setting read off a tuned one's pivot
                    continue
                result = project(args.run, photo, Path(folder) / f"{photo.stem}-{name}-{weight}-{tune}",
                                 steps=args.steps, starts=args.starts, features=name, feature_weight=weight,
                                 tune_steps=tune)
                found[(name, weight, tune)] = (result.image, result.pixel_mse)
                if result.pivot_image is not None and result.pivot_pixel_mse is not None:
                    found[(name, weight, 0)] = (result.pivot_image, result.pivot_pixel_mse)
            shape = tuple(found[settings[0]][0].shape)
            target = ((load_target(photo, (shape[0], shape[1], shape[2]))[0] + 1) * 127.5).round().byte()
            for setting in settings:
                image, pixel_mse = found[setting]
                scores[setting].append(_distances(target, image, pixel_mse, inception, lite0))
            if number < args.figure_rows:
                rows.append(torch.stack([target, *(found[setting][0] for setting in settings)]))
            print(f"{number + 1}/{len(photos)} {photo.name}", flush=True)
    save_png(make_grid(torch.cat(rows), 1 + len(settings)), args.figure,
             {"layout": "columns: target, then " + args.settings, "steps": str(args.steps)})
    print(f"{len(photos)} photos, {args.steps} steps, {args.starts} starts each")
    print("| feature loss | weight | tuning steps | PSNR dB (mean) | Lite0 feature distance (mean) | "
          "Inception cosine distance (mean) |")
    print("|---|---|---|---|---|---|")
    for (name, weight, tune), found in scores.items():
        psnr, lite0_distance, inception_distance = np.mean(found, axis=0)
        print(f"| {name} | {weight:g} | {tune} | {psnr:.2f} | {lite0_distance:.4f} | {inception_distance:.4f} |")


def _distances(target: torch.Tensor, image: torch.Tensor, pixel_mse: float, inception, lite0) -> tuple[float, ...]:
    """(PSNR in dB for [-1, 1] pixels, Lite0 feature distance, Inception cosine distance) of uint8 [C, H, W]."""
    psnr = 10 * math.log10(4.0 / max(pixel_mse, 1e-12))  # peak-to-peak 2 in G's units
    pair = inception.extract(torch.stack([target, image]))[0]
    inception_distance = 1 - float(torch.nn.functional.cosine_similarity(pair[0], pair[1], dim=0))
    rgb = torch.stack([target, image]).expand(-1, 3, -1, -1).float() / 127.5 - 1
    with torch.no_grad():
        taps = lite0(rgb)
    lite0_distance = sum(float((t[0] - t[1]).pow(2).mean() / t[0].pow(2).mean().clamp_min(1e-8)) for t in taps)
    return psnr, lite0_distance, inception_distance


def _setting(text: str) -> Setting:
    """FEATURES:WEIGHT[:TUNE] -> (features, weight, tuning steps)."""
    parts = text.split(":")
    return parts[0], float(parts[1]), int(parts[2]) if len(parts) > 2 else 0


if __name__ == "__main__":
    main()
