"""Improved precision/recall (k-NN manifolds, k=3) and the chunked nearest-neighbour search under it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganforge.metrics import neighbours
from ganforge.metrics.neighbours import nearest
from ganforge.metrics.prc import manifold_radii, precision_recall


def cloud(seed: int, n: int = 300, d: int = 16) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d))).float()


def test_precision_recall_of_identical_sets_is_one_one() -> None:
    x = cloud(0)
    assert precision_recall(x, x.clone()) == (1.0, 1.0)


def test_precision_recall_of_disjoint_far_sets_is_zero_zero() -> None:
    x = cloud(1)
    assert precision_recall(x, cloud(2) + 100.0) == (0.0, 0.0)


def test_half_copied_half_far_fakes_have_precision_one_half_and_partial_recall() -> None:
    real = cloud(3, n=400)
    fake = torch.cat([real[:200], cloud(4, n=200) + 100.0])
    precision, recall = precision_recall(real, fake)
    assert precision == pytest.approx(0.5)
    # the copied half has half the density, so its balls are wider and cover more than half the reals
    assert 0.5 < recall < 1.0


def test_radii_are_distance_to_kth_other_point() -> None:
    points = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]])
    assert manifold_radii(points, k=1).tolist() == [1.0, 1.0, 2.0, 3.0, 4.0]
    assert manifold_radii(points, k=3).tolist() == [6.0, 5.0, 3.0, 5.0, 9.0]


def test_chunked_search_equals_one_shot(monkeypatch: pytest.MonkeyPatch) -> None:
    real, fake = cloud(5, n=257), cloud(6, n=301) * 1.1
    whole = precision_recall(real, fake)
    monkeypatch.setattr(neighbours, "CHUNK_ELEMENTS", 1000)  # ~3 rows per chunk
    assert precision_recall(real, fake) == whole


def test_nearest_finds_exact_copies_at_distance_zero() -> None:
    refs = cloud(7, n=200, d=64) * 30 + 500  # large norms: the expanded |a|^2+|b|^2-2ab form loses digits here
    d, i = nearest(refs[[5, 17]], refs, k=2)
    assert i[:, 0].tolist() == [5, 17]
    assert d[:, 0].tolist() == [0.0, 0.0]
    assert (d[:, 1] > 0).all()
