"""`ganforge detect eval`: how well a detector separates real images from each generator's, by accuracy (at 0.5),
ROC AUC and average precision, clean and after JPEG re-compression, with the generators it was trained on named
beside each, so that generalisation to an unseen generator shows (Wang et al. 2020)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.detect.augment import jpeg_batch
from ganforge.detect.data import FAKE, REAL, held_out, load_images
from ganforge.detect.train import Detector
from ganforge.plots import plot_curves

JPEG_QUALITY = 75


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative), ties half."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if not len(positives) or not len(negatives):
        return float("nan")
    ranks = _average_ranks(np.concatenate([positives, negatives]))
    return float((ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2)
                 / (len(positives) * len(negatives)))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean of the precision at each positive, ranked by descending score (the area under the PR curve)."""
    order = np.argsort(-scores, kind="stable")
    hits = labels[order] == 1
    if not hits.any():
        return float("nan")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def roc_points(labels: np.ndarray, scores: np.ndarray) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) at every threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="stable")
    hits = labels[order] == 1
    tpr = np.concatenate([[0.0], np.cumsum(hits) / max(1, hits.sum())])
    fpr = np.concatenate([[0.0], np.cumsum(~hits) / max(1, (~hits).sum())])
    return list(zip(fpr.tolist(), tpr.tolist(), strict=True))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2  # 1-based average rank of a tie group
            start = end
    return ranks


def evaluate_detector(detector: Detector, real: list[str], fake: list[str], count: int, out: Path,
                      seed: int = 1_000_000) -> list[dict[str, Any]]:
    """One row per (generator, condition): accuracy, ROC AUC, AP; writes roc.png into `out`. Fakes are drawn
    from seeds the detector's training never used (from `seed` on)."""
    size = detector.config.size
    reals = torch.cat([load_images(p, count, size, REAL, skip=held_out(detector, p)).images for p in real])
    rows, curves = [], {}
    for source in fake:
        fakes = load_images(source, count, size, FAKE, seed).images
        for condition in ("clean", f"jpeg{JPEG_QUALITY}"):
            r, f = (reals, fakes) if condition == "clean" else (jpeg_batch(reals, JPEG_QUALITY),
                                                                  jpeg_batch(fakes, JPEG_QUALITY))
            scores = torch.cat([detector.probabilities(r), detector.probabilities(f)]).numpy()
            labels = np.concatenate([np.zeros(len(r)), np.ones(len(f))])
            rows.append({"generator": source, "seen_in_training": source in detector.config.fake,
                         "condition": condition, "real": len(r), "fake": len(f),
                         "accuracy": float(((scores > 0.5) == labels).mean()), "roc_auc": roc_auc(labels, scores),
                         "average_precision": average_precision(labels, scores)})
            if condition == "clean":
                curves[Path(source).name[:24]] = roc_points(labels, scores)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(curves, out / "roc.png", x_label="false positive rate (y: true positive rate)")
    return rows


def describe_rows(rows: list[dict[str, Any]], trained_on: list[str]) -> str:
    lines = [f"trained on: {', '.join(trained_on)}",
             "| generator | seen in training | condition | accuracy | ROC AUC | AP |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['generator']} | {'yes' if r['seen_in_training'] else 'no'} | {r['condition']} | "
              f"{r['accuracy']:.1%} | {r['roc_auc']:.3f} | {r['average_precision']:.3f} |" for r in rows]
    return "\n".join(lines)
