"""FID, KID, precision and recall after the same training budget for each loss (MNIST) and for each augmentation
(2,000 anime faces). Recall is the collapse alarm: a low FID with recall near 0 is a run that draws few modes well.

Every run trains from scratch with the same seed and number of images, then is scored with the standard
Inception features against its own training store (n generated = n real = --n). Usage:
    python benchmarks/zoo_fid.py --mnist-kimg 30 --anime-kimg 40 --n 2000
    python benchmarks/zoo_fid.py --only losses --losses nonsaturating,lsgan   # some rows only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ganforge.device import speed_flags

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# key (for --losses): (the table's row name, the train flags)
LOSSES = {
    "nonsaturating": ("nonsaturating", ["--loss", "nonsaturating"]),
    "minimax": ("minimax", ["--loss", "minimax"]),
    "wgan": ("wgan (clip 0.01, 5 critic steps)", ["--preset", "wgan"]),
    "wgan-gp": ("wgan-gp (lambda 10, 5 critic steps)", ["--preset", "wgan-gp"]),
    "sngan": ("hinge + spectral norm", ["--preset", "sngan"]),
    "lsgan": ("lsgan", ["--preset", "lsgan"]),
}
AUGMENTS = {"none": [], "diffaugment": ["--augment", "diffaugment"], "ada": ["--augment", "ada", "--ada-kimg", "10"]}


def ganforge(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"ganforge {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


HEADER = "| FID (n={n}) | KID x1e3 | precision | recall | train min |\n|---|---|---|---|---|---|"


def train_and_score(store: Path, out: Path, kimg: float, n: int, extra: list[str]) -> str:
    """The table row's cells after NAME: FID, KID x1e3, precision, recall, train minutes.

    --model dcgan is named so that every row shares one plain, unconditional DCGAN: without it `train` would pick
    its default recipe for the store (conditional `dcgan-small` on the digits, Projected GAN on the faces) for
    the rows without a preset, and compare them with rows that have one."""
    start = time.perf_counter()
    ganforge("train", "--data", str(store), "--out", str(out), "--kimg", str(kimg), "--tick-kimg", str(kimg / 4),
             "--model", "dcgan", "--batch", "64", "--g-width", "32", "--d-width", "32",
             *speed_flags(torch.device("cpu")), "--no-progress", *extra)
    minutes = (time.perf_counter() - start) / 60
    run_dir = sorted(out.iterdir())[-1]
    scores = out / f"{run_dir.name}.json"
    ganforge("evaluate", str(run_dir), "--metrics", "fid,kid,pr", "--n", str(n), "--json", str(scores))
    found = {k: v for result in json.loads(scores.read_text()) for k, v in result["scores"].items()}
    return (f"{found['fid']:.1f} | {found['kid'] * 1e3:.1f} | {found['precision']:.3f} | {found['recall']:.3f} | "
            f"{minutes:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-kimg", type=float, default=30)
    parser.add_argument("--anime-kimg", type=float, default=40)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--only", choices=["losses", "augment"], default=None)
    parser.add_argument("--losses", default=",".join(LOSSES), type=lambda text: text.split(","),
                        help="the loss rows to run, comma-separated (default: all): " + ", ".join(LOSSES))
    args = parser.parse_args()
    unknown = sorted(set(args.losses) - set(LOSSES))
    if unknown:
        parser.error(f"--losses: unknown {', '.join(unknown)}; choose from: {', '.join(LOSSES)}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.only in (None, "losses"):
            mnist = root / "mnist.gfs"
            ganforge("prepare", str(SHARED / "mnist" / "train-images-idx3-ubyte.gz"), "--out", str(mnist))
            print(f"| loss (MNIST 60k, dcgan width 32, {args.mnist_kimg:g} kimg) " + HEADER.format(n=args.n))
            for key in args.losses:
                name, extra = LOSSES[key]
                print(f"| {name} | {train_and_score(mnist, root / 'runs-loss', args.mnist_kimg, args.n, extra)}",
                      flush=True)
        if args.only in (None, "augment"):
            anime = root / "anime2k"
            import tarfile

            with tarfile.open(SHARED / "anime-faces" / "anime_faces_20k_64_jpg.tar.gz") as tar:
                members = [m for m in tar.getmembers() if m.name.endswith(".jpg")][:2000]
                tar.extractall(anime, members=members, filter="data")
            store = root / "anime2k.gfs"
            ganforge("prepare", str(anime), "--out", str(store), "--resolution", "32")
            print(f"\n| augmentation (2,000 anime faces at 32 px, {args.anime_kimg:g} kimg) " + HEADER.format(n=args.n))
            for name, extra in AUGMENTS.items():
                print(f"| {name} | {train_and_score(store, root / 'runs-aug', args.anime_kimg, args.n, extra)}",
                      flush=True)


if __name__ == "__main__":
    main()
