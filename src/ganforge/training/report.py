"""What a tick leaves behind: the status line, the log.jsonl row, sample grids and the loss plot."""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ganforge.config import TrainConfig
from ganforge.data.store import Store, to_float, to_uint8
from ganforge.errors import TrainingDiverged
from ganforge.images import enlarge_small, make_grid, save_png
from ganforge.plots import plot_curves, plot_panels
from ganforge.training.runlog import RunLog
from ganforge.training.state import TrainingState

# Adds entries to the tick's log record. Runs on every rank at the same tick (so a hook may use collectives,
# e.g. sharded metrics); only rank 0's record is written.
TickHook = Callable[[TrainingState, dict[str, Any]], None]


@dataclass(frozen=True)
class Previews:
    """What every tick's sample grids are made from, fixed for the whole run."""

    latents: torch.Tensor  # [grid_size, z_dim], from their own seed: the same grid at every tick and on resume
    labels: torch.Tensor | None  # [grid_size] for conditional runs, cycling through the classes: one per column
    reals: torch.Tensor  # [<= 32, C, H, W] the first reals, which autoencoders reconstruct
    # Image-to-image runs: fixed inputs, held-out ones first, shown as input | output (| target, for pairs).
    inputs: torch.Tensor | None = None  # [<= 16, C_A, H_A, W_A]
    targets: torch.Tensor | None = None  # [<= 16, C_B, H_B, W_B]; None for unpaired domains


TRANSLATION_ROWS = 16  # pairs in an image-to-image run's sample grid


def previews(config: TrainConfig, store: Store, run_dir: Path | None) -> Previews:
    """The run's previews; also writes reals.png (the first reals) into `run_dir` (rank 0's) if it is missing."""
    side = "b" if store.manifest.two_sided else "a"
    count = len(store.side(side))
    if run_dir is not None and not (run_dir / "reals.png").exists():
        grid = make_grid(store.uint8_batch(np.arange(min(config.grid_size, count)), side))
        save_png(enlarge_small(grid), run_dir / "reals.png")  # enlarged as the sample grids are
    generator = torch.Generator().manual_seed(config.seed + 2)
    latents = torch.randn(config.grid_size, config.model.z_dim, generator=generator)
    labels = torch.arange(config.grid_size) % config.model.num_classes if config.model.conditional else None
    reals = to_float(store.uint8_batch(np.arange(min(32, count)), side))
    if not store.manifest.two_sided:
        return Previews(latents, labels, reals)
    # The held-out rows (the store's last) show what G does on images it never trained on.
    rows = np.arange(store.manifest.count)[::-1][:min(TRANSLATION_ROWS, config.grid_size)].copy()
    targets = to_float(store.uint8_batch(rows, "b")) if store.manifest.pairing == "paired" else None
    return Previews(latents, labels, reals, to_float(store.uint8_batch(rows)), targets)


def advance_tick(state: TrainingState, seconds: float) -> None:
    """The bookkeeping of a tick, which every rank does; the reporting below is rank 0's alone."""
    state.counters.tick += 1
    state.counters.tick_start_nimg = state.counters.cur_nimg
    state.counters.train_seconds += seconds
    state.stats.reset()


def tick_means(state: TrainingState) -> dict[str, float]:
    """The tick's mean statistics (every rank, after the all-reduce), refusing to go on from non-finite losses."""
    means = state.stats.means()
    if not all(v == v and abs(v) != float("inf") for k, v in means.items() if k.startswith("loss")):
        raise TrainingDiverged(
            f"the loss became non-finite during the tick ending at kimg {state.counters.cur_nimg / 1000:.1f} "
            f"(loss_d={means.get('loss_d')}, loss_g={means.get('loss_g')}); resume from the last checkpoint with lower "
            "--lr-g/--lr-d: `ganforge train --resume RUN --lr-d ...`.")
    return means


