"""What a model family is and what it supports, declared beside its builder (each model module's `FAMILY`).

`check_supported` refuses a configuration the family cannot honour, in one line naming the flag, before any
network is built: a flag that is accepted and then ignored would be a lie to the user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from torch import nn

from ganforge.config import AugmentConfig, ModelConfig, TrainConfig, flag_of
from ganforge.errors import ConfigError

ImageShape = tuple[int, int, int]  # (channels, height, width)
Overrides = dict[tuple[str, ...], Any]
# Settings every family reads: the latent size, and (where `conditional` allows) the class count.
COMMON_OPTIONS = frozenset({"name", "z_dim", "conditional", "num_classes"})
# Training settings that only a growing family reads.
GROWING_SETTINGS = ("fade_kimg", "stable_kimg")


@dataclass(frozen=True)
class ModelFamily:
    name: str  # the --model value
    build: Callable[[ModelConfig, ImageShape], tuple[nn.Module, ...]]  # -> (G, D) or (G, D, encoder)
    description: str  # one line for --help and docs: the paper and what the family is
    options: frozenset[str]  # ModelConfig fields the builder reads beyond COMMON_OPTIONS
    resolutions: str  # which image shapes the builder takes (it raises ConfigError on any other)
    conditional: bool = False  # --cond: class labels reach G and D
    # "z": --truncation pulls z toward its mean; "w": G pulls its mapped w toward the tracked average (G takes
    # psi); "none": G normalises z (ProGAN), so psi cannot change an image.
    truncation: Literal["z", "w", "none"] = "z"
    scheme: str = "gan"  # which step functions train these networks (the training package's scheme table)
    losses: frozenset[str] | None = None  # --loss values that fit D's output; None = every loss
    augments: bool = True  # --augment (ADA / DiffAugment) applies to what D sees; False when D sees no images
    grows: bool = False  # trained along a progressive-growing schedule (G and D have set_phase)
    # G(z, labels, return_ws=True) returns (images, ws), so the path-length penalty (--pl-weight) applies.
    path_length: bool = False
    recipe: tuple[str, Overrides] | None = None  # the paper's settings: `--model NAME` alone starts from them
    summary: Callable[[ModelConfig, ImageShape], str] | None = None  # per-layer table; default: per module
    # Why a model option does not apply, as {field: " (reason)"}, for the refusal's message.
    notes: dict[str, str] = field(default_factory=dict)


def check_supported(family: ModelFamily, config: TrainConfig) -> None:
    """Refuse, in one line naming the flag, any setting `family` would silently ignore or cannot train."""
    default_model, model = ModelConfig(), config.model
    used = COMMON_OPTIONS | family.options
    for f in fields(ModelConfig):
        if f.name not in used and getattr(model, f.name) != getattr(default_model, f.name):
            takes = ", ".join(flag_of(("model", name)) for name in sorted(family.options)) or "no model options"
            raise ConfigError(f"--model {family.name} does not use {flag_of(('model', f.name))}"
                              f"{family.notes.get(f.name, '')}; drop the flag (it takes {takes})")
    if model.conditional and not family.conditional:
        raise ConfigError(f"--model {family.name} has no class-conditional version; drop --cond")
    if family.losses is not None and config.loss.name not in family.losses:
        raise ConfigError(f"--model {family.name} trains with --loss {' or '.join(sorted(family.losses))}, "
                          f"not {config.loss.name}")
    if config.loss.pl_weight > 0 and not family.path_length:
        raise ConfigError(f"--pl-weight regularizes a style-based generator's mapping to W, which --model "
                          f"{family.name} does not have (--model stylegan2 does); drop the flag")
    if not family.augments and config.augment.name != AugmentConfig().name:
        raise ConfigError(f"--model {family.name}'s discriminator sees no images, so --augment "
                          f"{config.augment.name} cannot apply; drop --augment")
    if not family.grows:
        default = TrainConfig()
        for name in GROWING_SETTINGS:
            if getattr(config, name) != getattr(default, name):
                raise ConfigError(f"{flag_of((name,))} sets progressive growing, which --model {family.name} "
                                  "does not do (--model progan does); drop the flag")
