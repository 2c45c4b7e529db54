"""Differentiable augmentation for small-data GAN training, applied to reals and fakes alike right before D.

`build_augment(name, ...)` returns an `Augment`: "none" (identity), "diffaugment" (Zhao et al. 2020, always on)
or "ada" (Karras et al. 2020, per-sample probability p adapted from D's outputs on reals). The training loop only
calls the `Augment` methods; ADA's p and counters ride in the checkpoint through `state_dict()`.

All randomness comes from torch's global RNG on the images' device, which the training checkpoint saves, so a
resumed run draws the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ganforge.augment.ada import AdaptiveAugment
from ganforge.augment.base import Augment, NoAugment
from ganforge.augment.diffaugment import DiffAugment
from ganforge.data.store import to_uint8
from ganforge.errors import ConfigError

AUGMENTS = ("none", "diffaugment", "ada")

__all__ = ["AUGMENTS", "AdaptiveAugment", "Augment", "DiffAugment", "NoAugment", "build_augment", "preview_grid"]


def build_augment(
    name: str,
    *,
    batch: int,
    target: float = 0.6,
    ada_kimg: float = 500,
    interval: int = 4,
    initial_p: float = 0.0,
    policy: str = "color,translation,cutout",
    sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None,
    world_size: int = 1,
) -> Augment:
    """The augmentation called `name`; `batch` is the number of real images per D step (ADA's step size).
    Under torchrun, `sum_over_ranks` (an in-place all-reduce) makes ADA adapt p from every rank's D outputs."""
    if name == "none":
        return NoAugment()
    if name == "diffaugment":
        return DiffAugment(policy)
    if name == "ada":
        return AdaptiveAugment(batch=batch, target=target, ada_kimg=ada_kimg, interval=interval, initial_p=initial_p,
                               sum_over_ranks=sum_over_ranks, world_size=world_size)
    raise ConfigError(f"unknown augmentation {name!r} for --augment: choose from {', '.join(AUGMENTS)}")


@torch.no_grad()
def preview_grid(images_uint8: torch.Tensor, augment: Augment, copies: int = 4) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N * (1 + copies), C, H, W]: each real followed by `copies` augmented versions.

    Laid out with `1 + copies` columns, each row shows one image and what D may see of it. ADA at p = 0 shows
    the images unchanged; build it with `initial_p` to preview a given strength.
    """
    n, c, h, w = images_uint8.shape
    reals = images_uint8.float() / 127.5 - 1
    augmented = to_uint8(augment(reals.repeat_interleave(copies, dim=0)))  # [N * copies, C, H, W]
    rows = torch.cat([images_uint8.unsqueeze(1), augmented.view(n, copies, c, h, w)], dim=1)
    return rows.reshape(n * (1 + copies), c, h, w)
