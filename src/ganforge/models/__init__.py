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
from ganforge.models import aae, dcgan, mlp, progan

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
    grows: bool = False  # trained along a progressive-growing schedule (G and D have set_phase)
    summary: Callable[[ModelConfig, ImageShape], str] | None = None  # per-layer table; default: per module


MODELS: dict[str, ModelFamily] = {
    "mlp": ModelFamily(mlp.build),
    "dcgan": ModelFamily(dcgan.build),
    "aae": ModelFamily(aae.build, scheme="aae"),
    "progan": ModelFamily(progan.build, grows=True, summary=progan.summary),
}


def build_networks(config: ModelConfig, image_shape: ImageShape) -> GanNetworks:
    if config.name not in MODELS:
        raise ConfigError(f"--model {config.name!r} is not a model; choose one of: {', '.join(sorted(MODELS))}")
    family = MODELS[config.name]
    generator, discriminator, *encoder = family.build(config, image_shape)
    return GanNetworks(generator, discriminator, config.z_dim, encoder[0] if encoder else None, family.scheme)


def summarize(config: ModelConfig, image_shape: ImageShape) -> str:
    """The table `ganforge train --summary` prints: trainable parameters per layer and in total."""
    family = MODELS.get(config.name)
    if family is not None and family.summary is not None:
        return family.summary(config, image_shape)
    networks = build_networks(config, image_shape)
    lines = []
    for name, net in (("G", networks.generator), ("D", networks.discriminator), ("E", networks.encoder)):
        if net is None:
            continue
        lines.append(f"{name} ({type(net).__name__})")
        for child_name, child in net.named_children():
            count = sum(p.numel() for p in child.parameters() if p.requires_grad)
            lines.append(f"  {child_name:<24} {count:>12,}")
        lines.append(f"  {'total':<24} {sum(p.numel() for p in net.parameters() if p.requires_grad):>12,}")
    return "\n".join(lines)
