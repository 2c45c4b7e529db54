"""Each model family says what it supports, and a flag it would ignore is refused in one line naming the flag."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ganforge.config import LossConfig, ModelConfig, TrainConfig
from ganforge.errors import ConfigError
from ganforge.generate import check_truncation
from ganforge.models import MODELS, build_networks, validate
from ganforge.models.family import COMMON_OPTIONS

from run_helpers import ganforge

SHAPES = {"mlp": (1, 28, 28), "dcgan": (1, 32, 32), "aae": (1, 32, 32), "progan": (1, 32, 32)}
# A value unlike the default for every model option, to show that a declared option changes the networks.
CHANGED = {"g_width": 16, "d_width": 16, "d_dropout": 0.25, "g_activation": "lrelu", "d_batchnorm": False,
           "spectral_norm": True, "mbstd": True, "g_upsample": "resize", "extra_convs": 1, "fmap_base": 1024,
           "fmap_max": 32, "features": "lite1", "feature_resolution": 96, "pixel_head": True}


def fingerprint(model: ModelConfig, shape: tuple[int, int, int]) -> str:
    with torch.device("meta"):
        networks = build_networks(model, shape)
    nets = [networks.generator, networks.discriminator, networks.encoder]
    return "".join(repr(n) + repr([(k, tuple(v.shape)) for k, v in n.state_dict().items()]) for n in nets if n)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_declared_option_changes_the_networks(name: str) -> None:
    family = MODELS[name]
    base = dataclasses.replace(ModelConfig(name=name), mbstd=False)  # progan's recipe has it on; test both ways
    shape = SHAPES.get(name, (3, 64, 64))
    assert family.options, f"{name} declares no options"
    for option in family.options - COMMON_OPTIONS:
        changed = dataclasses.replace(base, **{option: CHANGED[option]})
        assert fingerprint(changed, shape) != fingerprint(base, shape), f"{name} ignores its option {option}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_undeclared_model_option_is_refused_by_its_flag(name: str) -> None:
    family = MODELS[name]
    for option in sorted(set(CHANGED) - family.options):
        config = TrainConfig(model=dataclasses.replace(ModelConfig(name=name), **{option: CHANGED[option]}))
        flag = "--" + option.replace("_", "-")
        with pytest.raises(ConfigError, match=f"--model {name} does not use {flag}"):
            validate(config)


def test_conditional_losses_augment_and_growing_are_checked_against_the_family() -> None:
    with pytest.raises(ConfigError, match="--model progan has no class-conditional version; drop --cond"):
        validate(TrainConfig(model=ModelConfig(name="progan", conditional=True, num_classes=10)))
    with pytest.raises(ConfigError, match="--model aae has no class-conditional version"):
        validate(TrainConfig(model=ModelConfig(name="aae", conditional=True, num_classes=10)))
    with pytest.raises(ConfigError, match="--augment ada cannot apply"):
        validate(TrainConfig(model=ModelConfig(name="aae"), augment=dataclasses.replace(TrainConfig().augment,
                                                                                           name="ada")))
    with pytest.raises(ConfigError, match="--fade-kimg sets progressive growing"):
        validate(TrainConfig(model=ModelConfig(name="dcgan"), fade_kimg=10))
    validate(TrainConfig(model=ModelConfig(name="dcgan", conditional=True, num_classes=10), loss=LossConfig("hinge")))
    validate(TrainConfig(model=ModelConfig(name="progan", mbstd=True), fade_kimg=10))


def test_truncation_is_refused_where_the_generator_normalises_z() -> None:
    progan = TrainConfig(model=ModelConfig(name="progan"))
    with pytest.raises(ConfigError, match="--truncation 0.7 has no effect on --model progan"):
        check_truncation(progan, 0.7)
    assert check_truncation(progan, 1.0) == 1.0
    assert check_truncation(TrainConfig(), 0.7) == 0.7


def test_the_cli_refuses_an_unsupported_flag_in_one_line_before_building(tmp_path) -> None:
    for args, message in ((("--model", "aae", "--cond"), "--model aae has no class-conditional version"),
                          (("--model", "progan", "--g-width", "32"), "--model progan does not use --g-width")):
        proc = ganforge("train", *args, "--out", str(tmp_path), "--dry-run")
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode != 0 and message in out and "Traceback" not in out, out
        assert len(out.strip().splitlines()) == 1, out
    assert not any(tmp_path.iterdir())
