"""Named bundles of `ganforge train` flags: the recipes of the papers and seeds, in one table.

A preset fills settings before the command line does, so `--preset wgan-gp --lr-d 2e-4` is the preset with
one change. `ganforge train --list-presets` prints this table.
"""

from __future__ import annotations

from typing import Any

from ganforge.errors import ConfigError

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
    "progan": ("Karras et al. 2018: progressive growing 600+600 kimg per resolution, WGAN-GP with drift 0.001, "
               "Adam 1e-3 / (0, 0.99), z 512, minibatch stddev, G EMA",
               {("model", "name"): "progan", ("model", "z_dim"): 512, ("model", "mbstd"): True,
                ("loss", "name"): "wgan-gp", ("loss", "drift"): 0.001, ("lr_g",): 1e-3, ("lr_d",): 1e-3,
                ("beta1",): 0.0, ("beta2",): 0.99, ("ema_kimg",): 10.0, ("batch",): 64}),
    "small-data": ("few thousand images: ADA augmentation, R1 gamma 0.1 every 16 steps, G EMA with ramp-up",
                   {("augment", "name"): "ada", ("loss", "r1_gamma"): 0.1, ("ema_kimg",): 10.0,
                    ("ema_rampup",): 0.05}),
}


# Models whose own paper recipe is the sensible default: `--model progan` alone means `--preset progan`.
MODEL_RECIPES = {"progan"}


def preset_overrides(name: str) -> Overrides:
    if name not in PRESETS:
        raise ConfigError(f"--preset {name!r} is not a preset; choose one of: {', '.join(PRESETS)} "
                          "(`ganforge train --list-presets` describes them)")
    return dict(PRESETS[name][1])


def describe_presets() -> str:
    width = max(map(len, PRESETS))
    return "\n".join(f"{name:<{width}}  {description}" for name, (description, _) in PRESETS.items())
