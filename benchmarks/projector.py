"""How well `ganforge project` reproduces real photos with each feature loss: EfficientNet-Lite0's ImageNet features
(the default with ganforge[projected]) against the fixed random-conv ones, on the same images, the same steps and
starts. Scored by pixel MSE (in G's [-1, 1] units) and by the distance between target and projection in a third
network neither loss used (Inception's pool features, cosine distance), so the perceptual loss is not judged by its
own features. Writes a figure of target | random-conv | lite0 rows. Usage:
    python benchmarks/projector.py RUN FACES_DIR --count 4 --steps 200 --figure projector.png
    python benchmarks/projector.py RUN FACES_DIR --settings lite0:0.1 --figure lite0-weight-0.1.png
    python benchmarks/projector.py RUN FACES_DIR --settings lite0:1,lite0:1:100 --figure tuning.png
--settings lists FEATURES:WEIGHT[:TUNE] (the feature loss, its weight beside pixel MSE, and the steps of pivotal
tuning after the projection, `project --tune`); default both feature losses at weight 1, untuned.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from ganforge.explore.project import load_target, project
from ganforge.images import make_grid, save_png
from ganforge.metrics.features import load_extractor

SETTINGS = "random-conv:1,lite0:1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("faces", type=Path, help="folder of photos; the last --count in name order are used")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--figure", type=Path, required=True)
    parser.add_argument("--settings", default=SETTINGS, help="FEATURES:WEIGHT[:TUNE], comma-separated")
    args = parser.parse_args()
    settings = [_setting(text) for text in args.settings.split(",")]
    photos = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in {".jpg", ".png"})[-args.count:]
    inception = load_extractor("inception")
    rows: list[torch.Tensor] = []
    scores: dict[tuple[str, float, int], tuple[list[float], list[float]]] = {setting: ([], []) for setting in settings}
    with tempfile.TemporaryDirectory() as folder:
        for photo in photos:
            row = []
            for name, weight, tune in settings:
                result = project(args.run, photo, Path(folder) / f"{photo.stem}-{name}-{weight}-{tune}",
                                 steps=args.steps, features=name, feature_weight=weight, tune_steps=tune)
                row.append(result.image)
                shape = tuple(result.image.shape)
                target = ((load_target(photo, (shape[0], shape[1], shape[2]))[0] + 1) * 127.5).round().byte()
                pair = inception.extract(torch.stack([target, result.image]))[0]
                scores[(name, weight, tune)][0].append(result.pixel_mse)
                scores[(name, weight, tune)][1].append(1 - float(torch.nn.functional.cosine_similarity(pair[0], pair[1],
                                                                                                dim=0)))
            rows.append(torch.stack([target, *row]))
    save_png(make_grid(torch.cat(rows), 1 + len(settings)), args.figure,
             {"layout": "columns: target, then " + args.settings, "steps": str(args.steps)})
    print(f"{len(photos)} photos, {args.steps} steps, 64 starts each")
    print("| feature loss | weight | tuning steps | pixel MSE (mean) | Inception cosine distance (mean) |")
    print("|---|---|---|---|---|")
    for (name, weight, tune), (mse, distance) in scores.items():
        print(f"| {name} | {weight:g} | {tune} | {np.mean(mse):.4f} | {np.mean(distance):.4f} |")


def _setting(text: str) -> tuple[str, float, int]:
    """FEATURES:WEIGHT[:TUNE] -> (features, weight, tuning steps)."""
    parts = text.split(":")
    return parts[0], float(parts[1]), int(parts[2]) if len(parts) > 2 else 0


if __name__ == "__main__":
    main()
