"""The collapse monitor's two measures on the sample grids in benchmarks/results, against a store's real images:
how far each grid's first 64 samples lie apart in the random convolutional features and in their colour palettes,
as a share of 64 real images' own (the mean of three draws), and the near-twins in the features. The grids are
G-EMA samples of runs whose FID, recall and look BENCHMARKS.md records, so this shows where the monitor's
thresholds fall on grids a person has judged. Usage:

    python benchmarks/collapse_monitor_grids.py anime.gfs benchmarks/results/anime-*.png
    python benchmarks/collapse_monitor_grids.py anime32.gfs benchmarks/results/anime32-*.png --tile 64
    python benchmarks/collapse_monitor_grids.py cars.gfs benchmarks/results/cars-*.png --tile 64

Tiles are the store's size unless `--tile` says otherwise: grids show small images enlarged (the 32 px runs' at
64 px) and large ones reduced (the 128 px cars' at 64 px). A border of 1/32 of a side is cropped from every tile
and real image alike.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.data.store import Store
from ganforge.metrics.palette import palette_features
from ganforge.metrics.random_conv import RandomConvExtractor
from ganforge.training.collapse_monitor import (
    COLLAPSE_RATIO,
    PALETTE_RATIO,
    SAMPLES,
    TWIN_PERCENTILE,
    nearest_neighbour_distances,
    reference_rows,
)

REAL_DRAWS = (5, 6, 7)  # seeds of the real reference sets


def inner(images: torch.Tensor) -> torch.Tensor:
    border = max(1, images.shape[-1] // 32)
    return images[..., border:-border, border:-border]


def grid_tiles(path: Path, side: int) -> torch.Tensor | None:
    """The first SAMPLES tiles of a square grid of `side` px tiles, uint8 [N, 3, side, side]; None if it is not one."""
    picture = np.array(Image.open(path).convert("RGB"))
    rows, cols = picture.shape[0] // side, picture.shape[1] // side
    if rows * side != picture.shape[0] or cols * side != picture.shape[1] or rows * cols < SAMPLES:
        return None
    tiles = torch.from_numpy(picture).permute(2, 0, 1).reshape(3, rows, side, cols, side)
    return tiles.permute(1, 3, 0, 2, 4).reshape(rows * cols, 3, side, side)[:SAMPLES].contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path, help="the RGB store the runs trained on")
    parser.add_argument("grids", type=Path, nargs="+")
    parser.add_argument("--tile", type=int, help="the grids' tile side in px (default: the store's)")
    args = parser.parse_args()
    store = Store(args.store)
    extractor = RandomConvExtractor()
    features, palettes, twins = [], [], []
    for seed in REAL_DRAWS:
        real = inner(torch.as_tensor(store.uint8_batch(reference_rows(store, None, seed)[0])))
        distances = nearest_neighbour_distances(extractor.extract(real)[0])
        features.append(float(distances.median()))
        twins.append(float(np.percentile(distances.numpy(), TWIN_PERCENTILE)))
        palettes.append(float(nearest_neighbour_distances(palette_features(real)).median()))
    real_features, real_palette, twin = np.mean(features), np.mean(palettes), np.mean(twins)
    print(f"real images of {args.store.name}: features {real_features:.3f}, palettes {real_palette:.3f} "
          f"(draws {', '.join(f'{p:.3f}' for p in palettes)}); warnings below {COLLAPSE_RATIO} and {PALETTE_RATIO}")
    print("| grid | features, share of real | near-twins of 64 | palettes, share of real |")
    print("|---|---:|---:|---:|")
    side = args.tile or store.manifest.width
    for path in args.grids:
        tiles = grid_tiles(path, side)
        if tiles is None:
            print(f"| {path.name} | not a grid of {side} px tiles | | |")
            continue
        samples = inner(tiles)
        distances = nearest_neighbour_distances(extractor.extract(samples)[0])
        palette = float(nearest_neighbour_distances(palette_features(samples)).median())
        print(f"| {path.name} | {float(distances.median()) / real_features:.2f} | {int((distances < twin).sum())} "
              f"| {palette / real_palette:.2f} |")


if __name__ == "__main__":
    main()
