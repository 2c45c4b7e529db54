"""Fine-tuning against training from scratch, on a few images of one subject: `ganforge train --init` from a run
on all the anime faces, against the default recipe from nothing, on 100 and 1,000 light-haired faces.

The light-haired faces are the lightest quarter by the brightness of the top band (benchmarks/anime_hair_domains.py);
1,000 of them, drawn at random (seed 0), are held out and every run is scored against them: FID, KID and
precision/recall (standard Inception features), and the memorization check against the run's own training images
(median nearest-neighbour distance ratio, >= 1 when samples are no closer to training images than held-out real
images are). Both arms train the same kimg: the budget's worth at the speed a quiet machine measured, so the
comparison holds whatever else runs meanwhile (see benchmarks/quality.py). The last sample grid of each run is
copied next to BENCHMARKS.md. Usage:
    python benchmarks/finetune.py --source runs/00001-projected-anime --faces anime/images --kimg 33.8
    python benchmarks/finetune.py --source RUN --faces DIR --kimg 33.8 --sizes 100 --arms fine-tuned --keep ft/
A variant of the fine-tuned arm (e.g. the few-shot defaults' FreezeD depth or augmentation) is named by --tag and
given its training flags by --flags:
    python benchmarks/finetune.py --source RUN --faces DIR --kimg 33.8 --sizes 100 --arms fine-tuned \
        --tag freeze0 --flags "--freeze-d 0"
Across domains, from the digits demo's run (`ganforge train`) to Fashion-MNIST (held out: the first 1,000 of its
test split; training sets from its train split):
    python benchmarks/finetune.py --source runs/00001-dcgan-mnist --fashion ../shared/data/fashion-mnist --kimg 50
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anime_hair_domains import top_band_brightness  # noqa: E402  (a script beside this one)

HELD_OUT = 1000


def ganforge(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"ganforge {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def light_faces(faces: Path, fraction: float = 0.25) -> list[Path]:
    paths = sorted(p for p in faces.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    order = np.argsort([top_band_brightness(p) for p in paths], kind="stable")
    return [paths[i] for i in order[-int(len(paths) * fraction):]]


def fashion_images(folder: Path, idx: Path, split: str, start: int, count: int) -> list[Path]:
    """Fashion-MNIST items start..start+count of `split` ("train" or "t10k") as PNG files in `folder`."""
    import gzip

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(idx / f"{split}-images-idx3-ubyte.gz", "rb") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    paths = []
    for i in range(start, start + count):
        path = folder / f"{split}-{i:05d}.png"
        if not path.exists():
            Image.fromarray(raw[i]).save(path)
        paths.append(path)
    return paths


def store_of(paths: list[Path], folder: Path) -> Path:
    """A store prepared from `paths` (linked into `folder`), written once."""
    store = folder.with_suffix(".gfs")
    if not store.exists():
        folder.mkdir(parents=True, exist_ok=True)
        for path in paths:
            link = folder / path.name
            if not link.exists():
                os.symlink(path.resolve(), link)
        ganforge("prepare", str(folder), "--out", str(store))
    return store


def train(store: Path, out: Path, kimg: float, init: Path | None, flags: list[str]) -> tuple[Path, float, str]:
    """(the run folder, wall seconds, the "done" line)."""
    start = time.perf_counter()
    output = ganforge("train", "--data", str(store), "--kimg", str(kimg), "--out", str(out), "--no-progress",
                      *(["--init", str(init)] if init else []), *flags)
    seconds = time.perf_counter() - start
    run = next(p for p in sorted(out.iterdir()) if (p / "config.json").is_file())
    return run, seconds, next((line for line in output.splitlines() if line.startswith("done:")), "")


def scores(run: Path, held_out: Path, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        quality, copies = Path(folder) / "q.json", Path(folder) / "m.json"
        ganforge("evaluate", str(run), "--data", str(held_out), "--metrics", "fid,kid,pr", "--n", str(n),
                 "--json", str(quality))
        ganforge("evaluate", str(run), "--metrics", "memorization", "--n", str(n), "--json", str(copies))
        results = [*json.loads(quality.read_text()), *json.loads(copies.read_text())]
    found: dict[str, float] = {}
    for result in results:
        if result["metric"] == "memorization":
            found["memorization"] = result["median_ratio"]
            found["suspicious"] = result["fraction_suspicious"]
        else:
            found.update(result["scores"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="a run on all the anime faces (--init SOURCE)")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--faces", type=Path, help="folder of the anime faces (searched recursively)")
    data.add_argument("--fashion", type=Path, help="folder of Fashion-MNIST's IDX files (../shared/data/fashion-mnist)")
    parser.add_argument("--kimg", type=float, required=True, help="kimg per run: the budget at the quiet speed")
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--arms", default="fine-tuned,scratch")
    parser.add_argument("--tag", default="", help="a name for this variant, in its run folder and grid name")
    parser.add_argument("--flags", default="", help="more `ganforge train` flags for the fine-tuned arm")
    parser.add_argument("--n", type=int, default=HELD_OUT, help="generated (and held-out real) images per metric")
    parser.add_argument("--keep", type=Path, help="keep the stores and runs here (default: a temporary folder)")
    parser.add_argument("--grids", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="finetune-"))
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.faces is not None:
        light = light_faces(args.faces)
        order = np.random.default_rng(0).permutation(len(light))
        held_out = store_of([light[i] for i in order[:HELD_OUT]], root / "light-held-out")
        pool, name = [light[i] for i in order[HELD_OUT:]], "light"
        print(f"{len(light)} light-haired faces: {HELD_OUT} held out, training sets from the other {len(pool)}")
    else:
        images = root / "fashion-images"
        held_out = store_of(fashion_images(images, args.fashion, "t10k", 0, HELD_OUT), root / "fashion-held-out")
        pool, name = fashion_images(images, args.fashion, "train", 0, max(sizes)), "fashion"
        print(f"Fashion-MNIST: the first {HELD_OUT} test items held out, training sets from the train split")
    print("| images | start | kimg | wall | FID | KID x1e3 | precision | recall | memorization | grid |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        store = store_of(pool[:size], root / f"{name}-{size}")
        for arm in args.arms.split(","):
            label = f"{arm}-{args.tag}" if args.tag else arm
            out = root / f"runs-{label}-{size}"
            if out.exists():
                shutil.rmtree(out)
            tuned = arm == "fine-tuned"
            run, seconds, done = train(store, out, args.kimg, args.source if tuned else None,
                                       shlex.split(args.flags) if tuned else [])
            found = scores(run, held_out, args.n)
            grid = args.grids / f"finetune-{name}-{label}-{size}.png"
            shutil.copyfile(run / "samples" / "latest.png", grid)
            print(f"| {size} | {label} | {args.kimg:g} | {seconds / 60:.1f} min | {found['fid']:.1f} | "
                  f"{found['kid'] * 1e3:.1f} | {found['precision']:.3f} | {found['recall']:.3f} | "
                  f"{found['memorization']:.2f} ({found['suspicious']:.1%} suspicious) | [grid]({grid.name}) |",
                  flush=True)
            print(f"  {done}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
