"""Model registry: a family name maps to a builder that returns a generator and a discriminator.

A builder reads the image shape from the store, so the same name trains at 28, 32, 64 or 128 px. The
training loop only sees `GanNetworks`; it never names a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import dcgan, mlp

ImageShape = tuple[int, int, int]  # (channels, height, width)


@dataclass
class GanNetworks:
    generator: nn.Module  # z [B, z_dim] -> images [B, C, H, W] in [-1, 1]
    discriminator: nn.Module  # images [B, C, H, W] -> logits [B]
    z_dim: int


Builder = Callable[[ModelConfig, ImageShape], tuple[nn.Module, nn.Module]]

MODELS: dict[str, Builder] = {
    "mlp": mlp.build,
    "dcgan": dcgan.build,
}


def build_networks(config: ModelConfig, image_shape: ImageShape) -> GanNetworks:
    if config.name not in MODELS:
        raise ConfigError(f"--model {config.name!r} is not a model; choose one of: {', '.join(sorted(MODELS))}")
    generator, discriminator = MODELS[config.name](config, image_shape)
    return GanNetworks(generator, discriminator, config.z_dim)
