"""pix2pix (Isola et al., CVPR 2017): paired image-to-image translation with a conditional GAN.

G is a U-Net: an encoder of 4x4 stride-2 convolutions down to 1x1 (at 256 px: C64-C128-C256-C512-C512-C512-
C512-C512) and a decoder that mirrors it, each decoder layer seeing the encoder layer of its size beside it
(skip connections carry the input's structure, edges and layout, straight to the output). Dropout 0.5 in the
first three decoder layers is G's only noise (the paper found z ignored). D is the 70x70 PatchGAN, judging the
output beside its input. G's loss is the conditional GAN loss plus lambda = 100 times the L1 distance to the
target (Eq. 4).

Deviations, on purpose: instance normalisation instead of BatchNorm (identical at the paper's batch size of 1,
and the same at any batch size and at inference), and dropout off at inference, so a translation is
deterministic (the paper keeps it on at test time).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.family import ModelFamily
from ganforge.models.patchgan import (
    PatchDiscriminator,
    check_min_side,
    init_weights,
    input_shape_of,
    instance_norm,
)

MAX_DEPTH = 8  # the paper's U-Net reaches 1x1 from 256 px in eight halvings
MAX_WIDTH = 512
DROPOUT_LAYERS = 3  # CD512-CD512-CD512: the first three decoder layers


def unet_depth(height: int, width: int) -> int:
    """Halvings from the image to the bottleneck: to 1 px on the shorter side, at most eight."""
    check_min_side("pix2pix", height, width)
    depth = min(MAX_DEPTH, int(math.log2(min(height, width))))
    if depth < 2 or height % 2**depth or width % 2**depth:
        raise ConfigError(f"pix2pix's U-Net halves the image {depth} times, so its sides must be multiples of "
                          f"{2**depth}; got {width}x{height}: prepare the store with --resolution 256 (or 128, 64 ...)")
    return depth


class UNetGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, height: int, width: int, width_unit: int) -> None:
        super().__init__()
        depth = unet_depth(height, width)
        widths = [min(width_unit * 2**level, MAX_WIDTH) for level in range(depth)]
        down: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, 2, 1)]
        for level in range(1, depth):
            innermost = level == depth - 1  # 1x1 at the bottleneck: nothing to normalise over
            down.append(nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(widths[level - 1], widths[level], 4, 2, 1),
                                      *([] if innermost else [instance_norm(widths[level])])))
        up: list[nn.Module] = []
        for level in reversed(range(1, depth)):
            in_width = widths[level] * (1 if level == depth - 1 else 2)  # the skip doubles all but the first
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_width, widths[level - 1], 4, 2, 1),
                      instance_norm(widths[level - 1])]
            if depth - 1 - level < DROPOUT_LAYERS:
                layers.append(nn.Dropout(0.5))
            up.append(nn.Sequential(*layers))
        up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * widths[0], out_channels, 4, 2, 1), nn.Tanh()))
        self.down, self.up = nn.ModuleList(down), nn.ModuleList(up)
        self.apply(init_weights)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs [B, C_in, H, W] in [-1, 1] -> outputs [B, C_out, H, W] in [-1, 1]."""
        skips = []
        x = inputs
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = skips.pop()
        for index, layer in enumerate(self.up):
            if index:
                x = torch.cat([x, skips.pop()], dim=1)
            x = layer(x)
        return x


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, ...]:
    channels, height, width = image_shape
    in_channels, in_height, in_width = input_shape_of(config, image_shape)
    if (in_height, in_width) != (height, width):
        raise ConfigError(f"pix2pix maps images to images of the same size, but the store's inputs are "
                          f"{in_width}x{in_height} and its targets {width}x{height}; use --model srgan for x4 "
                          "super-resolution, or prepare both sides at one --resolution")
    return (UNetGenerator(in_channels, channels, height, width, config.g_width),
            PatchDiscriminator(channels, height, width, config.d_width, condition_channels=in_channels))


FAMILY = ModelFamily(
    name="pix2pix", build=build, scheme="paired", augments=False, truncation="none",
    description="Isola et al. 2017: U-Net G with dropout, 70x70 PatchGAN D on the (input, output) pair, cGAN + L1",
    options=frozenset({"g_width", "d_width"}), loss_options=frozenset({"l1_weight", "adv_weight"}),
    losses=frozenset({"nonsaturating", "lsgan", "hinge"}), pairings=frozenset({"paired"}),
    resolutions="inputs and targets of one size, sides multiples of 2^depth (256 px: 8 halvings to 1x1), >= 16 px",
    recipe=("Isola et al. 2017: pix2pix, U-Net + PatchGAN, cGAN + 100 L1, Adam 2e-4 / 0.5, batch 1",
            {("model", "name"): "pix2pix", ("batch",): 1, ("lr_g",): 2e-4, ("lr_d",): 2e-4, ("beta1",): 0.5}))
