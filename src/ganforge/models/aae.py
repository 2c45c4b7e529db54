"""Adversarial autoencoder (Makhzani et al. 2016), seed 004: an autoencoder whose code is pushed to the prior.

Encoder E: image -> code (a DCGAN discriminator body ending in z_dim outputs, deterministic as in the paper's
main experiments). Decoder: a DCGAN generator, so sampling the prior N(0, I) through it generates images and
`generate` works unchanged. The discriminator judges codes, not images: prior samples are "real", E(x) "fake";
two hidden layers of 1000 units as in the paper's MNIST setup (scaled by d_width / 64), LeakyReLU.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.models.dcgan import DcganGenerator, init_weights, plan_stages
from ganforge.models.family import ModelFamily


class ConvEncoder(nn.Module):
    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, width = image_shape
        stages, start_h, start_w = plan_stages(height, width)
        layers: list[nn.Module] = [nn.Conv2d(channels, config.d_width, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = config.d_width
        for _ in range(stages - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2)]
            ch *= 2
        layers.append(nn.Conv2d(ch, config.z_dim, (start_h, start_w)))
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten(1)


class LatentDiscriminator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden = max(16, config.d_width * 1000 // 64)
        self.net = nn.Sequential(nn.Linear(config.z_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(codes).squeeze(1)


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, ...]:
    return DcganGenerator(config, image_shape), LatentDiscriminator(config), ConvEncoder(config, image_shape)


FAMILY = ModelFamily(
    name="aae", build=build, scheme="aae", augments=False,
    description="Makhzani et al. 2016: adversarial autoencoder (conv encoder and decoder, D on the latent code)",
    options=frozenset({"g_width", "d_width", "g_activation", "g_upsample"}),
    resolutions="as dcgan: any size reachable by doubling a 4-7 px start")
