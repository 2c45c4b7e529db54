"""What `ganforge train` trains when neither --model nor --preset is named: the recipe that measured best for
stores like the one given, on the device at hand.

The rules come from BENCHMARKS.md ("Quality for a wall-clock budget", "Below 64 px" and "The demo's first
impression"); the line `ganforge train` prints first says which recipe it chose and the measurement behind it.
Naming --model or --preset turns the choice off; any flag given still overrides the chosen recipe's setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ganforge.device import has_fast_bf16
from ganforge.models.efficientnet_lite import LITE0, VARIANTS
from ganforge.models.efficientnet_lite import extra_installed as projected_extra_installed
from ganforge.recipes.presets import Overrides, preset_overrides

FASTGAN_MIN_SIDE = 64  # FastGAN's generator starts at 4 px and needs 4 doublings to its first skip excitation
MEASURED_LARGE_SIDE = 128  # from this size on, the 128 px cars are the nearer measurement


@dataclass(frozen=True)
class Measurement:
    """One of BENCHMARKS.md's side-by-side rows: FastGAN and Projected GAN trained for the same minutes on one
    device and data set, and the preset that won (`winner`) and the one a machine without `ganforge[projected]`
    falls back to (`runner_up`)."""

    device: str  # "cpu" or "cuda"
    large: bool  # measured on 128 px cars (else 64 px anime faces)
    minutes: float
    winner: str
    runner_up: str
    where: str
    scores: dict[str, str]
    # Projected GAN's feature network that won here (--features); with "lite0" elsewhere, scores["lite0"] is
    # the Lite0 run's, shown when the winner's wheel is missing
    features: str = "lite0"


MEASUREMENTS = (
    Measurement("cuda", False, 6.5, "projected", "fastgan", "after 6.5 minutes side by side on an H200 on 64 px "
                "anime faces", {"projected": "FID 55.1, KID 0.040, recall 0.084",
                                "fastgan": "FID 59.5, KID 0.049, recall 0.019"}),
    Measurement("cpu", False, 10, "projected-cpu", "fastgan-cpu",
                "after 10 minutes (35 kimg) on the benchmarks' 2-core CPU on 64 px anime "
                "faces, with a quarter of the papers' G width", {"projected": "FID 66.9, KID 0.056, precision 0.31",
                                                                "lite0": "FID 81.6, KID 0.075, precision 0.19",
                                                                "fastgan": "FID 155.2, KID 0.153, precision 0.14"},
                features="lite1"),
    Measurement("cpu", False, 60, "projected-cpu", "fastgan-cpu",
                "after 60 minutes (207 kimg) on the benchmarks' 2-core CPU on 64 px anime "
                "faces, with a quarter of the papers' G width", {"projected": "FID 44.0, KID 0.031, recall 0.117",
                                                                "lite0": "FID 50.5, KID 0.036, recall 0.067",
                                                                "fastgan": "FID 75.8, KID 0.061, recall 0.001"},
                features="lite1"),
    Measurement("cpu", True, 10, "projected-cpu", "fastgan-cpu",
                "after 10 minutes (7 kimg) on the benchmarks' 2-core CPU on 128 px cars, "
                "with a quarter of the papers' G width", {"projected": "FID 170.2, KID 0.194, the same white car",
                                                         "fastgan": "FID 365.7, KID 0.493, no cars"}),
    Measurement("cpu", True, 60, "projected-cpu", "fastgan-cpu",
                "after 60 minutes (45.5 kimg) on the benchmarks' 2-core CPU on 128 px cars, "
                "with a quarter of the papers' G width", {"projected": "FID 47.0, KID 0.032, precision 0.21",
                                                         "fastgan": "FID 304.9, KID 0.417, precision 0"}),
)


# Issue 34's measurements below 64 px: each recipe trained for 10 minutes on the benchmarks' 2-core CPU, scored at
# n = 1,000 (BENCHMARKS.md, "Below 64 px").
SMALL_PHOTOS_MEASURED = "after 10 minutes on the benchmarks' 2-core CPU on 32 px cars and 32 px anime faces"
SMALL_GREY_MEASURED = "after 10 minutes on the benchmarks' 2-core CPU on Fashion-MNIST"
SMALL_IMAGE_SCORES = {"projected": "FID 94.6 and 99.8, recall 0.086 and 0.011",
                      "dcgan-small": "FID 167.9 and 305.8, recall 0 and 0",
                      "dcgan-small grey": "FID 49.0, recall 0.434",
                      "projected grey": "FID 86.6, recall 0.072"}
# Projected GAN with and without MSGAN's term, 10 minutes' kimg in bf16, n = 2,000 (BENCHMARKS.md, "The pair again
# on a bf16 CPU")
SMALL_PHOTOS_SEEKING = ("recall 0.111 against 0.054 without it on the 32 px cars, and 0.042 against 0.004 on the 32 px "
                        "anime faces, with FID 75.0 against 89.4 there")
# The same recipe with and without the pixel head, 10 minutes' kimg on the 32 px anime faces and cars, two seeds
# each, n = 2,000 (BENCHMARKS.md, "A head on the pixels")
SMALL_PHOTOS_PIXEL_HEAD = ("FID 53.7 and 65.7 against 71.3 and 71.8 on two seeds, recall 0.065 and 0.038 against "
                           "0.029 and 0.024, where the recipe alone drew two to four hair palettes; on the 32 px cars "
                           "FID 59.9 and 63.0 against 92.5 and 89.4, whole cars where the recipe's were often torn")


def nearest_measurement(device: torch.device, side: int, minutes: float | None) -> Measurement:
    """The row that speaks for this device type, store size and budget: measured on the same device type, on the
    data set nearer in resolution, at the budget nearest `minutes` by ratio (the longest measured without one,
    since a run without --minutes is one trained to its full length)."""
    kind = "cuda" if device.type == "cuda" else "cpu"
    rows = [row for row in MEASUREMENTS if row.device == kind]
    large = side >= MEASURED_LARGE_SIDE
    rows = [row for row in rows if row.large == large] or rows
    if not minutes or minutes <= 0:
        return max(rows, key=lambda row: row.minutes)
    return min(rows, key=lambda row: abs(math.log(minutes / row.minutes)))


@dataclass(frozen=True)
class RecipeChoice:
    preset: str
    reason: str
    fast_bf16: bool
    conditional: bool = False
    features: str | None = None  # Projected GAN's --features, where another than the preset's measured better
    mode_seeking: float = 0.0  # MSGAN's term, where a recipe narrowed to a few images (within classes) without it
    pixel_head: bool = False  # Projected GAN's head on the pixels themselves, where its palettes narrowed without it

    def overrides(self) -> Overrides:
        """The preset's settings, plus bf16 and channels-last where this device runs them faster, plus --cond
        where the recipe uses the store's labels, plus the feature network that measured best, plus MSGAN's
        mode-seeking term and Projected GAN's pixel head where they are used."""
        speed: Overrides = {("precision",): "bf16", ("channels_last",): True} if self.fast_bf16 else {}
        labels: Overrides = {("model", "conditional"): True} if self.conditional else {}
        features: Overrides = {("model", "features"): self.features} if self.features else {}
        seeking: Overrides = {("loss", "mode_seeking"): self.mode_seeking} if self.mode_seeking else {}
        pixels: Overrides = {("model", "pixel_head"): True} if self.pixel_head else {}
        return {**preset_overrides(self.preset), **speed, **labels, **features, **seeking, **pixels}

    def describe(self) -> str:
        flags = ((" + --cond" if self.conditional else "") + (f" --features {self.features}" if self.features else "")
                 + (f" --mode-seeking {self.mode_seeking:g}" if self.mode_seeking else "")
                 + (" --pixel-head" if self.pixel_head else ""))
        speed = "; bf16 + channels-last (this device computes bf16 natively)" if self.fast_bf16 else ""
        return (f"recipe {self.preset}{flags} (chosen because no --model or --preset was given): {self.reason}"
                f"{speed}. Name --model or --preset to choose yourself.")


