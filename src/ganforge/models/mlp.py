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
from ganforge.models.family import ModelFamily
from ganforge.models.layers import MinibatchStdDev, ProjectionHead, apply_spectral_norm


class MlpGenerator(nn.Module):
    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.image_shape = image_shape
        width = config.g_width
        self.num_classes = config.num_classes if config.conditional else 0
        # Conditional: a learned class embedding is concatenated to z (Mirza & Osindero 2014).
        self.embed = nn.Embedding(self.num_classes, config.z_dim) if self.num_classes else None
        layers: list[nn.Module] = []
        size = config.z_dim * (2 if self.num_classes else 1)
        for i, units in enumerate([4 * width, 8 * width, 16 * width]):
            layers.append(nn.Linear(size, units))
            # No BatchNorm right after the latent: it would whiten z itself (as in PyTorch-GAN's gan.py).
            if i > 0:
                layers.append(nn.BatchNorm1d(units))
            layers.append(nn.LeakyReLU(0.2))
            size = units
        layers += [nn.Linear(size, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional generator needs labels")
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z).view(z.shape[0], *self.image_shape)


class MlpDiscriminator(nn.Module):
    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = math.prod(image_shape)
        for units in (8 * config.d_width, 4 * config.d_width):
            layers += [nn.Linear(size, units), nn.LeakyReLU(0.2)]
            if config.d_dropout > 0:
                layers.append(nn.Dropout(config.d_dropout))
            size = units
        if config.mbstd:
            layers.append(MinibatchStdDev())
            size += 1
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(size, 1)
        self.projection = ProjectionHead(size, config.num_classes) if config.conditional else None
        if config.spectral_norm:
            apply_spectral_norm(self)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images)
        logits = self.head(h).squeeze(1)
        if self.projection is not None:
            if labels is None:
                raise ValueError("a conditional discriminator needs labels")
            logits = logits + self.projection(h, labels)
        return logits


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    return MlpGenerator(config, image_shape), MlpDiscriminator(config, image_shape)


FAMILY = ModelFamily(
    name="mlp", build=build, description="Goodfellow et al. 2014: fully connected G and D on flat pixels",
    options=frozenset({"g_width", "d_width", "d_dropout", "mbstd", "spectral_norm"}),
    resolutions="any image size (pixels are flattened)", conditional=True,
    d_blocks=lambda d: [m for m in d.get_submodule("features").children() if isinstance(m, nn.Linear)])
