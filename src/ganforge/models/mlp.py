"""The vanilla GAN of Goodfellow et al. (2014) as seed 001 trains it: fully connected G and D on flat pixels.

G: z -> 256 -> 512 -> 1024 -> C*H*W (tanh), LeakyReLU(0.2) with BatchNorm in the hidden layers, as in the
common Keras/PyTorch-GAN version. D: C*H*W -> 512 -> 256 -> 1 with LeakyReLU(0.2) and optional dropout.
`g_width`/`d_width` scale the hidden widths (64 gives the sizes above).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganforge.config import ModelConfig


class MlpGenerator(nn.Module):
    def __init__(self, z_dim: int, image_shape: tuple[int, int, int], width: int) -> None:
        super().__init__()
        self.image_shape = image_shape
        hidden = [4 * width, 8 * width, 16 * width]
        layers: list[nn.Module] = []
        size = z_dim
        for i, units in enumerate(hidden):
            layers.append(nn.Linear(size, units))
            # No BatchNorm right after the latent: it would whiten z itself (as in PyTorch-GAN's gan.py).
            if i > 0:
                layers.append(nn.BatchNorm1d(units))
            layers.append(nn.LeakyReLU(0.2))
            size = units
        layers += [nn.Linear(size, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


class MlpDiscriminator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], width: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = math.prod(image_shape)
        for units in (8 * width, 4 * width):
            layers += [nn.Linear(size, units), nn.LeakyReLU(0.2)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            size = units
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(size, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images)).squeeze(1)


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    return (MlpGenerator(config.z_dim, image_shape, config.g_width),
            MlpDiscriminator(image_shape, config.d_width, config.d_dropout))