def choose_recipe(shape: tuple[int, int, int], count: int | None, device: torch.device,
                  classes: int = 0, minutes: float | None = None) -> RecipeChoice:
    """The measured-best recipe for `count` images of `shape` (C, H, W) with `classes` labelled classes (0 or 1:
    unlabelled), trained on `device` for `minutes` (None or 0: to its --kimg)."""
    channels, height, width = shape
    images = f"{count:,} images of {height}x{width}" if count is not None else f"{height}x{width} images"
    bf16 = has_fast_bf16(device)
    row = nearest_measurement(device, min(height, width), minutes)
    if min(height, width) < FASTGAN_MIN_SIDE:
        return _small_image_recipe(images, channels, classes, bf16, row.winner)
    budget = (f" (the measured budget nearest your {minutes:g} minutes)" if minutes and minutes > 0 else "")
    if not projected_extra_installed():
        return RecipeChoice(
            row.runner_up,
            f"{images}: FastGAN, the runner-up {row.where}{budget} ({row.scores['fastgan']}); the winner, Projected "
            f'GAN ({row.scores.get("lite0", row.scores["projected"])}), needs `pip install "ganforge[projected]"` '
            "(BENCHMARKS.md)", bf16)
    if row.features != LITE0.name:
        variant = VARIANTS[row.features]
        if variant.installed():
            return RecipeChoice(
                row.winner,
                f"{images}: Projected GAN on {variant.title} features reached {row.scores['projected']} {row.where}"
                f"{budget}, against {row.scores['lite0']} on Lite0's and FastGAN's {row.scores['fastgan']} "
                "(BENCHMARKS.md)", bf16, features=variant.name)
        return RecipeChoice(
            row.winner,
            f"{images}: Projected GAN reached {row.scores['lite0']} {row.where}{budget}, against FastGAN's "
            f"{row.scores['fastgan']}; on {variant.title} features it reached {row.scores['projected']}: pip "
            f'install "ganforge[{variant.extra}]" for them (BENCHMARKS.md)', bf16)
    return RecipeChoice(
        row.winner,
        f"{images}: Projected GAN reached {row.scores['projected']} {row.where}{budget}, against FastGAN's "
        f"{row.scores['fastgan']} (BENCHMARKS.md)", bf16)


