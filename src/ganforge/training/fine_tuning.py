"""The recipe of a run that starts from a trained GAN (`--init`): the source's own, with the flags given on top, and
on a few-shot store (fewer than FEW_SHOT_IMAGES images) the defaults that keep a small set from collapsing or
being copied: augmentation, FreezeD (Mo et al. 2020) and a memorization check at the end.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ganforge.config import TrainConfig
from ganforge.config.setting import SettingPath
from ganforge.models import build_networks, family_of
from ganforge.models.growing import build_schedule
from ganforge.training.init_from import InitSource

FEW_SHOT_IMAGES = 2000  # below this many images, fine-tuning needs the few-shot defaults (Karras et al. 2020, Fig. 1)
# What a run takes from its source besides the model, loss and augmentation tables: how it was optimized.
RECIPE_SETTINGS = ("batch", "batch_gpu", "lr_g", "lr_d", "lr_decay", "schedule", "beta1", "beta2", "d_steps",
                   "ema_kimg", "ema_rampup", "fade_kimg", "stable_kimg", "precision", "channels_last", "tick_kimg",
                   "metrics_extractor")
# When the source trained without augmentation. Measured against ADA on 100 images (BENCHMARKS.md, "Fine-tuning"):
# digits to Fashion-MNIST, FID 89.4 against 104.2; ADA's overfitting measure never raised p on Projected GAN's
# patch logits, and that run collapsed.
FEW_SHOT_AUGMENT = "diffaugment"


def fine_tuning_recipe(given: dict[SettingPath, Any], source: InitSource, count: int, classes: int,
                       shape: tuple[int, int, int]) -> tuple[dict[SettingPath, Any], str]:
    """The settings of a run from `source` on a store of `count` images with `classes` labels, and the line saying
    what was chosen. The given flags win over everything."""
    recipe = _source_recipe(source.config)
    notes = [f"fine-tuning: the recipe of {source.path} ({source.config.model.name}, --loss "
             f"{source.config.loss.name}, --batch {source.config.batch}, --lr-g {source.config.lr_g:g}, "
             f"--lr-d {source.config.lr_d:g})"]
    if recipe[("model", "conditional")] and classes < 2 and ("model", "conditional") not in given:
        recipe.update({("model", "conditional"): False, ("model", "num_classes"): 0})
        notes.append("the source is class-conditional and these images have no labels: trained unconditionally")
    elif recipe[("model", "conditional")]:
        theirs = source.config.model.num_classes
        notes += [f"new class embedding: the source has {theirs} classes, these images {classes}"] \
            if theirs != classes else []
    reached = _grown_side(source)
    if reached is not None and reached <= shape[1]:
        # Growing again from 4 px would retrain, and unlearn, the resolutions the source has already learnt; the
        # ones it has not reached yet (a source stopped mid-way) still need their fade-ins.
        recipe[("grow_start",)] = reached
        notes += [f"progressive growing from the {reached} px the source has grown to: the run fades in "
                  f"{reached * 2} px first"] if reached < shape[1] else []
    if count < FEW_SHOT_IMAGES:
        few_shot = []
        family = family_of(source.config.model.name)
        if ("augment", "name") not in given and recipe[("augment", "name")] == "none" and family.augments:
            recipe[("augment", "name")] = FEW_SHOT_AUGMENT
            few_shot.append(f"--augment {FEW_SHOT_AUGMENT}")
        if (("freeze_d",) not in given and family.d_blocks is not None
                and source.tensors.get("D") and source.image_shape[1:] == shape[1:]):
            recipe[("freeze_d",)] = default_frozen_blocks(source.config, shape)
            few_shot.append(f"--freeze-d {recipe[('freeze_d',)]} (FreezeD)" if recipe[("freeze_d",)] else
                            f"no FreezeD (it measured worse for {family.name}: BENCHMARKS.md, \"Fine-tuning\")")
        if ("memorization",) not in given:
            few_shot.append("a memorization check at the end")
        if few_shot:
            notes.append(f"few-shot ({count} < {FEW_SHOT_IMAGES} images): " + ", ".join(few_shot))
    return {**recipe, **given}, "; ".join(notes)


def _grown_side(source: InitSource) -> int | None:
    """The resolution a growing source has fully faded in by its kimg (a source stopped mid-fade has not yet
    grown to the resolution it was fading in); None for a family that does not grow."""
    config = source.config
    if not family_of(config.model.name).grows:
        return None
    schedule = build_schedule(True, source.image_shape[1], config.batch, config.fade_kimg, config.stable_kimg,
                              config.grow_start)
    phase = schedule.phase_at(max(0, source.nimg - 1))
    return phase.resolution // 2 if phase.fading else phase.resolution


def default_frozen_blocks(config: TrainConfig, shape: tuple[int, int, int]) -> int:
    """FreezeD's default: the family's share of D's first blocks (rounded down, at least one when the share is
    above 0), the ones that see low-level image statistics, which carry over between data sets. Projected GAN's
    share is 0: its D already sees the images through a frozen ImageNet network."""
    family = family_of(config.model.name)
    assert family.d_blocks is not None
    if family.few_shot_freeze_share <= 0:
        return 0
    with torch.device("meta"):
        discriminator = build_networks(config.model, shape).discriminator
    return max(1, int(len(family.d_blocks(discriminator)) * family.few_shot_freeze_share))


def _source_recipe(config: TrainConfig) -> dict[SettingPath, Any]:
    raw = dataclasses.asdict(config)
    recipe: dict[SettingPath, Any] = {}
    for table in ("model", "loss", "augment"):
        recipe.update({(table, name): value for name, value in raw[table].items() if name != "input_shape"})
    recipe.update({(name,): raw[name] for name in RECIPE_SETTINGS})
    return recipe


def init_record(source: InitSource) -> dict[SettingPath, Any]:
    """What config.json records of the source: where it is (absolute, so the run does not depend on the working
    directory) and the fingerprint of its weights."""
    where = str(Path(source.given).resolve()) if Path(source.given).exists() else source.given
    return {("init",): where, ("init_sha256",): source.sha256}
