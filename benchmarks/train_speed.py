"""Training throughput of ganforge's loop on this machine: img/s for a model, resolution and batch.

Runs the real `ganforge train` loop (prepare-free: a random uint8 store in a temp dir) and reads img/s from
the run's log, skipping the first tick (warm-up). Usage:
    python benchmarks/train_speed.py --model dcgan --resolution 32 64 --batch 64 --kimg 6
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from ganforge.config import ModelConfig, TrainConfig
from ganforge.data.store import Manifest, Store, content_fingerprint, write_store
from ganforge.training.loop import train


def random_store(path: Path, resolution: int, channels: int = 3, count: int = 2048) -> Store:
    images = np.random.default_rng(0).integers(0, 256, (count, channels, resolution, resolution), dtype=np.uint8)
    labels = np.zeros(count, np.int64)
    write_store(path, images, labels, Manifest(count, channels, resolution, resolution, [],
                                               content_fingerprint(images, labels)))
    return Store(path)


def measure(model: str, resolution: int, batch: int, kimg: float, device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = random_store(Path(tmp) / "bench.gfs", resolution)
        config = TrainConfig(data=str(store.path), model=ModelConfig(name=model), kimg=kimg, batch=batch,
                             tick_kimg=kimg / 3, snap=1000, device=device)
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        train(config, run_dir, store, progress=False, echo=lambda _: None)
        rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        timed = rows[1:]  # the first tick includes warm-up
        nimg = timed[-1]["nimg"] - rows[0]["nimg"]
        seconds = sum(r["sec_per_kimg"] * (r["nimg"] - p["nimg"]) / 1000 for p, r in zip(rows, timed, strict=False))
        return nimg / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dcgan")
    parser.add_argument("--resolution", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--kimg", type=float, default=6.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for resolution in args.resolution:
        img_per_s = measure(args.model, resolution, args.batch, args.kimg, args.device)
        print(f"{args.model} {resolution}px batch {args.batch}: {img_per_s:.0f} train img/s")


if __name__ == "__main__":
    main()
