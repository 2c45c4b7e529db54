"""Named bundles of `ganforge train` flags: the recipes of the papers and seeds, in one table.

A preset fills settings before the command line does, so `--preset wgan-gp --lr-d 2e-4` is the preset with
one change. `ganforge train --list-presets` prints this table.
"""

from __future__ import annotations

from typing import Any

from ganforge.errors import ConfigError
from ganforge.models import MODELS

Overrides = dict[tuple[str, ...], Any]

PRESETS: dict[str, tuple[str, Overrides]] = {
    "dcgan": ("Radford et al. 2016: DCGAN, Adam 2e-4 / beta1 0.5, batch 128",
              {("model", "name"): "dcgan", ("batch",): 128}),
    "dcgan-celeba32": ("seed 002: DCGAN at 32 px on centre-cropped faces, batch 128, z 100",
                       {("model", "name"): "dcgan", ("batch",): 128, ("model", "z_dim"): 100}),
    "keras-gan": ("seed 003: dense->reshape->transposed convs with LeakyReLU; D dropout 0.2, label noise 0.05",
                  {("model", "name"): "dcgan", ("model", "g_activation"): "lrelu", ("model", "d_dropout"): 0.2,
                   ("loss", "label_flip"): 0.05}),
    "mlp-gan": ("seed 001 / Goodfellow et al. 2014: fully connected G and D on flat pixels",
                {("model", "name"): "mlp", ("model", "d_dropout"): 0.3}),
    "wgan": ("Arjovsky et al. 2017: critic with weight clipping 0.01, 5 critic steps, lr 5e-5, no momentum",
             {("loss", "name"): "wgan", ("d_steps",): 5, ("lr_g",): 5e-5, ("lr_d",): 5e-5, ("beta1",): 0.0,
              ("beta2",): 0.9}),
    "wgan-gp": ("Gulrajani et al. 2017: gradient penalty 10, 5 critic steps, Adam 1e-4 / (0, 0.9), no BN in D",
                {("loss", "name"): "wgan-gp", ("d_steps",): 5, ("lr_g",): 1e-4, ("lr_d",): 1e-4, ("beta1",): 0.0,
                 ("beta2",): 0.9, ("model", "d_batchnorm"): False}),
    "sngan": ("Miyato et al. 2018: spectral norm in D, hinge loss, Adam 2e-4 / (0, 0.9)",
              {("loss", "name"): "hinge", ("model", "spectral_norm"): True, ("beta1",): 0.0, ("beta2",): 0.9}),
    "lsgan": ("Mao et al. 2017: least-squares loss, Adam 2e-4 / 0.5", {("loss", "name"): "lsgan"}),
    "small-data": ("few thousand images: ADA augmentation, R1 gamma 0.1 every 16 steps, G EMA with ramp-up",
                   {("augment", "name"): "ada", ("loss", "r1_gamma"): 0.1, ("ema_kimg",): 10.0,
                    ("ema_rampup",): 0.05}),
}

# Families with their own paper recipe declare it beside their builder: `--model progan` alone means
# `--preset progan`, and the recipe is listed with the presets.
PRESETS.update({name: family.recipe for name, family in MODELS.items() if family.recipe is not None})
MODEL_RECIPES = frozenset(name for name, family in MODELS.items() if family.recipe is not None)

# The recipes `ganforge train` picks when no --model is named (recipes/default.py), measured in BENCHMARKS.md.
PRESETS["fastgan-cpu"] = (
    "FastGAN's paper recipe at a quarter of its widths (g/d width 16) and batch 16: trains in CPU minutes",
    {**PRESETS["fastgan"][1], ("model", "g_width"): 16, ("model", "d_width"): 16, ("batch",): 16})
PRESETS["projected-cpu"] = (
    "Projected GAN's recipe with G at a quarter of its width (g width 16) and batch 16: trains in CPU minutes",
    {**PRESETS["projected"][1], ("model", "g_width"): 16, ("batch",): 16})
PRESETS["r3gan-cpu"] = (
    "R3GAN's recipe at width 8 (64 channels up to 32 px), batch 16, R1 and R2 every 4 D steps: 21 img/s at 64 px "
    "on 2 CPU cores in bf16 (width 16, penalties every step: 4 img/s)",
    {**PRESETS["r3gan"][1], ("model", "g_width"): 8, ("model", "d_width"): 8, ("batch",): 16,
     ("loss", "r1_every"): 4})
PRESETS["stylegan2-small"] = (
    "StyleGAN2-ADA's paper256 for small data: config F at half the widths (fmap_base 16384), ADA, R1 gamma 1, "
    "Adam 2.5e-3, batch 64, G EMA 20 kimg with ramp-up 0.05",
    {**PRESETS["stylegan2"][1], ("model", "fmap_base"): 16384, ("augment", "name"): "ada", ("loss", "r1_gamma"): 1.0,
     ("lr_g",): 2.5e-3, ("lr_d",): 2.5e-3, ("batch",): 64, ("ema_kimg",): 20.0, ("ema_rampup",): 0.05})
PRESETS["dcgan-small"] = (
    "DCGAN for images below 64 px (the demo's digits): a 3x3 conv more per resolution, width 32, batch 32, Adam "
    "5e-4, G EMA 1 kimg (100 kimg: about 2.5 minutes on 2 CPU cores at 28 px)",
    {("model", "name"): "dcgan", ("model", "extra_convs"): 1, ("model", "g_width"): 32, ("model", "d_width"): 32,
     ("batch",): 32, ("lr_g",): 5e-4, ("lr_d",): 5e-4, ("ema_kimg",): 1.0})


def preset_overrides(name: str) -> Overrides:
    if name not in PRESETS:
        raise ConfigError(f"--preset {name!r} is not a preset; choose one of: {', '.join(PRESETS)} "
                          "(`ganforge train --list-presets` describes them)")
    return dict(PRESETS[name][1])


def resolve_overrides(preset: str | None, given: Overrides) -> Overrides:
    """What a train command asks for: the named preset, or the family's own recipe when `--model` names a family
    that has one (progan: z 512, WGAN-GP, Adam 1e-3 ...) and no preset is named; then the flags given."""
    model = given.get(("model", "name"))
    preset = preset or (model if model in MODEL_RECIPES else None)
    return {**(preset_overrides(preset) if preset else {}), **given}


def describe_presets() -> str:
    width = max(map(len, PRESETS))
    return "\n".join(f"{name:<{width}}  {description}" for name, (description, _) in PRESETS.items())