def _small_image_recipe(images: str, channels: int, classes: int, bf16: bool, winner: str) -> RecipeChoice:
    """Below FastGAN's 64 px: one-channel images (digits, clothes) get the DCGAN recipe, class-conditional where
    the store has labels; colour images get Projected GAN (G stopped early, D on the images resized to 64 px, and
    a head on the pixels themselves), because the DCGAN recipes collapsed on the 32 px photos (BENCHMARKS.md,
    "Below 64 px")."""
    if channels == 1 and classes >= 2:
        return RecipeChoice(
            "dcgan-small",
            f"{images} in {classes} classes, below FastGAN's {FASTGAN_MIN_SIDE} px minimum: this DCGAN recipe, "
            "class-conditional with MSGAN's mode-seeking term at 0.2, drew 95 % confidently readable digits in 100 "
            "kimg (93 % without the term, 75 % without the labels; BENCHMARKS.md, the demo's first impression); on "
            "Fashion-MNIST at 100 kimg the term took FID from 66.6 to 53.9 and recall from 0.13 to 0.23, where each "
            "class had been one garment drawn over and over (\"Below 64 px\")",
            bf16, conditional=True, mode_seeking=0.2)
    if channels == 1:
        return RecipeChoice(
            "dcgan-small",
            f"{images}, grey, below FastGAN's {FASTGAN_MIN_SIDE} px minimum: this DCGAN recipe reached "
            f"{SMALL_IMAGE_SCORES['dcgan-small grey']} {SMALL_GREY_MEASURED}, against Projected GAN's "
            f"{SMALL_IMAGE_SCORES['projected grey']} (BENCHMARKS.md, \"Below 64 px\")", bf16)
    if not projected_extra_installed():
        return RecipeChoice(
            "dcgan-small",
            f"{images}, below FastGAN's {FASTGAN_MIN_SIDE} px minimum: the DCGAN recipe of the 28 px digits, the "
            f"runner-up {SMALL_PHOTOS_MEASURED} ({SMALL_IMAGE_SCORES['dcgan-small']}); the winner, Projected GAN "
            f'({SMALL_IMAGE_SCORES["projected"]}), needs `pip install "ganforge[projected]"` (BENCHMARKS.md)', bf16)
    return RecipeChoice(
        winner,
        f"{images}, below FastGAN's {FASTGAN_MIN_SIDE} px minimum: Projected GAN (G from 4 px, D on the images "
        f"resized to 64 px) reached {SMALL_IMAGE_SCORES['projected']} {SMALL_PHOTOS_MEASURED}, where the digits' "
        f"DCGAN recipe collapsed ({SMALL_IMAGE_SCORES['dcgan-small']}); MSGAN's mode-seeking term slows its "
        f"narrowing to a few images as it trains on ({SMALL_PHOTOS_SEEKING}; BENCHMARKS.md, \"Mode collapse\"); a "
        f"head on the pixels themselves widens its palettes on the 32 px anime faces ({SMALL_PHOTOS_PIXEL_HEAD}; "
        "\"A head on the pixels\")",
        bf16, mode_seeking=1.0, pixel_head=True)


def translation_recipe(pairing: str, input_shape: tuple[int, int, int], output_shape: tuple[int, int, int],
                       device: torch.device) -> RecipeChoice:
    """The image-to-image paper that fits a two-sided store: CycleGAN for unpaired domains, SRGAN for pairs whose
    targets are 4x their inputs, pix2pix for other pairs."""
    fast = device.type == "cuda" and has_fast_bf16(device)
    if pairing == "unpaired":
        return RecipeChoice("cyclegan", "the store holds two unpaired domains (Zhu et al. 2017)", fast)
    if output_shape[1:] == tuple(4 * side for side in input_shape[1:]):
        return RecipeChoice("srgan", "the store's targets are 4x its inputs: x4 super-resolution (Ledig et al. "
                            "2017)", fast)
    return RecipeChoice("pix2pix", "the store holds aligned input/target pairs (Isola et al. 2017)", fast)


def with_default_recipe(given: Overrides, shape: tuple[int, int, int], count: int | None, classes: int,
                        device: torch.device, pairing: str = "none",
                        input_shape: tuple[int, int, int] | None = None) -> tuple[Overrides, RecipeChoice | None]:
    """`given` on top of the chosen recipe, and the choice; unchanged (and None) when `given` names a model.
    --no-cond among `given` keeps the recipe from using the store's `classes`. A two-sided store (`pairing`
    "paired" or "unpaired", `shape` its targets', `input_shape` its inputs') gets an image-to-image recipe."""
    if ("model", "name") in given:
        return given, None
    if pairing != "none":
        choice = translation_recipe(pairing, input_shape or shape, shape, device)
    else:
        usable = classes if given.get(("model", "conditional"), True) else 0
        budget = given.get(("minutes",))
        minutes = float(budget) if isinstance(budget, int | float) else None
        choice = choose_recipe(shape, count, device, usable, minutes)
    return {**choice.overrides(), **given}, choice
