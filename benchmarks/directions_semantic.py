"""Are found directions semantic, or noise? Each direction moves the same seeds by -AMOUNT and +AMOUNT of its scale,
and an image statistic is measured on both sides: the mean brightness, and the brightness of the top band (where
the hair is, in the anime faces: benchmarks/anime_hair_domains.py's split). Random unit directions moved by the
same distance (the same scale, in latent units) give the baseline. A semantic direction changes its statistic far
more than a random one of the same norm. Usage:
    python benchmarks/directions_semantic.py RUN --seeds 64 --amount 2 --random 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ganforge.explore.direction_search import find_directions
from ganforge.explore.directions import Directions, edited_images
from ganforge.explore.image_scores import image_statistic
from ganforge.generate import seed_latents
from ganforge.runs import load_generator


def top_band_brightness(images: torch.Tensor) -> torch.Tensor:
    """Mean grey level of the top eighth of uint8 images [N, C, H, W], without the side eighths: the hair."""
    grey = images.float().mean(1) / 255
    height, width = grey.shape[-2:]
    return grey[:, : max(1, height // 8), width // 8: width - width // 8].mean((1, 2))


STATISTICS = {"brightness": lambda images: image_statistic(images, "brightness"), "hair band": top_band_brightness}


def changes(generator: torch.nn.Module, z: torch.Tensor, directions: Directions, index: int,
            amount: float) -> dict[str, float]:
    """{statistic: mean over seeds of statistic(+amount) - statistic(-amount)}."""
    plus = edited_images(generator, z, [(directions, {index: amount})])
    minus = edited_images(generator, z, [(directions, {index: -amount})])
    return {name: float((statistic(plus) - statistic(minus)).mean()) for name, statistic in STATISTICS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--amount", type=float, default=2.0, help="each side, in the direction's scale")
    parser.add_argument("--random", type=int, default=20, help="random directions for the baseline")
    parser.add_argument("--samples", type=int, default=2000, help="latents the labels fit samples")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    generator, config, _ = load_generator(args.run)
    z = seed_latents(list(range(10_000, 10_000 + args.seeds)), config.model.z_dim)
    found = {
        "labels, --score brightness": find_directions(generator, config, "labels", 1, score="brightness",
                                                      samples=args.samples),
        "sefa": find_directions(generator, config, "sefa", 3),
    }
    rows = []
    for name, directions in found.items():
        for index in range(len(directions)):
            rows.append((f"{name} {index}", float(directions.scales[index]),
                         changes(generator, z, directions, index, args.amount)))
    # Random unit directions at the labels direction's scale: the same distance moved in the latent space.
    scale = found["labels, --score brightness"].scales[:1]
    dim = found["sefa"].vectors.shape[1]
    randoms = []
    for seed in range(args.random):
        draw = torch.randn(1, dim, generator=torch.Generator().manual_seed(seed))
        vector = torch.nn.functional.normalize(draw, dim=1)
        randoms.append(changes(generator, z, Directions("random", found["sefa"].space, vector, scale, [0.0]), 0,
                               args.amount))
    print(f"{args.seeds} seeds moved from -{args.amount:g} to +{args.amount:g} of each direction's scale; change "
          "of the statistic (grey level, 0-1), mean over seeds")
    print("| direction | scale (latent units) | brightness change | hair-band change | hair-band change per unit |")
    print("|---|---|---|---|---|")
    for name, scale_of, change in rows:
        per_unit = change["hair band"] / (2 * args.amount * scale_of)
        print(f"| {name} | {scale_of:.2f} | {change['brightness']:+.4f} | {change['hair band']:+.4f} | "
              f"{per_unit:+.4f} |")
    for statistic in STATISTICS:
        magnitudes = torch.tensor([abs(r[statistic]) for r in randoms])
        print(f"| random ({args.random} directions at the labels scale {float(scale[0]):.2f}), {statistic}: mean "
              f"|change| {float(magnitudes.mean()):.4f}, largest {float(magnitudes.max()):.4f} | | | | |")


if __name__ == "__main__":
    main()
