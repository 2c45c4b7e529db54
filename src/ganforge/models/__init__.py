"""Model registry: a family name maps to a builder of its networks and the training scheme that fits them.

A builder reads the image shape from the store, so the same name trains at 28, 32, 64 or 128 px. The
training loop only sees `GanNetworks` and the scheme's two step functions; it never names a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import aae, dcgan, mlp

ImageShape = tuple[int, int, int]  # (channels, height, width)


@dataclass
class GanNetworks:
    generator: nn.Module  # z [B, z_dim] (+ labels) -> images [B, C, H, W] in [-1, 1]
    discriminator: nn.Module  # D's input (images, or codes for the AAE) (+ labels) -> logits [B]
    z_dim: int
    encoder: nn.Module | None = None  # images -> codes, for autoencoding schemes
    scheme: str = "gan"  # which step functions train these networks (`ganforge.training.steps.SCHEMES`)


@dataclass(frozen=True)
class ModelFamily:
    build: Callable[[ModelConfig, ImageShape], tuple[nn.Module, ...]]  # -> (G, D) or (G, D, encoder)
    scheme: str = "gan"


MODELS: dict[str, ModelFamily] = {
    "mlp": ModelFamily(mlp.build),
    "dcgan": ModelFamily(dcgan.build),
    "aae": ModelFamily(aae.build, scheme="aae"),
}


def build_networks(config: ModelConfig, image_shape: ImageShape) -> GanNetworks:
    if config.name not in MODELS:
        raise ConfigError(f"--model {config.name!r} is not a model; choose one of: {', '.join(sorted(MODELS))}")
    family = MODELS[config.name]
    generator, discriminator, *encoder = family.build(config, image_shape)
    return GanNetworks(generator, discriminator, config.z_dim, encoder[0] if encoder else None, family.scheme)
