"""Scaling of `ganforge train` from 1 to N processes (torchrun + DDP, gloo on the CPU, NCCL on GPUs).

Trains the same config with 1, 2, ... N processes (one thread each on the CPU, so N processes use N cores) and
prints the steady-state train img/s (ticks after the first), img/s per process and the per-process efficiency
against one process. Run it on an idle machine:

    python benchmarks/ddp_scaling.py --data anime64.gfs --processes 1 2 -- --model dcgan --batch 64 --kimg 1.5

Arguments after `--` go to `ganforge train` unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def steady_img_per_s(run_parent: Path) -> float:
    (run_dir,) = run_parent.iterdir()
    ticks = [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if "tick" in r]
    if len(ticks) < 2:
        raise SystemExit("train longer: no tick after the first (raise --kimg)")
    # The first tick pays for start-up; the others' images over their seconds.
    return (ticks[-1]["nimg"] - ticks[0]["nimg"]) / sum(r["sec_per_tick"] for r in ticks[1:])


def train(processes: int, data: str, out: Path, train_args: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    launcher = [sys.executable] if processes == 1 else [torchrun, "--nproc-per-node", str(processes)]
    command = [*launcher, "-m", "ganforge", "train", "--data", data, "--out", str(out), "--no-progress",
               "--tick-kimg", "0.5", *train_args]
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return steady_img_per_s(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per process")
    args, rest = parser.parse_known_args()
    train_args = [a for a in rest if a != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: train(n, args.data, Path(tmp) / f"p{n}", train_args, args.threads) for n in args.processes}
    base = results[args.processes[0]] / args.processes[0]
    print(f"ganforge train {' '.join(train_args)} (OMP_NUM_THREADS={args.threads} per process)")
    print("| processes | train img/s (total) | img/s per process | per-process efficiency |")
    print("|---|---|---|---|")
    for n, total in results.items():
        print(f"| {n} | {total:,.0f} | {total / n:,.0f} | {total / n / base:.0%} |")


if __name__ == "__main__":
    main()
