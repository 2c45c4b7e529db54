"""Model registry: a family name maps to its `ModelFamily` (builder, options, capabilities, recipe).

Each family declares itself in its own module (`FAMILY`); adding one means writing that module and listing it
here. A builder reads the image shape from the store, so the same name trains at 28, 32, 64 or 128 px. The
training loop only sees `GanNetworks` and the scheme's two step functions; it never names a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ganforge.config import ModelConfig, TrainConfig
from ganforge.errors import ConfigError
from ganforge.models import aae, cyclegan, dcgan, fastgan, mlp, pix2pix, progan, projected, r3gan, srgan, stylegan2
from ganforge.models.family import ImageShape, ModelFamily, check_supported

MODELS: dict[str, ModelFamily] = {family.name: family for family in (
    mlp.FAMILY, dcgan.FAMILY, aae.FAMILY, progan.FAMILY, fastgan.FAMILY, projected.FAMILY, stylegan2.FAMILY,
    r3gan.FAMILY, pix2pix.FAMILY, cyclegan.FAMILY, srgan.FAMILY,
)}


@dataclass
class GanNetworks:
    generator: nn.Module  # z [B, z_dim] (+ labels) -> images [B, C, H, W] in [-1, 1]
    discriminator: nn.Module  # D's input (images, or codes for the AAE) (+ labels) -> logits [B] or [B, K]
    z_dim: int
    encoder: nn.Module | None = None  # images -> codes, for autoencoding schemes
    scheme: str = "gan"  # which step functions train these networks (the training package's scheme table)


def family_of(name: str) -> ModelFamily:
    if name not in MODELS:
        raise ConfigError(f"--model {name!r} is not a model; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def validate(config: TrainConfig) -> ModelFamily:
    """The run's family, after refusing any setting it does not support (one line naming the flag)."""
    family = family_of(config.model.name)
    check_supported(family, config)
    return family


def build_networks(config: ModelConfig, image_shape: ImageShape) -> GanNetworks:
    family = family_of(config.name)
    generator, discriminator, *encoder = family.build(config, image_shape)
    return GanNetworks(generator, discriminator, config.z_dim, encoder[0] if encoder else None, family.scheme)


def summarize(config: ModelConfig, image_shape: ImageShape) -> str:
    """The table `ganforge train --summary` prints: trainable parameters per layer and in total."""
    family = family_of(config.name)
    if family.summary is not None:
        return family.summary(config, image_shape)
    networks = build_networks(config, image_shape)
    lines = []
    for name, net in (("G", networks.generator), ("D", networks.discriminator), ("E", networks.encoder)):
        if net is None:
            continue
        header, described = f"{name} ({type(net).__name__})", net.extra_repr()
        # A network's own description, where it has one: the projected D's frozen feature network, which has
        # no parameters to count.
        lines.append(f"{header}: {described}" if described else header)
        for child_name, child in net.named_children():
            count = sum(p.numel() for p in child.parameters() if p.requires_grad)
            lines.append(f"  {child_name:<24} {count:>12,}")
        lines.append(f"  {'total':<24} {sum(p.numel() for p in net.parameters() if p.requires_grad):>12,}")
    return "\n".join(lines)
