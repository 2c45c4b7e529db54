"""The collapse monitor of this checkout replayed over a run's kept checkpoints, oldest first: what it reads at
each (its own latents, labels and real reference, so the numbers are the ones a run would log) and the warnings it
would print. Use it to see what a change to the monitor's rule says about runs a person has already judged by
their grids (keep every checkpoint with `--snap 1 --keep 1000`). Usage:

    python benchmarks/collapse_monitor_replay.py RUN [--data STORE]

STORE defaults to the store the run's config.json names (relative paths from where the run was started).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

from ganforge.data.store import Store
from ganforge.runs import checkpoint as ckpt
from ganforge.runs.folder import CONFIG_FILE, read_run_config
from ganforge.runs.load import load_generator
from ganforge.training.collapse_monitor import collapse_monitor
from ganforge.training.state import Counters


def one_checkpoint_run(run: Path, checkpoint: Path, into: Path) -> Path:
    """A run folder holding only `checkpoint` (hard-linked), which the loaders read as the run at that point."""
    folder = into / checkpoint.stem
    (folder / ckpt.CHECKPOINT_DIR).mkdir(parents=True)
    shutil.copyfile(run / CONFIG_FILE, folder / CONFIG_FILE)
    os.link(checkpoint, folder / ckpt.CHECKPOINT_DIR / checkpoint.name)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", type=Path, help="the run's store (default: the one its config.json names)")
    args = parser.parse_args()
    config, _ = read_run_config(args.run)
    store = Store(args.data or Path(config.data))
    lines: list[str] = []
    hook = collapse_monitor(config, store, lines.append, torch.device("cpu"))
    counters = Counters()
    print("| kimg | diversity / real | near-twins of 64 | palettes / real | warning |")
    print("|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for checkpoint in ckpt.list_checkpoints(args.run):
            generator, _, nimg = load_generator(one_checkpoint_run(args.run, checkpoint, Path(scratch)))
            saved = ckpt.load_checkpoint(checkpoint)[1]["counters"]
            counters.cur_nimg, counters.tick = nimg, int(saved["tick"])  # the monitor's start rule counts ticks
            state = SimpleNamespace(generator=generator, generator_ema=None, config=config, counters=counters)
            record: dict = {}
            before = len(lines)
            hook(state, record)  # type: ignore[arg-type]
            palette = (f"{record['palette_diversity'] / record['palette_diversity_real']:.2f}"
                       if "palette_diversity" in record else "")
            said = lines[before][:lines[before].index(":")] if len(lines) > before else ""
            print(f"| {nimg / 1000:g} | {record['diversity'] / record['diversity_real']:.2f} | "
                  f"{record['near_twins']} | {palette} | {said} |")


if __name__ == "__main__":
    main()
