"""Mode collapse seen as it happens: at every tick, how far apart a fixed set of samples lie compared with as many
real images, and a warning when the samples are far closer to one another than real images are.

The measure is the median distance from each image to its nearest other image of the same set, in the features
of a small fixed random convolutional network (metrics/random_conv.py: no download, a few milliseconds for 64
images). Real images give the reference: their own median, pooled over REFERENCE_SETS sets of as many images as
there are samples. A collapsed generator draws a few images over and over: most samples then have a near-twin, and
the median falls towards 0 (the same image 64 times: exactly 0), while a varied set stays near the real images'
value. A G that draws a few variations of each image, not exact copies, keeps more of the median but gives many
samples a near-twin, so TWIN_SHARE of the samples with a near-twin is collapse too.

A near-twin is a sample closer to another than TWIN_DISTANCE of the real images' median: a distance, not a rank
among real pairs. In the network's 512 features the real images' nearest-neighbour distances bunch near their
median (the 5th percentile of 64 anime faces' lies at 0.73-0.84 of it), so the old threshold, closer than 95 % of
64 real images are to theirs, made half of a healthy G's samples twins as soon as they sat 15-20 % closer together
than real faces do: the 64 px faces' runs from 20 kimg on, whose grids show 64 different faces (BENCHMARKS.md,
"Near-twins by distance").

A class-conditional G is measured within each class, against as many real images of each class: drawing one
image per class is collapse even though the classes differ. Colour images are also measured by their palettes
(metrics/palette.py), which the random features under-read: a G drawing every face in one hair colour narrows the
palettes' median to below half of the real images' while keeping most of the features' (BENCHMARKS.md). Samples
come from fixed latents of their own seed under a forked random stream, so the run's trajectory is the one it
would have without the monitor.

The run reacts to the first warning by keeping the newest checkpoint from before the fall (its tick's diversity
still healthy) in `RUN/before-collapse/`, a run folder of one checkpoint (hard-linked, so it costs no copy) that
--keep does not rotate away: `ganforge generate`, `export` and `serve` take it as they take RUN, and
`train --resume RUN/before-collapse --lr-g ...` continues from it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.config import TrainConfig
from ganforge.data.store import Store, to_uint8
from ganforge.metrics.palette import palette_features
from ganforge.metrics.random_conv import RandomConvExtractor
from ganforge.models import family_of
from ganforge.models.family import NOISE_TO_IMAGE_SCHEMES
from ganforge.runs import checkpoint as ckpt
from ganforge.runs.folder import CONFIG_FILE
from ganforge.training.state import TrainingState
from ganforge.whole_files import written_whole

SAMPLES = 64  # samples and real images compared at each tick
REFERENCE_SETS = 8  # sets of SAMPLES real images the reference pools: one set's median moves by several percent
COLLAPSE_RATIO = 0.5  # samples' nearest-neighbour median below this share of the real images' is collapse
START_SHARE = 0.1  # a fresh G draws near-identical images: no warning in the first tenth of the run
# A sample nearer another than this share of the real images' median is a near-twin (real images: 0-10 % of them;
# healthy runs' samples 0-25 %, the most at 2 of 259 ticks of an hour on the 32 px cars; Fashion-MNIST's classes
# drawn as one garment each: 28-41 %; BENCHMARKS.md, "Near-twins by distance") ...
TWIN_DISTANCE = 0.6
TWIN_SHARE = 0.3  # ... and this share of samples with a near-twin is collapse
# Colour samples' palette nearest-neighbour median below this share of the real images' is collapse: grids of one
# palette read 0.34-0.42, the healthiest 0.71-0.80, and two 128 px cars grids 0.52 and 0.56 (BENCHMARKS.md)
PALETTE_RATIO = 0.45
# A fall is said when it starts; while it lasts, once more each time the run trains on by this share of its length
# (a warning at every tick of an hour's run buried everything else the run printed)
REMIND_SHARE = 0.1
BEFORE_COLLAPSE = "before-collapse"


def nearest_neighbour_distances(features: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """Each row's distance to its nearest other row [N]; with `groups` [N], to its nearest other row of its group."""
    distances = torch.cdist(features.double(), features.double(), compute_mode="donot_use_mm_for_euclid_dist")
    distances.fill_diagonal_(float("inf"))
    if groups is not None:
        distances[groups[:, None] != groups[None, :]] = float("inf")
    return distances.min(dim=1).values


def is_collapsed(diversity: float, real: float, twins: int, samples: int) -> bool:
    """Whether samples of this diversity and near-twin count have collapsed, against real images' `real`."""
    return real > 0 and (diversity < COLLAPSE_RATIO * real or twins >= TWIN_SHARE * samples)


