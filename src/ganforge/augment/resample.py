"""Per-sample separable resampling: the one geometric primitive both augmentation pipelines share.

Every geometric op here (flip, 90-degree rotation after a transpose, integer translation, isotropic and
anisotropic scaling) maps each output axis onto one input axis, so an image is resampled by two batched matrix
products, out = R_y @ x @ R_x^T, with R_y [B, H, H] and R_x [B, W, W] holding linear-interpolation weights.
Compared with `grid_sample` this is exact where the source coordinates are integers (a flip or shift reproduces
the pixels bit for bit), differentiable to any order (R1 through the augmentation), and deterministic on CUDA
(a matmul's backward uses no atomics). Note: with TF32 matmuls enabled (`torch.backends.cuda.matmul.allow_tf32`)
the products round to ~1e-3, which D does not notice but makes the exactness claims above approximate.
"""

from __future__ import annotations

from typing import Literal

import torch

Padding = Literal["reflection", "zeros"]


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror integer-valued indices into [0, size) without repeating the edge pixel (numpy's 'reflect')."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    folded = torch.remainder(index, period)
    return torch.where(folded > size - 1, period - folded, folded)


def axis_weights(source: torch.Tensor, size: int, padding: Padding) -> torch.Tensor:
    """Interpolation matrix [B, n_out, size] whose row o reads the input axis at pixel `source[b, o]` (float).

    Linear interpolation between the two neighbouring pixels; outside [0, size) the taps are mirrored
    ("reflection") or read as 0 ("zeros", i.e. mid-grey for images in [-1, 1]).
    """
    lower = source.floor()
    frac = (source - lower).unsqueeze(-1)
    taps = torch.arange(size, device=source.device, dtype=source.dtype)

    def one_hot(index: torch.Tensor) -> torch.Tensor:
        if padding == "reflection":
            index = _reflect(index, size)
        return (index.unsqueeze(-1) == taps).to(source.dtype)  # out-of-range rows stay 0: zero padding

    return one_hot(lower) * (1 - frac) + one_hot(lower + 1) * frac


def resample(images: torch.Tensor, source_y: torch.Tensor, source_x: torch.Tensor, padding: Padding) -> torch.Tensor:
    """images [B, C, H, W]; source_y [B, H] and source_x [B, W]: the input row/column each output row/column reads."""
    _, _, height, width = images.shape
    rows = axis_weights(source_y, height, padding).to(images.dtype).unsqueeze(1)  # [B, 1, H, H]
    cols = axis_weights(source_x, width, padding).to(images.dtype).unsqueeze(1)  # [B, 1, W, W]
    return rows @ images @ cols.transpose(-1, -2)


def pixel_grid(batch: int, size: int, device: torch.device) -> torch.Tensor:
    """[B, size] float32 pixel indices 0..size-1, the identity source coordinates for one axis."""
    return torch.arange(size, device=device, dtype=torch.float32).expand(batch, size)
