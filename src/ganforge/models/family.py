"""What a model family is and what it supports, declared beside its builder (each model module's `FAMILY`).

`check_supported` refuses a configuration the family cannot honour, in one line naming the flag, before any
network is built: a flag that is accepted and then ignored would be a lie to the user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from torch import nn

from ganforge.config import AugmentConfig, LossConfig, ModelConfig, TrainConfig
from ganforge.config.registry import flag_of
from ganforge.errors import ConfigError

ImageShape = tuple[int, int, int]  # (channels, height, width)
Overrides = dict[tuple[str, ...], Any]
# Settings every family reads: the latent size, (where `conditional` allows) the class count, and (image-to-image
# families) the input shape, which the store sets.
COMMON_OPTIONS = frozenset({"name", "z_dim", "conditional", "num_classes", "input_shape"})
# Training settings that only a growing family reads.
GROWING_SETTINGS = ("fade_kimg", "stable_kimg")
NOISE_TO_IMAGE_SCHEMES = ("gan", "gan-selfsupervised")  # the schemes whose G draws images from latents
# Loss settings that only some image-to-image families read (each family lists its own in `loss_options`).
TRANSLATION_LOSS_SETTINGS = ("adv_weight", "l1_weight", "cycle_weight", "identity_weight", "pool_size",
                             "content_loss", "content_weight", "pretrain")


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
    # Which stores it trains on (the manifest's pairing): "none" = one set of images (noise-to-image models);
    # "paired" / "unpaired" = input/target stores (image-to-image models, whose G takes an image, not z).
    pairings: frozenset[str] = frozenset({"none"})
    loss_options: frozenset[str] = frozenset()  # TRANSLATION_LOSS_SETTINGS it reads
    # Image-to-image: the directions its G translates; "b2a" means G has a `b2a` network beside its own a2b.
    directions: tuple[str, ...] = ("a2b",)
    # Adjusts a new run's settings to what is installed, with a line saying so (SRGAN's content loss without the
    # optional Lite0 weights); None = nothing to adjust.
    adjust: Callable[[Overrides], tuple[Overrides, str | None]] | None = None
    # FreezeD (--freeze-d): D's blocks from the input inwards, each a module (its head is none of them); None = the
    # family declares none.
    d_blocks: Callable[[nn.Module], list[nn.Module]] | None = None
    # The share of d_blocks that few-shot fine-tuning freezes by default (rounded down, at least one when above 0):
    # Mo et al.'s half for a D that learns all its features; measured per family in BENCHMARKS.md ("Fine-tuning").
    few_shot_freeze_share: float = 0.5
    # --init from a run at a lower resolution: (role, tensor name here, doublings) -> the source's name for it, or
    # None for a new layer (a growing family adds blocks); None = the family takes only its source's resolution.
    grows_from: Callable[[str, str, int], str | None] | None = None
    # --freeze-g-mapping: G's mapping network (style-based G); None = G has none.
    g_mapping: Callable[[nn.Module], nn.Module] | None = None

    @property
    def translates(self) -> bool:
        """G maps input images to output images (trained on a two-sided store), instead of z to images."""
        return "none" not in self.pairings


def check_supported(family: ModelFamily, config: TrainConfig) -> None:
    """Refuse, in one line naming the flag, any setting `family` would silently ignore or cannot train."""
    default_model, model = ModelConfig(), config.model
    used = COMMON_OPTIONS | family.options
    for f in fields(ModelConfig):
        if f.name not in used and getattr(model, f.name) != getattr(default_model, f.name):
            takes = ", ".join(flag_of(("model", name)) for name in sorted(family.options)) or "no model options"
            raise ConfigError(f"--model {family.name} does not use {flag_of(('model', f.name))}"
                              f"{family.notes.get(f.name, '')}; drop the flag (it takes {takes})")
    check_conditional(family, model.conditional)
    if family.losses is not None and config.loss.name not in family.losses:
        raise ConfigError(f"--model {family.name} trains with --loss {' or '.join(sorted(family.losses))}, "
                          f"not {config.loss.name}")
    if config.loss.pl_weight > 0 and not family.path_length:
        raise ConfigError(f"--pl-weight regularizes a style-based generator's mapping to W, which --model "
                          f"{family.name} does not have (--model stylegan2 does); drop the flag")
    if config.loss.mode_seeking > 0 and family.scheme not in NOISE_TO_IMAGE_SCHEMES:
        raise ConfigError(f"--mode-seeking compares images drawn from different latents; --model {family.name} "
                          "draws none (it trains with its own scheme); drop the flag")
    if not family.augments and config.augment.name != AugmentConfig().name:
        raise ConfigError(f"--model {family.name}'s discriminator sees no images, so --augment "
                          f"{config.augment.name} cannot apply; drop --augment")
    default_loss = LossConfig()
    for name in TRANSLATION_LOSS_SETTINGS:
        if name not in family.loss_options and getattr(config.loss, name) != getattr(default_loss, name):
            raise ConfigError(f"--model {family.name} does not use {flag_of(('loss', name))}; drop the flag")
    if family.translates:
        if model.z_dim != default_model.z_dim:
            raise ConfigError(f"--model {family.name}'s generator takes an image, not a latent z; drop --z-dim")
        for flag, given in (("--metrics", bool(config.metrics)), ("--batch-gpu auto", config.batch_gpu == "auto")):
            if given:
                raise ConfigError(f"{flag} measures a noise-to-image generator; --model {family.name} translates "
                                  "images: drop it (score with `ganforge evaluate RUN` after training)")
    if not family.grows:
        default = TrainConfig()
        for name in GROWING_SETTINGS:
            if getattr(config, name) != getattr(default, name):
                raise ConfigError(f"{flag_of((name,))} sets progressive growing, which --model {family.name} "
                                  "does not do (--model progan does); drop the flag")


def check_conditional(family: ModelFamily, conditional: bool) -> None:
    """Refuse --cond for a family without labels, before the store's labels are counted for it."""
    if conditional and not family.conditional:
        raise ConfigError(f"--model {family.name} has no class-conditional version; drop --cond")


def check_store(family: ModelFamily, store: str, pairing: str) -> None:
    """Refuse, in one line, a store the family cannot train on: images for an image-to-image model, or pairs for
    a noise-to-image one. `pairing` is the store's manifest pairing."""
    if pairing in family.pairings:
        return
    if not family.translates:
        raise ConfigError(f"{store} holds {pairing} input/target images, for image-to-image models; --model "
                          f"{family.name} generates images from noise: train --model pix2pix or srgan (paired) or "
                          "cyclegan on it, or prepare one set of images for this model")
    wanted = " or ".join(sorted(family.pairings))
    how = ("`ganforge prepare --pairs side-by-side|by-name` or `--make-pairs downscale4x|grey|edges`"
           if "paired" in family.pairings else "`ganforge prepare --a DIR --b DIR --unpaired`")
    raise ConfigError(f"--model {family.name} translates images and trains on {wanted} input/target stores, but "
                      f"{store} holds {'one set of images' if pairing == 'none' else pairing + ' images'}; prepare "
                      f"one with {how}")
