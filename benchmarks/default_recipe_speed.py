"""Where the default CPU recipe's step goes: `projected-cpu` (FastGAN G at g width 16, Projected GAN D on the frozen
EfficientNet-Lite0, batch 16) at 64 px in bf16 with --channels-last, as `ganforge train` picks it on a CPU with
bf16 arithmetic (AVX512-BF16 or AMX); `--precision fp32` for the others, where `train` runs fp32.

    python benchmarks/default_recipe_speed.py --data anime.gfs      # a prepared 64 px store
    python benchmarks/default_recipe_speed.py                       # random 64 px images
    python benchmarks/default_recipe_speed.py --precision fp32 --no-channels-last --loop-only
    python benchmarks/default_recipe_speed.py --data anime.gfs --features lite1 --feature-resolutions 0,96,128
    python benchmarks/default_recipe_speed.py --data anime.gfs --features lite1 --batches 16,32

With `--feature-resolutions`, the loop alone at each size D's feature network sees the images at (0: their own),
in turns over `--rounds` rounds in one process, and each one's img/s against the first's; `--batches` the same
over batch sizes.

Prints the training loop's img/s (ticks after the first) and the wall-clock milliseconds of each part of a step,
measured apart on the same networks: G forward and backward, the feature network forward (D's step, twice) and
forward + backward to its input (G's step), the random projections and the four heads forward + backward. The
parts need not add up to the step exactly (the loop also draws batches, augments, keeps statistics, updates Adam
and the EMA), but they show what to work on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ganforge.api import _path_of_keyword
from ganforge.data.store import Manifest, content_fingerprint, write_store
from ganforge.device import has_fast_bf16
from ganforge.training import train
from ganforge.training.run_config import RunRequest, resolve_run

BATCH = 16


def milliseconds(work: Callable[[], object], repeats: int = 8) -> float:
    work()
    work()
    start = time.perf_counter()
    for _ in range(repeats):
        work()
    return (time.perf_counter() - start) / repeats * 1000


def loop_speed(data: Path, kimg: float, precision: str = "bf16", channels_last: bool = True,
               **model: object) -> tuple[float, torch.nn.Module, torch.nn.Module]:
    """img/s of `train()` with the recipe (`model`: settings of `--model`'s group changed), and its networks (as
    the run built them)."""
    out = Path(tempfile.mkdtemp())
    given = {"data": str(data), "precision": precision, "channels_last": channels_last, "kimg": kimg,
             "tick_kimg": kimg / 4, "snap": 1000, "out": str(out), "grid_size": 16, **model}
    resolved = resolve_run(RunRequest({_path_of_keyword(k): v for k, v in given.items()}, preset="projected-cpu"))
    assert resolved.store is not None
    rows: list[tuple[float, float]] = []
    (out / "run").mkdir()
    state = train(resolved.config, out / "run", resolved.store, progress=False, echo=lambda _: None,
                  tick_hooks=(lambda state, record: rows.append((record["kimg"], record["sec_per_tick"])),))
    timed = rows[1:]  # the first tick pays for warm-up
    return (timed[-1][0] - rows[0][0]) * 1000 / sum(s for _, s in timed), state.generator, state.discriminator


def part_times(G: torch.nn.Module, D: torch.nn.Module, z_dim: int, bf16: bool = True,
               channels_last: bool = True) -> dict[str, float]:
    z = torch.randn(BATCH, z_dim)
    layout = torch.channels_last if channels_last else torch.contiguous_format  # as the run fed D
    reals = (torch.rand(BATCH, 3, 64, 64) * 2 - 1).contiguous(memory_format=layout)

    def autocast() -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def g_forward_backward() -> None:
        with autocast():
            images = G(z)
        images.float().sum().backward()

    def features_forward() -> None:
        with torch.no_grad(), autocast():
            D.feature_network.features(reals)

    def features_forward_backward() -> None:
        x = reals.clone().requires_grad_()
        with autocast():
            taps = D.feature_network.features(x)
        sum(t.float().sum() for t in taps).backward()

    with torch.no_grad(), autocast():
        taps = [t.detach() for t in D.feature_network.features(reals)]

    def projection_and_heads() -> None:
        with autocast():
            mixed = D.projection(taps)
            logits = torch.cat([head(x, None) for head, x in zip(D.heads, mixed, strict=True)], dim=1)
        logits.float().sum().backward()

    return {"G forward + backward": milliseconds(g_forward_backward),
            "features forward (no grad)": milliseconds(features_forward),
            "features forward + backward to the input": milliseconds(features_forward_backward),
            "projections + heads forward + backward": milliseconds(projection_and_heads)}


def random_store(path: Path) -> Path:
    images = np.random.default_rng(0).integers(0, 256, (512, 3, 64, 64), dtype=np.uint8)
    labels = np.zeros(len(images), np.int64)
    write_store(path, images, labels, Manifest(len(images), 3, 64, 64, [], content_fingerprint(images, labels)))
    return path


def compare_loops(data: Path, args: argparse.Namespace, setting: str, values: list[int]) -> None:
    """The loop alone at each value of one `train` setting, in turns over `args.rounds` rounds in one process."""
    speeds: dict[int, list[float]] = {value: [] for value in values}
    for _ in range(args.rounds):
        for value in values:
            speeds[value].append(loop_speed(data, args.kimg, args.precision, args.channels_last,
                                            features=args.features, **{setting: value})[0])
    print(f"command: python {' '.join(sys.argv)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.precision}, {args.features}, "
          "rounds in turn")
    first = max(speeds[values[0]])
    for value, measured in speeds.items():
        shown = ", ".join(f"{v:.1f}" for v in measured)
        label = value if value or setting != "feature_resolution" else "own size"
        print(f"  {setting.replace('_', ' ')} {label:>8}: {shown} img/s; best {max(measured) / first:.2f}x "
              f"the first's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a 64 px store (default: random images)")
    parser.add_argument("--kimg", type=float, default=0.64, help="training length measured (4 ticks)")
    parser.add_argument("--precision", choices=("bf16", "fp32"),
                        default="bf16" if has_fast_bf16(torch.device("cpu")) else "fp32")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--loop-only", action="store_true", help="the loop's img/s without the parts")
    parser.add_argument("--features", choices=("lite0", "lite1", "lite2"), default="lite0")
    parser.add_argument("--feature-resolutions", help="comma-separated sizes to compare the loop at, e.g. 0,96,128")
    parser.add_argument("--batches", help="comma-separated batch sizes to compare the loop at, e.g. 16,32")
    parser.add_argument("--rounds", type=int, default=2, help="with --feature-resolutions or --batches: turns of each")
    args = parser.parse_args()
    data = args.data or random_store(Path(tempfile.mkdtemp()) / "random.gfs")
    for setting, listed in (("feature_resolution", args.feature_resolutions), ("batch", args.batches)):
        if listed:
            compare_loops(data, args, setting, [int(v) for v in listed.split(",")])
            return
    speed, G, D = loop_speed(data, args.kimg, args.precision, args.channels_last, features=args.features)
    G.train()
    D.train()
    layout = "channels-last" if args.channels_last else "contiguous"
    print(f"command: python {' '.join(sys.argv)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}; "
          f"batch {BATCH}, 64 px, {args.precision}, {layout}")
    print(f"training loop: {speed:.1f} img/s ({BATCH / speed * 1000:.0f} ms a step)")
    if args.loop_only:
        return
    for part, ms in part_times(G, D, 256, args.precision == "bf16", args.channels_last).items():
        print(f"  {part:45s} {ms:7.1f} ms")


if __name__ == "__main__":
    main()
