"""Layers the image-to-image families share: the PatchGAN discriminator, instance normalisation, initialisation.

PatchGAN (Isola et al. 2017, Sec. 3.2.2 and App. 6.1.2): a fully convolutional D whose every output judges one
receptive field of the image, 70x70 px with three stride-2 layers, so it models high frequencies and leaves the
low ones to the L1 (pix2pix) or cycle (CycleGAN) loss. Output logits [B, 1, h, w], one per patch; the losses
average them.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError

PATCH_LAYERS = 3  # stride-2 layers of the 70x70 PatchGAN
MIN_SIDE = 16  # the smallest image two stride-2 layers and the two 4x4 stride-1 layers still leave a patch map on


def instance_norm(channels: int) -> nn.Module:
    """Per-image feature normalisation with a learned scale and shift: BatchNorm at the papers' batch of 1,
    and the same at any batch size and at inference (Ulyanov et al. 2016; CycleGAN's generators use it)."""
    return nn.InstanceNorm2d(channels, affine=True)


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) weights and N(1, 0.02) norm scales, as both papers' code initialises them."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.InstanceNorm2d | nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def check_min_side(family: str, height: int, width: int) -> None:
    """Refuse images smaller than any PatchGAN-judged family trains on, before a size rule of its own (multiples
    of 2^depth) would name a size that still fails here."""
    if min(height, width) < MIN_SIDE:
        raise ConfigError(f"{family} trains on images of at least {MIN_SIDE}x{MIN_SIDE} (its PatchGAN discriminator "
                          f"needs {MIN_SIDE} px a side), got {width}x{height}; prepare the store with --resolution "
                          f"{MIN_SIDE} or more")


def patch_layers(height: int, width: int) -> int:
    """Stride-2 layers for an image of this size: the paper's 3 (70x70 patches) from 32 px, 2 (34x34) below."""
    side = min(height, width)
    if side < MIN_SIDE:
        raise ConfigError(f"a PatchGAN discriminator needs images of at least {MIN_SIDE} px, got {width}x{height}; "
                          f"prepare the store with --resolution {MIN_SIDE} or more")
    return PATCH_LAYERS if side >= 32 else 2


def input_shape_of(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The inputs' (C, H, W), as the store's A side set it; without a store (`--summary --resolution`), the
    outputs' own."""
    if not config.input_shape:
        return image_shape
    channels, height, width = config.input_shape
    return channels, height, width


class PatchDiscriminator(nn.Module):
    """C64-C128-C256-C512 (4x4 convs, LeakyReLU 0.2, no norm on the first), then a 4x4 conv to one logit per
    patch. With `condition_channels`, D judges the image with its input beside it (pix2pix's conditional D)."""

    def __init__(self, channels: int, height: int, width: int, width_unit: int, condition_channels: int = 0,
                 max_width: int = 512) -> None:
        super().__init__()
        self.condition_channels = condition_channels
        layers: list[nn.Module] = [nn.Conv2d(channels + condition_channels, width_unit, 4, 2, 1), nn.LeakyReLU(0.2)]
        width_now = width_unit
        strides = [2] * (patch_layers(height, width) - 1) + [1]
        for stride in strides:
            width_next = min(width_now * 2, max_width)
            layers += [nn.Conv2d(width_now, width_next, 4, stride, 1, bias=False), instance_norm(width_next),
                       nn.LeakyReLU(0.2)]
            width_now = width_next
        layers.append(nn.Conv2d(width_now, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, images: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, C, H, W] (and their inputs [B, C_in, H, W]) -> patch logits [B, 1, h, w]."""
        if self.condition_channels:
            if condition is None:
                raise ValueError("this conditional PatchGAN judges an image beside its input; pass the input")
            images = torch.cat([condition, images], dim=1)
        return self.net(images)
