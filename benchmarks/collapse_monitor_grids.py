"""The collapse monitor's two measures on the sample grids in benchmarks/results, against a store's real images:
how far each grid's first 64 samples lie apart in the random convolutional features and in their colour palettes,
as a share of real images' own (pooled over REFERENCE_SETS sets of 64, as the monitor does), and the near-twins
in the features. The grids are G-EMA samples of runs whose FID, recall and look BENCHMARKS.md records, so this
shows where the monitor's thresholds fall on grids a person has judged. Usage:

    python benchmarks/collapse_monitor_grids.py anime.gfs benchmarks/results/anime-*.png
    python benchmarks/collapse_monitor_grids.py anime32.gfs benchmarks/results/anime32-*.png --tile 64
    python benchmarks/collapse_monitor_grids.py cars.gfs benchmarks/results/cars-*.png --tile 64
    python benchmarks/collapse_monitor_grids.py anime.gfs RUN/samples/fakes-*.png --pad 2

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
    REFERENCE_SETS,
    SAMPLES,
    TWIN_DISTANCE,
    nearest_neighbour_distances,
    reference_rows,
)


def inner(images: torch.Tensor) -> torch.Tensor:
    border = max(1, images.shape[-1] // 32)
    return images[..., border:-border, border:-border]


def grid_tiles(path: Path, side: int, pad: int = 0) -> torch.Tensor | None:
    """The first SAMPLES tiles of a square grid of `side` px tiles with `pad` px around each (a run's samples/
    grids: 2), uint8 [N, 3, side, side]; None if it is not one."""
    picture = np.array(Image.open(path).convert("RGB"))[pad:, pad:]  # each tile then owns the border after it
    step = side + pad
    rows, cols = picture.shape[0] // step, picture.shape[1] // step
    if rows * step != picture.shape[0] or cols * step != picture.shape[1] or rows * cols < SAMPLES:
        return None
    tiles = torch.from_numpy(picture).permute(2, 0, 1).reshape(3, rows, step, cols, step)[:, :, :side, :, :side]
    return tiles.permute(1, 3, 0, 2, 4).reshape(rows * cols, 3, side, side)[:SAMPLES].contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path, help="the RGB store the runs trained on")
    parser.add_argument("grids", type=Path, nargs="+")
    parser.add_argument("--tile", type=int, help="the grids' tile side in px (default: the store's)")
    parser.add_argument("--pad", type=int, default=0, help="px between tiles (a run's samples/fakes-*.png: 2)")
    args = parser.parse_args()
    store = Store(args.store)
    extractor = RandomConvExtractor()
    features, palettes = [], []
    rng = np.random.default_rng(5)
    for _ in range(REFERENCE_SETS):  # the monitor's reference, with the tiles' border cropped from it too
        real = inner(torch.as_tensor(store.uint8_batch(reference_rows(store, None, rng)[0])))
        features.append(nearest_neighbour_distances(extractor.extract(real)[0]))
        palettes.append(nearest_neighbour_distances(palette_features(real)))
    real_features, real_palette = float(torch.cat(features).median()), float(torch.cat(palettes).median())
    twin = TWIN_DISTANCE * real_features
    print(f"real images of {args.store.name}: features {real_features:.3f}, palettes {real_palette:.3f}; "
          f"warnings below {COLLAPSE_RATIO} and {PALETTE_RATIO}, near-twins under {twin:.3f}")
    print("| grid | features, share of real | near-twins of 64 | palettes, share of real |")
    print("|---|---:|---:|---:|")
    side = args.tile or store.manifest.width
    for path in args.grids:
        tiles = grid_tiles(path, side, args.pad)
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
