"""FastGAN and Projected GAN for a few minutes on a lent GPU, scored on this machine with quality.py's protocol.

A device call carries at most 64 MiB and returns at most 64 MiB, so the standard Inception weights (87 MB) stay
here and the full-width generators (about 110 MB each in fp32) stay there: the device side trains both models
side by side on one GPU, then writes `n` samples of each G EMA as uint8 .npz chunks, and this machine scores
those against the same store. Usage:
    python benchmarks/gpu_quality.py smoke                                   # on the device: 20 s per model
    python benchmarks/gpu_quality.py device --tar anime.tar.gz --resolution 64 --minutes 6 --out $OUT
    python benchmarks/gpu_quality.py score --store anime.gfs --samples DIR   # here: FID, KID, P/R, memorization
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

import numpy as np

ON_GPU = ["--device", "cuda", "--precision", "bf16", "--channels-last"]
MODELS = {
    # The paper's widths (ngf = ndf = 64); batch 32 instead of the paper's 8, which leaves an H200 idle.
    "fastgan": ["--model", "fastgan", "--batch", "32"],
    # The authors' recipe as `--model projected` implies it: batch 64, FastGAN G at full width.
    "projected": ["--model", "projected"],
}
CHUNK = 1000  # samples per .npz: 1,000 64 px images compress to well under the 16 MiB a returned file may have


def ganforge(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ganforge", *args], check=True)


def train_side_by_side(store: Path, work: Path, minutes: float, extra: list[str]) -> dict[str, Path]:
    """Start every model at once on the one GPU, SIGINT them all after `minutes` (each checkpoints and exits)."""
    procs = {}
    for name, flags in MODELS.items():
        log = open(work / f"{name}.out", "w")  # noqa: SIM115 - closed with the process below
        procs[name] = (subprocess.Popen(
            [sys.executable, "-m", "ganforge", "train", "--data", str(store), "--out", str(work / f"runs-{name}"),
             "--kimg", "100000", "--tick-kimg", "20", "--snap", "1000", "--no-progress", *ON_GPU, *flags, *extra],
            stdout=log, stderr=subprocess.STDOUT), log)
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline and all(p.poll() is None for p, _ in procs.values()):
        time.sleep(5)
    for proc, _ in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for name, (proc, log) in procs.items():
        proc.wait(timeout=300)
        log.close()
        print(f"{name}: exit {proc.returncode}\n" + (work / f"{name}.out").read_text()[-1500:], flush=True)
    return {name: sorted((work / f"runs-{name}").iterdir())[-1] for name in MODELS}


def write_samples(run: Path, name: str, n: int, out: Path) -> None:
    import ganforge as gf

    images = gf.load_generator(run, device="cuda").sample(n, seed=0, batch=250).numpy()
    for start in range(0, n, CHUNK):
        np.savez_compressed(out / f"{name}-{start // CHUNK}.npz", images=images[start:start + CHUNK])


def device(args: argparse.Namespace) -> None:
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    store = work / "data.gfs"
    if not store.exists():
        with tarfile.open(args.tar) as tar:
            tar.extractall(work / "images", filter="data")
        ganforge("prepare", str(work / "images"), "--out", str(store), "--resolution", str(args.resolution))
    runs = train_side_by_side(store, work, args.minutes, [])
    with tarfile.open(args.out / "runs.tar.gz", "w:gz") as bundle:
        for name, run in runs.items():
            write_samples(run, name, args.n, args.out)
            for part in ("config.json", "log.jsonl", "samples/latest.png", "loss.png"):
                if (run / part).exists():
                    bundle.add(run / part, arcname=f"{name}/{part}")
            bundle.add(work / f"{name}.out", arcname=f"{name}/train.out")


def smoke(args: argparse.Namespace) -> None:
    """Both models for a few hundred images on random 64 px pictures: does the CUDA path run at all?"""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pictures = np.random.default_rng(0).integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
        np.savez(root / "noise.npz", images=pictures)
        ganforge("prepare", str(root / "noise.npz"), "--out", str(root / "noise.gfs"))
        for name, flags in MODELS.items():
            started = time.perf_counter()
            ganforge("train", "--data", str(root / "noise.gfs"), "--out", str(root / name), "--kimg", "0.5",
                     "--tick-kimg", "0.25", "--no-progress", *ON_GPU, *flags)
            print(f"smoke {name}: ok in {time.perf_counter() - started:.0f} s", flush=True)


def score(args: argparse.Namespace) -> None:
    import ganforge as gf
    from ganforge.metrics.features import load_extractor
    from ganforge.metrics.memorization import memorization_report

    features = load_extractor("inception")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            chunks = sorted(args.samples.glob(f"{name}-*.npz"))
            images = np.concatenate([np.load(c, allow_pickle=False)["images"] for c in chunks])
            scores = gf.evaluate(args.store, images, ["fid", "kid", "pr"], n=len(images), extractor=features)
            print(json.dumps({"model": name, **scores}), flush=True)
            if args.no_memorization:
                continue
            memo = memorization_report(images, args.store, features, Path(tmp), n_generated=min(len(images), 1000))
            row = {"model": name, "n": len(images), **scores, **memo.to_dict()}
            print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("smoke")
    on_device = commands.add_parser("device")
    on_device.add_argument("--tar", type=Path, required=True)
    on_device.add_argument("--resolution", type=int, required=True)
    on_device.add_argument("--minutes", type=float, default=6)
    on_device.add_argument("--n", type=int, default=2000)
    on_device.add_argument("--work", type=Path, default=Path("/root/gpu_quality"))
    on_device.add_argument("--out", type=Path, required=True)
    here = commands.add_parser("score")
    here.add_argument("--store", type=Path, required=True)
    here.add_argument("--samples", type=Path, required=True)
    here.add_argument("--models", default=",".join(MODELS))
    here.add_argument("--no-memorization", action="store_true", help="FID, KID and P/R only (minutes, not an hour)")
    args = parser.parse_args()
    {"smoke": smoke, "device": device, "score": score}[args.command](args)


if __name__ == "__main__":
    main()
