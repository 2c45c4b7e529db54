"""What a user gets for a wall-clock budget on this machine: DCGAN, FastGAN and Projected GAN trained for the same
minutes on real photos, then scored against their training store.

For each model: `ganforge train` runs until the budget is spent and is stopped with SIGINT (which checkpoints),
then `ganforge evaluate` reports FID, KID and precision/recall (standard Inception features, n generated = n real)
and the nearest-neighbour memorization check; img/s comes from the run's log. The last sample grid is copied
next to BENCHMARKS.md, shrunk, so a person can judge the images beside the numbers. Usage:
    python benchmarks/quality.py --dataset anime --minutes 10            # 19,992 anime faces at 64 px
    python benchmarks/quality.py --dataset cars --minutes 60 --n 2000    # 8,144 cars at 128 px
    python benchmarks/quality.py --dataset anime --minutes 10 --models fastgan --keep runs/quality
    python benchmarks/quality.py --dataset anime --minutes 60 --models projected --kimg 162
    python benchmarks/quality.py --dataset cars --minutes 60 --models projected --kimg 45.5 --keep runs/quality
    python benchmarks/quality.py --dataset anime --minutes 10 --models projected --plan   # `train --minutes 10`
    python benchmarks/quality.py --dataset cars32 --minutes 10 --models dcgan-small,dcgan-small-sn,projected-small

A wall-clock budget only means something on a quiet machine: with a second process on 2 cores, PyTorch's
threads wait on each other and a run trains at a third of its speed. `--kimg K` trains to K kimg instead,
where K is the budget times the model's img/s on the quiet machine (read from a quiet run's log.jsonl): the
images it gives are those the budget gives, whatever else ran meanwhile. With --keep, a model's earlier run there
(the 10-minute one, say) is resumed and extended to K instead of trained again from the start. `--plan` trains
with `ganforge train --minutes`, which plans its own length and ends on time (its last weights are scored).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from ganforge.device import speed_flags

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {"anime": (SHARED / "anime-faces" / "anime_faces_20k_64_jpg.tar.gz", 64),
            "cars": (SHARED / "stanford-cars" / "stanford_cars_train_128_pad_jpg.tar.gz", 128),
            # Below 64 px (issue 34's default recipe for small natural images): the same photos at 32 px, and
            # Fashion-MNIST's 60,000 training items at their own 28 px.
            "anime32": (SHARED / "anime-faces" / "anime_faces_20k_64_jpg.tar.gz", 32),
            "cars32": (SHARED / "stanford-cars" / "stanford_cars_train_128_pad_jpg.tar.gz", 32),
            "fashion": (SHARED / "fashion-mnist" / "train-images-idx3-ubyte.gz", 28)}
FAST = speed_flags(torch.device("cpu"))  # bf16 + channels-last where this CPU computes bf16, else fp32
MODELS = {
    # The best DCGAN-class recipe ganforge has: DiffAugment against D overfitting, G EMA with ramp-up.
    "dcgan": ["--model", "dcgan", "--augment", "diffaugment", "--ema-kimg", "10", "--ema-rampup", "0.05", *FAST],
    # The papers' recipes (implied by --model) at a quarter of the paper's widths and batch 16: at full width
    # (ngf 64, 28M parameters in G) FastGAN's G costs ~8 GFLOP per 64 px image and trained at 4 img/s here.
    "fastgan": ["--model", "fastgan", "--g-width", "16", "--d-width", "16", "--batch", "16", *FAST],
    "projected": ["--model", "projected", "--g-width", "16", "--batch", "16", *FAST],
    # The same with a wider, deeper frozen feature network (issue 29's candidates): slower per image, maybe better.
    "projected-lite1": ["--model", "projected", "--features", "lite1", "--g-width", "16", "--batch", "16", *FAST],
    # Lite1 at batch 32: 1.11x the images a second of batch 16 here (BENCHMARKS.md), so more kimg in an hour.
    "projected-lite1-b32": ["--model", "projected", "--features", "lite1", "--g-width", "16", "--batch", "32",
                            *FAST],
    "projected-lite2": ["--model", "projected", "--features", "lite2", "--g-width", "16", "--batch", "16", *FAST],
    # Lite1 with both learning rates falling linearly to 0 over the run's last quarter (of the planned kimg with
    # --plan): issue 29 asks for a schedule set from the planned length.
    "projected-lite1-decay": ["--model", "projected", "--features", "lite1", "--g-width", "16", "--batch", "16",
                              "--lr-decay", "0.25", *FAST],
    # Lite1 with MSGAN's mode-seeking term, which widened the faces' palettes at 32 px: does it at 64 px too?
    "projected-lite1-ms": ["--model", "projected", "--features", "lite1", "--g-width", "16", "--batch", "16",
                           "--mode-seeking", "1", *FAST],
    # Lite1 with the head on the pixels that widened the 32 px faces' palettes and mended the 32 px cars (issue 34):
    # issue 29's untried lead at 64 px.
    "projected-lite1-px": ["--model", "projected", "--features", "lite1", "--g-width", "16", "--batch", "16",
                           "--pixel-head", *FAST],
    # R3GAN's recipe at width 8 with R1/R2 every 4 D steps (`--preset r3gan-cpu`): at width 16 and penalties every
    # step, as the paper runs them, it trained at 4 img/s here (BENCHMARKS.md).
    "r3gan": ["--preset", "r3gan-cpu", *FAST],
    # Candidates below 64 px: the digits' recipe, the same with the stabilisers a practitioner adds on natural
    # images (spectral norm, hinge, DiffAugment, EMA), and Projected GAN's (G from 16 px, D at 64 px).
    "dcgan-small": ["--preset", "dcgan-small", *FAST],
    # What `ganforge train` gives a labelled one-channel store (Fashion-MNIST): the digits' recipe with --cond.
    "dcgan-small-cond": ["--preset", "dcgan-small", "--cond", *FAST],
    # The same with MSGAN's mode-seeking term, against the collapse within each class the line above measured.
    "dcgan-small-cond-ms": ["--preset", "dcgan-small", "--cond", "--mode-seeking", "1", *FAST],
    "dcgan-small-cond-ms0.2": ["--preset", "dcgan-small", "--cond", "--mode-seeking", "0.2", *FAST],
    # Unconditional with the term (weight 1, as screened on the 32 px cars): does it stop the collapse on photos?
    "dcgan-small-ms": ["--preset", "dcgan-small", "--mode-seeking", "1", *FAST],
    "dcgan-small-sn": ["--preset", "dcgan-small", "--spectral-norm", "--loss", "hinge", "--augment", "diffaugment",
                       "--ema-kimg", "10", "--ema-rampup", "0.05", *FAST],
    "projected-small": ["--preset", "projected-cpu", *FAST],
    # with MSGAN's term: what `ganforge train` gives colour images below 64 px (the recipe alone narrowed there)
    "projected-small-ms": ["--preset", "projected-cpu", "--mode-seeking", "1", *FAST],
    # the same with a head on the pixels themselves, against the palettes narrowing (issue 34)
    "projected-small-ms-px": ["--preset", "projected-cpu", "--mode-seeking", "1", "--pixel-head", *FAST],
}


def ganforge(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"ganforge {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare(dataset: str, root: Path) -> Path:
    source, resolution = DATASETS[dataset]
    store = root / f"{dataset}.gfs"
    if not store.exists():
        if source.name.endswith(".tar.gz"):
            with tarfile.open(source) as tar:
                tar.extractall(root / dataset, filter="data")
            source = root / dataset
        ganforge("prepare", str(source), "--out", str(store), "--resolution", str(resolution))
    return store


def train_for(store: Path, out: Path, minutes: float, extra: list[str], kimg: float | None = None,
              plan: bool = False) -> Path:
    """Train until `minutes` of wall clock have passed (SIGINT: the run checkpoints and exits), or to `kimg`.

    The child writes to a log file, not a pipe to this process: a killed benchmark must not take the training
    run down with it at its next status line (`ganforge train --resume` picks it up from its last snapshot).
    """
    earlier = sorted(out.iterdir()) if kimg and out.is_dir() else []
    if earlier:  # --keep holds this model's shorter run: extend it (resume is exact) rather than start over
        # --minutes 0: a run that planned its length (--plan) now trains to the length given instead
        command = ["--resume", str(earlier[-1]), "--kimg", str(kimg), "--minutes", "0"]
    else:
        length = ["--minutes", str(minutes)] if plan else ["--kimg", str(kimg or 100000)]
        command = ["--data", str(store), "--out", str(out), *length, "--tick-kimg", "1", "--snap", "5", *extra]
    log_path = out.parent / f"{out.name}.log"
    with log_path.open("a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ganforge", "train", *command, "--no-progress"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=None if kimg or plan else minutes * 60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=600)
    if proc.returncode not in (0, 128 + signal.SIGINT):  # 130: interrupted, checkpoint written
        raise SystemExit(f"training failed (exit {proc.returncode}); its output is in {log_path}:\n"
                         + "\n".join(log_path.read_text().splitlines()[-30:]))
    return sorted(out.iterdir())[-1]


def summarize(run: Path, n: int, grid_out: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    ticks = [r for r in rows if "tick" in r]
    scores_path = run.parent / f"{run.name}-quality.json"  # evaluate writes nothing inside a run folder
    ganforge("evaluate", str(run), "--metrics", "fid,kid,pr,memorization", "--n", str(n), "--json", str(scores_path))
    results = {r["metric"]: r for r in json.loads(scores_path.read_text())}
    fid_kid_pr = {k: v for r in results.values() if "scores" in r for k, v in r["scores"].items()}
    grid = Image.open(run / "samples" / "latest.png").convert("RGB")
    grid.thumbnail((512, 512))
    grid.quantize(256).save(grid_out, optimize=True)  # ~5x smaller than the full-colour PNG, for the repo
    seconds = sum(r["sec_per_tick"] for r in ticks if "sec_per_tick" in r) or 1.0
    return {**fid_kid_pr, "kimg": ticks[-1]["kimg"], "img_per_s": ticks[-1]["kimg"] * 1000 / seconds,
            "mem_median_ratio": results["memorization"]["median_ratio"],
            "mem_suspicious": results["memorization"]["fraction_suspicious"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="anime")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--n", type=int, default=2000, help="generated (and real) images per metric")
    parser.add_argument("--grids", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--keep", type=Path, help="keep the stores and runs here (default: a temporary folder); "
                        "with --kimg, a model's earlier run here is extended")
    parser.add_argument("--kimg", type=float, help="train to this many kimg: the --minutes budget at the model's "
                        "quiet img/s (one model per call)")
    parser.add_argument("--plan", action="store_true", help="train with `ganforge train --minutes`, which plans "
                        "its length and ends on time, instead of stopping it after --minutes")
    args = parser.parse_args()
    if args.kimg and args.plan:
        parser.error("--plan sets the length from --minutes: drop --kimg")
    if args.kimg and "," in args.models:
        parser.error("--kimg is one model's budget: name one with --models")
    args.grids.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        store = prepare(args.dataset, root)
        # --kimg is often the kimg another machine reached in --minutes: not this CPU's minutes
        budget = f"{args.kimg:g} kimg" if args.kimg else f"{args.minutes:g} min on this CPU"
        print(f"| model ({args.dataset}, {budget}) | kimg | img/s | FID | KID x1e3 | "
              f"precision | recall | memorization median ratio | grid |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in args.models.split(","):
            started = time.perf_counter()
            run = train_for(store, root / f"runs-{name}", args.minutes, MODELS[name], args.kimg, args.plan)
            grid = args.grids / f"{args.dataset}-{name}-{args.minutes:g}min.png"
            s = summarize(run, args.n, grid)
            print(f"| {name} | {s['kimg']:.1f} | {s['img_per_s']:.0f} | {s['fid']:.1f} | {s['kid'] * 1e3:.1f} "
                  f"| {s['precision']:.3f} | {s['recall']:.3f} | {s['mem_median_ratio']:.2f} | {grid.name} |  "
                  f"<!-- {(time.perf_counter() - started) / 60:.1f} min with evaluation -->", flush=True)


if __name__ == "__main__":
    main()