def reference_rows(store: Store, labels: torch.Tensor | None,
                   rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor | None]:
    """A set of real images to compare the samples with, and the groups both are measured in: for samples of
    `labels` (each class at least twice), a distinct real image of the same class for each; otherwise SAMPLES
    images of any class, measured as one group."""
    if labels is not None and int(labels.bincount().min()) >= 2:
        wanted = labels.bincount().tolist()
        pools = [np.flatnonzero(store.labels == k) for k in range(len(wanted))]
        if all(len(pool) >= n for pool, n in zip(pools, wanted, strict=True)):
            rows = np.concatenate([rng.choice(pool, n, replace=False) for pool, n in zip(pools, wanted, strict=True)])
            return rows, torch.as_tensor(store.labels[rows])
    return np.sort(rng.permutation(store.manifest.count)[:SAMPLES]), None


def real_reference(store: Store, labels: torch.Tensor | None, seed: int,
                   extractor: RandomConvExtractor) -> tuple[float, float, torch.Tensor | None]:
    """The real images' median nearest-neighbour distance in the features and (for colour images, else 0) in the
    palettes, pooled over REFERENCE_SETS sets drawn by `reference_rows`, and the groups the samples are measured
    in (None: all as one). A store of no more images than one set holds gives one set."""
    rng = np.random.default_rng(seed)
    colour = store.manifest.output_shape[0] == 3
    features, palettes, groups = [], [], None
    for _ in range(REFERENCE_SETS if store.manifest.count > SAMPLES else 1):
        rows, groups = reference_rows(store, labels, rng)
        images = torch.as_tensor(store.uint8_batch(rows))  # one set at a time: 64 images at 1024 px are 200 MB
        features.append(nearest_neighbour_distances(extractor.extract(images)[0], groups))
        if colour:
            palettes.append(nearest_neighbour_distances(palette_features(images), groups))
    palette = float(torch.cat(palettes).median()) if colour else 0.0
    return float(torch.cat(features).median()), palette, groups


def collapse_monitor(config: TrainConfig, store: Store, echo: Callable[[str], None], device: torch.device,
                     run_dir: Path | None = None) -> Callable[[TrainingState, dict[str, Any]], None]:
    """A tick hook adding `diversity` (the samples' median nearest-neighbour distance), `diversity_real` (the real
    images') and `near_twins` (samples closer to another than TWIN_DISTANCE of the real images' median) to the
    tick's log row, for colour images `palette_diversity` and `palette_diversity_real` (the same median over their
    palettes), and printing a warning when the samples have collapsed (`is_collapsed`) or their palettes fall below
    PALETTE_RATIO of the real images' (when a fall starts, then every REMIND_SHARE of the run while it lasts); at the
    first warning, the checkpoint from before the fall is kept in `run_dir`/before-collapse (None: on other ranks)."""
    extractor = RandomConvExtractor(device=device)
    m = store.manifest
    count = min(SAMPLES, m.count)
    labels = torch.arange(count) % config.model.num_classes if config.model.conditional else None
    real, real_palette, real_groups = real_reference(store, labels, config.seed + 5, extractor)
    twin = TWIN_DISTANCE * real
    colour = m.output_shape[0] == 3
    latents = torch.randn(count, config.model.z_dim, generator=torch.Generator().manual_seed(config.seed + 4))
    sample_groups = labels if real_groups is not None else None
    within = " in their class" if sample_groups is not None else ""
    retrain = remedies(config)
    advice = "resume from an earlier checkpoint with a lower --lr-g/--lr-d" + (
        f", or retrain with {', '.join(retrain[:-1])} or {retrain[-1]}" if len(retrain) > 1
        else f", or retrain with {retrain[0]}" if retrain else "")

    def hook(state: TrainingState, record: dict[str, Any]) -> None:
        counters = state.counters  # the monitor's state is theirs: a resumed run goes on as the unbroken one
        images = _samples(state, latents, labels, (m.height, m.width))
        nn_distances = nearest_neighbour_distances(extractor.extract(images)[0], sample_groups)
        diversity = float(nn_distances.median())
        twins = int((nn_distances < twin).sum())
        record.update(diversity=diversity, diversity_real=real, near_twins=twins)
        collapsed = is_collapsed(diversity, real, twins, len(nn_distances))
        narrowed = False
        if colour:
            palette = float(nearest_neighbour_distances(palette_features(images), sample_groups).median())
            record.update(palette_diversity=palette, palette_diversity_real=real_palette)
            narrowed = real_palette > 0 and palette < PALETTE_RATIO * real_palette
        if not (collapsed or narrowed):
            counters.healthy_nimg = counters.cur_nimg
        total = state.config.total_nimg
        started = counters.cur_nimg >= START_SHARE * total and counters.tick > 2
        if not (started and (collapsed or narrowed)):
            return
        # no warning since the last healthy tick (-1 and -1: a run that was never healthy, not yet warned about)
        new_fall = counters.collapse_warned_nimg <= counters.healthy_nimg
        if not (new_fall or counters.cur_nimg - counters.collapse_warned_nimg >= REMIND_SHARE * total):
            return
        counters.collapse_warned_nimg = counters.cur_nimg
        still = "" if new_fall else "still "
        where = ""
        if not counters.collapse_kept:
            counters.collapse_kept = 1  # on every rank, so that their checkpoints agree
            if run_dir is not None:
                where = _keep_before_collapse(run_dir, counters.healthy_nimg)
        shapes = (f"diversity {diversity:.3g}, {diversity / real:.0%} of the real images' {real:.3g}; {twins} of "
                  f"{len(nn_distances)} samples have a near-twin{within}")
        if collapsed:
            what = f"samples are {still}collapsing: {shapes}"
        else:
            what = (f"samples' colours are {still}narrowing: palette diversity {palette:.3g}, "
                    f"{palette / real_palette:.0%} of the real images' {real_palette:.3g} ({shapes})")
        echo(f"{what}. Look at samples/latest.png; if it repeats a few images or colours, {advice}{where}")

    return hook


