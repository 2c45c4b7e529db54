"""Two unpaired domains from the anime faces for CycleGAN: dark-haired and light-haired faces.

The faces are cropped alike, with hair filling the top of the frame, so the mean brightness of the top band
(the top eighth, inner three quarters of the width) sorts them by hair colour. The darkest and the lightest
quarter become the two domains (about 5,000 faces each); the middle half, mixed or mid-tone hair, is left out.
A CycleGAN between them has to recolour the hair and keep the face: an attribute transfer of the kind users
train CycleGAN for (the paper's summer/winter and horse/zebra), on data in ../shared. Usage:
    python benchmarks/anime_hair_domains.py ANIME_FOLDER --out hair/      # writes hair/dark and hair/light
    ganforge prepare --a hair/dark --b hair/light --unpaired --out hair.gfs --resolution 64 --val-fraction 0.05
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image


def top_band_brightness(path: Path) -> float:
    with Image.open(path) as image:
        grey = np.asarray(image.convert("L"), dtype=np.float32)
    height, width = grey.shape
    return float(grey[: max(1, height // 8), width // 8: width - width // 8].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faces", type=Path, help="folder of anime face images (searched recursively)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fraction", type=float, default=0.25, help="share of the faces in each domain")
    args = parser.parse_args()
    paths = sorted(p for p in args.faces.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not paths:
        raise SystemExit(f"{args.faces}: no jpg or png images")
    order = np.argsort([top_band_brightness(p) for p in paths], kind="stable")
    count = int(len(paths) * args.fraction)
    for name, chosen in (("dark", order[:count]), ("light", order[-count:])):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in chosen:
            link = folder / paths[index].name
            if not link.exists():
                os.symlink(paths[index].resolve(), link)
        print(f"{folder}: {count} faces")


if __name__ == "__main__":
    main()
