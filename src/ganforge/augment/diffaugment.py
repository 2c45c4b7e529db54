"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random, differentiable transforms are applied to real and fake images right before D, every time
(p = 1), so D never sees an un-augmented image and G receives gradients through the augmentation. Ops and
ranges follow the paper's "color,translation,cutout" policy on images in [-1, 1]:

  brightness   x + u,                         u ~ U(-0.5, 0.5) per sample
  saturation   m + (x - m) * u,               m = mean over channels, u ~ U(0, 2) (a no-op for grey, C = 1)
  contrast     m + (x - m) * u,               m = mean over C, H, W,  u ~ U(0.5, 1.5)
  translation  integer shift of up to 1/8 of each side, zero (mid-grey) padding
  cutout       a zeroed rectangle of half each side, centred anywhere in the image

Colour ops are not clamped (as in the paper): values may leave [-1, 1], and clamping would zero gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ganforge.augment.base import check_state_keys
from ganforge.augment.resample import pixel_grid, resample
from ganforge.errors import ConfigError

# Policy name -> the ops it runs, in the paper's order. Single op names are policies of their own.
POLICIES: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    "brightness": ("brightness",),
    "saturation": ("saturation",),
    "contrast": ("contrast",),
    "translation": ("translation",),
    "cutout": ("cutout",),
}
TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def _uniform(images: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """[B, 1, 1, 1] per-sample factors from torch's global RNG on the images' device."""
    u = torch.rand(images.shape[0], 1, 1, 1, device=images.device)
    return (low + (high - low) * u).to(images.dtype)


def brightness(images: torch.Tensor) -> torch.Tensor:
    return images + _uniform(images, -0.5, 0.5)


def saturation(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:  # grey has no chroma to scale
        return images
    mean = images.mean(dim=1, keepdim=True)
    return mean + (images - mean) * _uniform(images, 0.0, 2.0)


def contrast(images: torch.Tensor) -> torch.Tensor:
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (images - mean) * _uniform(images, 0.5, 1.5)


def _integers(u: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """Uniform integers in [low, high] from uniform floats u in [0, 1), kept as float32 (no host round trip)."""
    return torch.floor(low + u * (high - low + 1)).clamp(max=high)


def translation(images: torch.Tensor) -> torch.Tensor:
    batch, _, height, width = images.shape
    max_y, max_x = int(height * TRANSLATION_RATIO), int(width * TRANSLATION_RATIO)
    u = torch.rand(batch, 2, device=images.device)
    shift_y, shift_x = _integers(u[:, :1], -max_y, max_y), _integers(u[:, 1:], -max_x, max_x)  # [B, 1] each
    source_y = pixel_grid(batch, height, images.device) - shift_y
    source_x = pixel_grid(batch, width, images.device) - shift_x
    return resample(images, source_y, source_x, padding="zeros")


def _cut_axis(u: torch.Tensor, length: int) -> torch.Tensor:
    """[B, length] True inside the cut: half the side, centred anywhere (even sizes may reach either edge)."""
    size = int(length * CUTOUT_RATIO)
    start = _integers(u, 0, length - size % 2) - size // 2  # [B, 1]
    index = pixel_grid(u.shape[0], length, u.device)
    return (index >= start) & (index < start + size)


def cutout(images: torch.Tensor) -> torch.Tensor:
    batch, _, height, width = images.shape
    u = torch.rand(batch, 2, device=images.device)
    cut = _cut_axis(u[:, :1], height).unsqueeze(2) & _cut_axis(u[:, 1:], width).unsqueeze(1)  # [B, H, W]
    return images * (~cut).unsqueeze(1).to(images.dtype)


OPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "brightness": brightness,
    "saturation": saturation,
    "contrast": contrast,
    "translation": translation,
    "cutout": cutout,
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation,cutout' -> the op names to run, in order; ConfigError on an unknown or empty policy."""
    names = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown or not names:
        raise ConfigError(
            f"--diffaugment-policy {policy!r} is invalid: give a comma-separated list of "
            f"{', '.join(POLICIES)} (or use `--augment none` for no augmentation)"
        )
    return tuple(op for name in names for op in POLICIES[name])


class DiffAugment:
    """Always-on differentiable augmentation (p = 1); see the module docstring for the ops."""

    def __init__(self, policy: str = "color,translation,cutout") -> None:
        self.ops = parse_policy(policy)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        for name in self.ops:
            images = OPS[name](images)
        return images

    def observe_real_logits(self, logits: torch.Tensor) -> None:
        """DiffAugment does not adapt."""

    @property
    def probability(self) -> float:
        return 1.0

    def state_dict(self) -> dict[str, float | int]:
        return {}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        check_state_keys(state, set(), "diffaugment")
