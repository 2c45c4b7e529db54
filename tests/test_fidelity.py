"""PSNR and SSIM: known values, and SSIM against an independent implementation of Wang et al.'s reference code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from ganforge.metrics.fidelity import gaussian_window, psnr, ssim


def _reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s ssim_index.m for one grey image: filter2 'valid' with an 11x11 Gaussian (sigma 1.5)."""
    window = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    window = np.outer(window, window)
    window /= window.sum()

    def filt(image: np.ndarray) -> np.ndarray:
        return convolve2d(image, np.rot90(window, 2), mode="valid")  # filter2 correlates

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = filt(x), filt(y)
    sigma_x, sigma_y = filt(x * x) - mu_x**2, filt(y * y) - mu_y**2
    sigma_xy = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))
    return float(ssim_map.mean())


def test_ssim_matches_the_reference_implementation_on_real_like_images() -> None:
    rng = np.random.default_rng(0)
    clean = np.clip(np.cumsum(rng.normal(0, 8, (2, 40, 48)), axis=2) + 128, 0, 255).astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    ours = ssim(torch.from_numpy(noisy[:, None]), torch.from_numpy(clean[:, None]))
    expected = [_reference_ssim(n.astype(np.float64), c.astype(np.float64)) for n, c in zip(noisy, clean, strict=True)]
    assert ours.tolist() == pytest.approx(expected, abs=1e-9)
    assert ssim(torch.from_numpy(clean[:, None]), torch.from_numpy(clean[:, None])).tolist() == pytest.approx([1, 1])


def test_ssim_of_colour_images_is_the_mean_over_channels() -> None:
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.integers(0, 256, (1, 3, 16, 16), dtype=np.uint8))
    y = torch.from_numpy(rng.integers(0, 256, (1, 3, 16, 16), dtype=np.uint8))
    per_channel = [ssim(x[:, c : c + 1], y[:, c : c + 1]).item() for c in range(3)]
    assert ssim(x, y).item() == pytest.approx(sum(per_channel) / 3)
    with pytest.raises(ValueError, match="at least 11 px"):
        ssim(x[..., :8, :8], y[..., :8, :8])


def test_psnr_follows_from_the_mean_squared_error() -> None:
    target = torch.full((2, 3, 8, 8), 100, dtype=torch.uint8)
    output = target.clone()
    output[0] += 10  # MSE 100 -> 10 log10(255^2 / 100)
    values = psnr(output, target)
    assert values[0].item() == pytest.approx(10 * math.log10(255**2 / 100)) and math.isinf(values[1].item())
    assert gaussian_window().sum().item() == pytest.approx(1.0)