def remedies(config: TrainConfig) -> list[str]:
    """The flags a retrained run could add against collapse, leaving out what this run already does (a Projected
    GAN run is not told to train Projected GAN)."""
    flags = []
    if config.augment.name == "none":
        flags.append("--augment diffaugment")
    if config.ema_kimg < 10:
        flags.append("--ema-kimg 10")
    # MSGAN's mode-seeking term held where it was measured (BENCHMARKS.md): a conditional dcgan-small's classes on
    # Fashion-MNIST (each one garment without it), and Projected GAN's 32 px cars (a few grey saloons without it).
    # An unconditional DCGAN's 32 px photos collapsed with it too, so it is not named there.
    seeks = config.model.conditional or config.model.name == "projected"
    if seeks and config.loss.mode_seeking == 0 and family_of(config.model.name).scheme in NOISE_TO_IMAGE_SCHEMES:
        flags.append("--mode-seeking 1")
    # A head on the pixels widened the palettes Projected GAN's 32 px faces had narrowed to (BENCHMARKS.md)
    if config.model.name == "projected" and not config.model.pixel_head:
        flags.append("--pixel-head")
    if config.model.conditional:
        flags.append("--no-cond")
    if config.model.name != "projected":
        flags.append("--model projected")
    return flags


def _keep_before_collapse(run_dir: Path, healthy_nimg: int) -> str:
    """Link the newest checkpoint at or before `healthy_nimg` (-1: none) into run_dir/before-collapse/ with the
    run's config; what to tell the user about it."""
    older = [path for path in ckpt.list_checkpoints(run_dir) if ckpt.nimg_of(path) <= healthy_nimg]
    if not older:
        return ". No checkpoint from before the fall is on disk (--snap more often to keep one)"
    source, folder = older[-1], run_dir / BEFORE_COLLAPSE
    (folder / ckpt.CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    for stale in ckpt.list_checkpoints(folder):  # a resumed run's earlier warning
        stale.unlink()
    target = folder / ckpt.CHECKPOINT_DIR / source.name
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, target)
    with written_whole(folder / CONFIG_FILE) as temporary:  # a kill mid-copy leaves no half config.json
        shutil.copyfile(run_dir / CONFIG_FILE, temporary)
    return (f". The checkpoint of kimg {ckpt.nimg_of(source) / 1000:g}, from before the fall, is kept in {folder} "
            f"(`ganforge generate {folder}`, or `ganforge train --resume {folder}` with lower rates)")


@torch.no_grad()
def _samples(state: TrainingState, latents: torch.Tensor, labels: torch.Tensor | None,
             size: tuple[int, int]) -> torch.Tensor:
    """uint8 samples of the sampling generator (its EMA when kept) at the data's size, drawing nothing from the
    run's random streams (a G with noise inputs draws from torch's)."""
    generator = state.generator_ema if state.generator_ema is not None else state.generator
    device = next(generator.parameters()).device
    devices = [device] if device.type == "cuda" else []
    was_training = generator.training
    chunks = []
    with torch.random.fork_rng(devices=devices):
        generator.eval()
        for start in range(0, len(latents), 16):  # 16 at a time: 64 images at 1024 px would not fit on every GPU
            label = None if labels is None else labels[start:start + 16].to(device)
            images = generator(latents[start:start + 16].to(device), label).float()
            if tuple(images.shape[-2:]) != size:  # a growing G mid-way
                images = torch.nn.functional.interpolate(images, size=size, mode="nearest")
            chunks.append(to_uint8(images).cpu())
        generator.train(was_training)
    return torch.cat(chunks)
