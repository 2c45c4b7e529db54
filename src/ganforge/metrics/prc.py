"""Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
Generative Models", section 2).

Each set's manifold is the union of hyperspheres around its feature vectors, radius = distance to the k-th
nearest other vector of the same set (k = 3 in the paper). Precision is the fraction of generated samples inside
the real manifold (quality); recall is the fraction of real samples inside the generated manifold (coverage).
Distances are chunked (neighbours.py), so 10k-50k samples per set run in bounded memory.
"""

from __future__ import annotations

import torch

from ganforge.metrics.neighbours import nearest, within_any_ball

DEFAULT_K = 3


def manifold_radii(features: torch.Tensor, k: int = DEFAULT_K, device: torch.device | str | None = None
                   ) -> torch.Tensor:
    """[N] distance of each vector to its k-th nearest neighbour in the same set (itself excluded)."""
    distances, _ = nearest(features, features, k, exclude_self=True, device=device)
    return distances[:, k - 1]


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = DEFAULT_K,
                     device: torch.device | str | None = None) -> tuple[float, float]:
    """(precision, recall) of generated features `fake` against real features `real`, both [N, D]."""
    if real.shape[0] <= k or fake.shape[0] <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} images per set, "
                         f"got {real.shape[0]} real and {fake.shape[0]} fake")
    precision = within_any_ball(fake, real, manifold_radii(real, k, device), device).double().mean()
    recall = within_any_ball(real, fake, manifold_radii(fake, k, device), device).double().mean()
    return float(precision), float(recall)
