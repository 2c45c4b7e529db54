"""FID: agrees with the textbook scipy.linalg.sqrtm formula, is exactly 0 for identical sets, never negative."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from ganforge.metrics.fid import feature_statistics, fid_from_features, frechet_distance


def reference_fid(x: np.ndarray, y: np.ndarray) -> float:
    """The formula as Heusel et al.'s TTUR code writes it, in numpy/scipy (independent of ours)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root.real))


def features(seed: int, n: int, d: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated features, like a network's
    return (rng.normal(size=(n, d)) ** 2 * scale) @ mixing + shift


@pytest.mark.parametrize(("n", "d"), [(400, 64), (200, 128), (1000, 16)])
def test_fid_matches_scipy_sqrtm_reference_to_1e6_relative(n: int, d: int) -> None:
    x, y = features(0, n, d), features(1, n, d, shift=0.3, scale=1.2)
    ours = fid_from_features(torch.from_numpy(x), torch.from_numpy(y))
    assert ours == pytest.approx(reference_fid(x, y), rel=1e-6)


def test_fid_of_rank_deficient_sets_matches_reference() -> None:
    # fewer samples than dimensions (n < d), as 500 images in 2048-d Inception features
    x, y = features(2, 40, 96), features(3, 40, 96, shift=0.1)
    ours = fid_from_features(torch.from_numpy(x), torch.from_numpy(y))
    assert ours == pytest.approx(reference_fid(x, y), rel=1e-6)


@pytest.mark.parametrize(("n", "d", "shift"), [(500, 64, 0.0), (30, 128, 0.0), (300, 32, 1e3)])
def test_fid_of_a_set_with_itself_is_zero_and_not_negative(n: int, d: int, shift: float) -> None:
    x = torch.from_numpy(features(4, n, d, shift=shift))
    fid = fid_from_features(x, x)
    assert 0.0 <= fid < 1e-6


def test_fid_is_symmetric_and_grows_with_the_mean_shift() -> None:
    x, y = torch.from_numpy(features(5, 300, 32)), torch.from_numpy(features(6, 300, 32))
    assert fid_from_features(x, y) == pytest.approx(fid_from_features(y, x), rel=1e-9)
    assert fid_from_features(x, y + 0.5) > fid_from_features(x, y)


def test_feature_statistics_are_float64_mean_and_unbiased_covariance() -> None:
    x = features(7, 100, 8).astype(np.float32)
    mu, sigma = feature_statistics(torch.from_numpy(x))
    assert mu.dtype == sigma.dtype == torch.float64
    np.testing.assert_allclose(mu.numpy(), x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-12)


def test_fid_rejects_a_sigma_that_is_not_a_covariance() -> None:
    mu, sigma = torch.zeros(3, dtype=torch.float64), torch.diag(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64))
    broken = torch.diag(torch.tensor([-5.0, 1.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="not PSD"):
        frechet_distance(mu, sigma, mu, broken)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(mu, sigma * float("nan"), mu, sigma)