def tick_record(state: TrainingState, means: dict[str, float], seconds: float, session_nimg: int) -> dict[str, Any]:
    """The tick's log row, built after `advance_tick`; tick hooks may add to it."""
    counters = state.counters
    return {
        "tick": counters.tick,
        "nimg": counters.cur_nimg,
        "kimg": counters.cur_nimg / 1000,
        "time_s": round(counters.train_seconds, 3),
        "img_per_s": session_nimg / seconds if seconds > 0 else 0.0,
        "sec_per_tick": seconds,
        # This process's share of the tick: after a resume mid-tick, the images before the stop took other time.
        "sec_per_kimg": seconds / (session_nimg / 1000) if session_nimg else 0.0,
        **means,
        "peak_mem_gb": _peak_memory_gb(state.stats.device),
        "lr_g": state.opt_g.param_groups[0]["lr"],
        "lr_d": state.opt_d.param_groups[0]["lr"],
        "augment_p": state.augment.probability,
    }


def write_tick(state: TrainingState, run_dir: Path, log: RunLog, record: dict[str, Any], previews: Previews) -> None:
    """Rank 0's part of a tick: the sample grids, the log row and the loss plot."""
    grid = _write_samples(state, run_dir, previews)
    log.append(record)
    log.image("samples", grid, state.counters.cur_nimg)
    rows = [r for r in log.records() if "tick" in r]
    # A phase without D (SRGAN's pre-training) logs no D or adversarial G loss: those curves start later.
    plot_curves({name: [(r["kimg"], r[name]) for r in rows if name in r] for name in ("loss_d", "loss_g")},
                run_dir / "loss.png")
    plot_panels(metric_panels(rows), run_dir / "metrics.png")


# metrics.png, one panel each: (title, the log keys drawn in it). FID/KID appear once --metrics logged them.
METRIC_PANELS = (("FID", ("fid",)), ("KID", ("kid",)),
                 ("Diversity: samples vs real images", ("diversity", "diversity_real")),
                 ("Palette diversity: samples vs real images", ("palette_diversity", "palette_diversity_real")),
                 ("D's outputs", ("d_real", "d_fake")),
                 ("D's accuracy", ("acc_real", "acc_fake")), ("ADA p", ("augment_p",)),
                 ("Mode-seeking term (lower: more varied)", ("mode_seeking",)), ("img/s", ("img_per_s",)))


