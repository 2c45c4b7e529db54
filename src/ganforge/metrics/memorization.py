"""Is the generator copying its training set? Nearest training neighbours of generated samples, in feature space.

A generated sample's distance to its nearest training image means little on its own; we compare it with how
close real images that were *not* trained on come to the training set (held-out reals, or, without them, each
of a slice of training images against the other training images). A generator that only reproduces the data
distribution sits at about the same distances (median ratio ~1); a copying one has samples closer than almost
any real image is: we flag those below the 1st percentile of the real-real distances ("suspiciously close").

Writes two figures: `nearest_neighbours.png` (rows of sample | its 1..k nearest training images, the closest
samples first) and `distances.png` (histograms of both distance distributions with the 1% threshold).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.metrics.cache import default_cache_dir
from ganforge.metrics.evaluate import features_of
from ganforge.metrics.features import FeatureExtractor
from ganforge.metrics.figures import image_rows, overlaid_histograms
from ganforge.metrics.neighbours import nearest
from ganforge.metrics.sources import GeneratorSource, ImageSource, SourceLike, as_source

SUSPICIOUS_PERCENTILE = 1.0


@dataclass
class MemorizationSummary:
    n_generated: int
    n_train: int
    n_real_baseline: int
    baseline: str  # "held-out" or "train-leave-one-out"
    median_generated_distance: float  # generated -> nearest training image
    median_real_distance: float  # held-out real -> nearest training image
    median_ratio: float  # the first over the second; ~1 when not copying, -> 0 when copying
    suspicious_threshold: float  # 1st percentile of the real-real distances
    fraction_suspicious: float  # generated samples at or below that threshold
    n_suspicious: int
    closest: list[dict[str, Any]] = field(default_factory=list)  # the rows drawn: sample, neighbours, distances
    pairs_png: str = ""
    histogram_png: str = ""
    extractor: str = ""
    extractor_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def memorization_report(generated: SourceLike, train: SourceLike, extractor: FeatureExtractor,
                        out_dir: str | os.PathLike[str], *, heldout: SourceLike | None = None, n_generated: int = 1000,
                        n_train: int = 10_000, n_heldout: int = 1000, neighbours: int = 3, rows: int = 8,
                        batch_size: int = 50, progress: bool = False,
                        cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True,
                        generated_features: torch.Tensor | None = None) -> MemorizationSummary:
    """Compare generated-to-train with real-to-train nearest-neighbour distances; write the two PNGs.

    generated, train, heldout: anything evaluate's sources accept (store, folder, fake_batches callable).
    Without `heldout`, the first n_heldout training images are each compared with the other training images.
    The train and held-out features are cached as evaluate's real features are (cache_dir: default
    $GANFORGE_CACHE or ~/.cache/ganforge), since they are most of the cost: 10,000 Inception passes on the CPU.
    generated_features: the first images' features of `generated`, already extracted with this extractor (by the
    FID that ran before, say): used instead of extracting them again, so `generated` is only drawn for the figure.
    """
    gen_source, train_source = as_source(generated), as_source(train)
    if isinstance(gen_source, GeneratorSource):
        gen_source.keep_images = True  # the figure shows the very samples that were measured

    directory = (cache_dir if cache_dir is not None else default_cache_dir()) if use_cache else None

    def features(source: ImageSource, n: int, name: str) -> torch.Tensor:
        return features_of(source, extractor, n, batch_size, directory, progress, name)[0].features

    train_f = features(train_source, n_train, "train")
    if generated_features is None:
        gen_f = features(gen_source, n_generated, "generated")
    else:
        if generated_features.ndim != 2 or generated_features.shape[0] < n_generated \
                or generated_features.shape[1] != train_f.shape[1]:
            raise ValueError(f"generated_features is {tuple(generated_features.shape)}; the report compares "
                             f"{n_generated} (n_generated) rows of {extractor.name}'s {train_f.shape[1]} features")
        gen_f = generated_features[:n_generated]
    gen_d, gen_i = nearest(gen_f, train_f, neighbours, device=extractor.device)
    if heldout is not None:
        real_d, _ = nearest(features(as_source(heldout), n_heldout, "held-out"), train_f, 1,
                            device=extractor.device)
        baseline = "held-out"
    else:
        h = min(n_heldout, train_f.shape[0] - 1)
        real_d, _ = nearest(train_f[:h], train_f, 1, exclude_self=True, device=extractor.device)
        baseline = "train-leave-one-out"
    gen_nn, real_nn = gen_d[:, 0].numpy(), real_d[:, 0].numpy()

    threshold = float(np.percentile(real_nn, SUSPICIOUS_PERCENTILE))
    suspicious = gen_nn <= threshold
    median_real = float(np.median(real_nn))
    summary = MemorizationSummary(
        n_generated=len(gen_nn), n_train=train_f.shape[0], n_real_baseline=len(real_nn), baseline=baseline,
        median_generated_distance=float(np.median(gen_nn)), median_real_distance=median_real,
        median_ratio=float(np.median(gen_nn)) / median_real if median_real > 0 else float("inf"),
        suspicious_threshold=threshold, fraction_suspicious=float(suspicious.mean()),
        n_suspicious=int(suspicious.sum()), extractor=extractor.name, extractor_hash=extractor.file_hash)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = np.argsort(gen_nn, kind="stable")[:rows]
    summary.closest = [{"sample": int(s), "neighbours": gen_i[s].tolist(),
                        "distances": [round(float(d), 6) for d in gen_d[s]], "suspicious": bool(suspicious[s])}
                       for s in order]
    if generated_features is not None and isinstance(gen_source, GeneratorSource):
        # Its images exist only as drawn, and none were: draw the figure's, up to the last one it shows (G alone)
        for _ in gen_source.batches(batch_size, int(order.max()) + 1):
            pass
    _draw_pairs(gen_source, train_source, order, gen_i[order].numpy(), gen_d[order].numpy(),
                out / "nearest_neighbours.png")
    overlaid_histograms(
        [(f"held-out real -> train (n={len(real_nn)})", real_nn, (40, 90, 200)),
         (f"generated -> train (n={len(gen_nn)})", gen_nn, (230, 120, 20))],
        out / "distances.png", title=f"nearest-training-neighbour distance in {extractor.name} features",
        x_label="distance to nearest training image", marker=("1% real", threshold))
    summary.pairs_png, summary.histogram_png = str(out / "nearest_neighbours.png"), str(out / "distances.png")
    return summary


def _draw_pairs(gen_source: ImageSource, train_source: ImageSource, samples: np.ndarray,
                neighbour_idx: np.ndarray, neighbour_d: np.ndarray, path: Path) -> None:
    sample_images = gen_source.images(samples)
    flat = train_source.images(neighbour_idx.reshape(-1))
    neighbour_images = flat.reshape(*neighbour_idx.shape, *flat.shape[1:])
    rows, labels = [], []
    for r, s in enumerate(samples):
        rows.append([sample_images[r], *neighbour_images[r]])
        labels.append([f"gen {int(s)}", *(f"d={d:.3g}" for d in neighbour_d[r])])
    image_rows(rows, labels, path)
