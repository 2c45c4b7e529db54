"""What the collapse monitor costs per tick: its hook timed on the default 64 px recipe's generator (Projected GAN's
FastGAN G at --g-width 16), against a store of real images. Prints the one-time setup and the per-tick time (best
and median of 5); compare with the tick's length in the run's log. Usage:
    python benchmarks/collapse_monitor_cost.py STORE.gfs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from ganforge.config import ModelConfig, TrainConfig
from ganforge.data.store import Store
from ganforge.models import build_networks
from ganforge.training.collapse_monitor import collapse_monitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path, help="a 64 px RGB store")
    args = parser.parse_args()
    store = Store(args.store)
    model = ModelConfig(name="projected", z_dim=256, g_width=16)
    config = TrainConfig(model=model, kimg=10)
    generator = build_networks(model, store.manifest.output_shape).generator
    start = time.perf_counter()
    hook = collapse_monitor(config, store, print, torch.device("cpu"))
    setup = time.perf_counter() - start
    state = SimpleNamespace(generator=generator, generator_ema=None, config=config,
                            counters=SimpleNamespace(cur_nimg=0, tick=0))
    hook(state, {})  # warm-up
    times = []
    for _ in range(5):
        start = time.perf_counter()
        hook(state, {})
        times.append(time.perf_counter() - start)
    print(f"setup {setup:.2f} s; per tick {min(times):.3f} s (best of 5), median {sorted(times)[2]:.3f} s")


if __name__ == "__main__":
    main()
