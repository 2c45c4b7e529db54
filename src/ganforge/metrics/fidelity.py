"""Full-reference image quality for paired translation: PSNR and SSIM of outputs against their targets.

Both work on uint8 pixels (data range L = 255), image by image, and are averaged over images, as super-resolution
and pix2pix papers report them. Colour images are scored on all three channels (SSIM: each channel, averaged),
not on the luma channel some SR papers use; the result records this.

SSIM is Wang et al. 2004 (IEEE TIP 13(4), Eq. 13) with their reference settings: an 11x11 Gaussian window of
sigma 1.5, K1 = 0.01, K2 = 0.03, statistics over the windows that fit inside the image (MATLAB's 'valid'), and
the mean of the SSIM map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DATA_RANGE = 255.0
WINDOW, SIGMA = 11, 1.5
K1, K2 = 0.01, 0.03
PROTOCOL = {"data_range": 255, "channels": "all (RGB or grey), averaged", "ssim_window": "gaussian 11x11 sigma 1.5",
            "ssim_k": [K1, K2], "ssim_border": "valid", "average": "per image, then the mean over images"}


def _as_float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    return images.to(torch.float64)


def psnr(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[N] PSNR in dB of uint8 outputs [N, C, H, W] against their targets; inf where an output is exact."""
    mse = (_as_float(outputs) - _as_float(targets)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(DATA_RANGE**2 / mse)


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """[size, size] weights summing to 1 (MATLAB's fspecial('gaussian', 11, 1.5))."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    line = torch.exp(-offsets.pow(2) / (2 * sigma**2))
    window = torch.outer(line, line)
    return window / window.sum()


def ssim(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[N] mean SSIM of uint8 outputs [N, C, H, W] against their targets (each at least 11x11 px)."""
    x, y = _as_float(outputs), _as_float(targets)
    channels, height, width = x.shape[1:]
    if min(height, width) < WINDOW:
        raise ValueError(f"SSIM's {WINDOW}x{WINDOW} window needs images of at least {WINDOW} px, got {width}x{height}")
    window = gaussian_window().to(x.device).expand(channels, 1, WINDOW, WINDOW)

    def blur(image: torch.Tensor) -> torch.Tensor:  # per-channel local means over the windows inside the image
        return F.conv2d(image, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.pow(2)
    var_y = blur(y * y) - mu_y.pow(2)
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)
