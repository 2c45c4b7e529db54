"""KID: the unbiased polynomial-kernel MMD^2 of Bińkowski et al., checked against an explicit numpy formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganforge.metrics.kid import kernel_inception_distance


def reference_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Eq. 2 written out: means of k over distinct pairs within each set, minus twice the cross mean."""
    d, m = x.shape[1], x.shape[0]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    off_diagonal = ~np.eye(m, dtype=bool)
    return float(k(x, x)[off_diagonal].mean() + k(y, y)[off_diagonal].mean() - 2 * k(x, y).mean())


def reference_kid(x: np.ndarray, y: np.ndarray, subsets: int, size: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)  # the documented draw order: real subset, then fake subset
    values = []
    for _ in range(subsets):
        xi = rng.choice(len(x), size, replace=False)
        yi = rng.choice(len(y), size, replace=False)
        values.append(reference_mmd2(x[xi], y[yi]))
    return float(np.mean(values)), float(np.std(values))


def test_kid_matches_explicit_numpy_formula_to_1e6_relative() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 32)), rng.normal(0.2, 1.1, size=(250, 32))
    mean, std, size = kernel_inception_distance(torch.from_numpy(x), torch.from_numpy(y), 20, 100, seed=3)
    ref_mean, ref_std = reference_kid(x, y, 20, 100, seed=3)
    assert size == 100
    assert mean == pytest.approx(ref_mean, rel=1e-6)
    assert std == pytest.approx(ref_std, rel=1e-6)


def test_kid_subset_size_is_clipped_to_the_smaller_set() -> None:
    rng = np.random.default_rng(1)
    x, y = torch.from_numpy(rng.normal(size=(80, 8))), torch.from_numpy(rng.normal(size=(50, 8)))
    _, _, size = kernel_inception_distance(x, y, num_subsets=5, subset_size=1000)
    assert size == 50


def test_kid_of_identical_sets_is_about_zero_and_far_below_a_shifted_set() -> None:
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.normal(size=(500, 64)))
    same, _, _ = kernel_inception_distance(x, x, num_subsets=3, subset_size=500)
    shifted, _, _ = kernel_inception_distance(x, x + 0.5, num_subsets=3, subset_size=500)
    # Not exactly 0: the cross term also pairs each point with itself, so for X = Y the estimate is
    # -2/(m-1) * (mean k(x_i, x_i) - mean k(x_i, x_j)), an O(1/m) negative number.
    k = (x @ x.T / 64 + 1) ** 3
    m = 500
    expected = -2 / (m - 1) * float(k.diagonal().mean() - k.mean())
    assert same == pytest.approx(expected, rel=1e-9)
    assert abs(same) < 0.05 * shifted


def test_kid_is_reproducible_for_a_seed() -> None:
    rng = np.random.default_rng(3)
    x, y = torch.from_numpy(rng.normal(size=(200, 8))), torch.from_numpy(rng.normal(size=(200, 8)) + 0.1)
    first = kernel_inception_distance(x, y, 10, 50, seed=7)
    assert kernel_inception_distance(x, y, 10, 50, seed=7) == first
    assert kernel_inception_distance(x, y, 10, 50, seed=8) != first