def metric_panels(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """The panels of metrics.png that have data: a run without --metrics has no FID panel, one without ADA no
    p panel (p stays 0 without augmentation, and 1 under DiffAugment, which applies every op to every image)."""
    panels = {}
    for title, keys in METRIC_PANELS:
        series = {key: [(float(r["kimg"]), float(r[key])) for r in rows if isinstance(r.get(key), int | float)]
                  for key in keys}
        values = {y for points in series.values() for _, y in points}
        if values - {0.0} and not (keys == ("augment_p",) and values == {1.0}):
            panels[title] = series
    return panels


@torch.no_grad()
def write_early_samples(state: TrainingState, run_dir: Path, previews: Previews) -> Path:
    """The first sample grid, before the first tick: something to look at within the first minute. It draws
    nothing from the run's random streams (a G with noise inputs draws from torch's), so the run goes on exactly
    as it would have without it."""
    devices = [state.stats.device] if state.stats.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        _write_samples(state, run_dir, previews)
    return run_dir / "samples" / "latest.png"


def _write_samples(state: TrainingState, run_dir: Path, previews: Previews) -> Image.Image:
    generator = state.generator_ema if state.generator_ema is not None else state.generator
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    if previews.inputs is not None:
        outputs = generator(previews.inputs.to(device)).float().cpu()
        generator.train(was_training)
        shown = [previews.inputs, outputs] + ([] if previews.targets is None else [previews.targets])
        grid = enlarge_small(make_grid(translation_rows(shown), len(shown)))
        return _save_grid(state, run_dir, grid)
    latents = previews.latents.split(256)
    labels = previews.labels.split(256) if previews.labels is not None else [None] * len(latents)
    images = torch.cat([generator(z.to(device), y if y is None else y.to(device))
                        for z, y in zip(latents, labels, strict=True)])
    generator.train(was_training)
    columns = state.config.model.num_classes if state.config.model.conditional else None
    if images.shape[-1] < previews.reals.shape[-1]:  # a growing G at a low resolution: enlarge for display
        images = torch.nn.functional.interpolate(images, size=previews.reals.shape[-2:], mode="nearest")
    grid = _save_grid(state, run_dir, enlarge_small(make_grid(to_uint8(images), columns)))
    if state.encoder is not None:
        _write_reconstructions(state, run_dir, previews.reals.to(device))
    return grid


def _save_grid(state: TrainingState, run_dir: Path, grid: Image.Image) -> Image.Image:
    text = {"kimg": f"{state.counters.cur_nimg / 1000:.1f}", "seed": str(state.config.seed)}
    save_png(grid, run_dir / "samples" / f"fakes-{state.counters.cur_nimg:010d}.png", text)
    save_png(grid, run_dir / "samples" / "latest.png", text)
    return grid


def translation_rows(columns: list[torch.Tensor]) -> torch.Tensor:
    """uint8 [K N, 3, H, W] from K columns of N images (input, output and, for pairs, target): row by row, inputs
    enlarged to the output's size and grey shown as RGB, for a K-column grid."""
    size = columns[1].shape[-2:]
    shown = [torch.nn.functional.interpolate(images, size=size, mode="nearest") if images.shape[-2:] != size
             else images for images in columns]
    shown = [images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images for images in shown]
    return to_uint8(torch.stack(shown, dim=1).flatten(0, 1))


@torch.no_grad()
def _write_reconstructions(state: TrainingState, run_dir: Path, reals: torch.Tensor) -> None:
    """Autoencoders: the first reals (odd columns) beside their reconstructions (even columns)."""
    assert state.encoder is not None
    state.encoder.eval(), state.generator.eval()
    pairs = torch.stack([reals, state.generator(state.encoder(reals))], dim=1).flatten(0, 1)
    state.encoder.train(), state.generator.train()
    save_png(make_grid(to_uint8(pairs), 16), run_dir / "samples" / "reconstructions.png")


def status_line(r: dict[str, Any]) -> str:
    growing = "".join(f" {key} {r[key]:.3g}" for key in ("lod", "minibatch") if key in r)
    # DiffAugment logs p 1 at every tick: only an adapting p (ADA's, below 1) tells the user anything
    extras = "".join(f" {label} {r[key]:.4g}" for key, label in (("loss_recon", "recon"), ("mode_seeking", "ms"),
                                                                 ("augment_p", "p"),
                                                                 ("fid", "FID"), ("kid", "KID"), ("precision", "P"),
                                                                 ("recall", "R"), ("is", "IS"))
                     if r.get(key) and not (key == "augment_p" and r[key] >= 1.0))
    adversarial = (f"loss_d {r['loss_d']:.3f} loss_g {r['loss_g']:.3f} D(x) {r['d_real']:.2f} D(G(z)) "
                   f"{r['d_fake']:.2f} acc real {r['acc_real']:.0%} fake {r['acc_fake']:.0%}" if "loss_d" in r
                   else "D not training yet")  # SRGAN's pre-training
    return (f"tick {r['tick']:<4d} kimg {r['kimg']:<8.1f}{growing} time {duration_text(r['time_s'])} "
            f"sec/tick {r['sec_per_tick']:<6.1f} sec/kimg {r['sec_per_kimg']:<6.2f} img/s {r['img_per_s']:<6.0f} "
            f"{adversarial}{extras} mem {r['peak_mem_gb']:.2f}GB")


def duration_text(seconds: float) -> str:
    """12m05s, or 1h02m05s."""
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
