import pytest

from ganforge.config import (
    AugmentConfig,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    changed_settings,
)
from ganforge.config.registry import check_resume_overrides, describe_config, flag_of, settings
from ganforge.errors import ConfigError


def test_config_round_trips_through_json_dict():
    config = TrainConfig(model=ModelConfig(name="mlp", g_width=32), kimg=12.5, lr_d=1e-4)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_unknown_setting_is_rejected_by_name():
    raw = TrainConfig().to_dict()
    raw["model"]["g_widht"] = 8
    with pytest.raises(ConfigError, match="g_widht"):
        TrainConfig.from_dict(raw)


@pytest.mark.parametrize("bad", [{"batch": 0}, {"kimg": -1}, {"lr_g": 0}, {"d_steps": 0}, {"snap": 0}])
def test_invalid_values_name_the_flag(bad):
    with pytest.raises(ConfigError, match="--"):
        TrainConfig(**bad)


def test_overrides_write_into_nested_settings_and_are_reported():
    base = TrainConfig()
    new = apply_overrides(base, {("model", "name"): "mlp", ("lr_g",): 1e-3})
    assert new.model.name == "mlp" and new.lr_g == 1e-3
    assert changed_settings(base, new) == {"model.name": ("dcgan", "mlp"), "lr_g": (2e-4, 1e-3)}


def test_every_setting_has_a_one_line_help_and_a_flag_of_its_own():
    infos = settings()
    flags = [info.flag for info in infos if info.flag is not None]
    assert len(flags) == len(set(flags))
    for info in infos:
        assert info.help.endswith(".") and "\n" not in info.help and len(info.help) < 200, info.key


def test_defaults_have_their_declared_type_so_config_json_keeps_its_values():
    python_types = {"bool": bool, "int": int, "float": float, "str": str, "path": str, "auto|N": int, "shape": tuple}
    for info in settings():
        assert type(info.default) is python_types[info.kind], info.key


def test_flag_names_follow_the_field_or_its_declared_flag():
    assert flag_of(("model", "g_width")) == "--g-width"
    assert flag_of(("model", "conditional")) == "--cond"
    assert flag_of(("model", "name")) == "--model" and flag_of(("loss", "name")) == "--loss"
    assert flag_of(("augment", "target")) == "--ada-target"
    assert flag_of(("augment", "policy")) == "--diffaugment-policy"
    assert flag_of(("model", "num_classes")) == "model.num_classes"  # no flag: set from the store
    with pytest.raises(KeyError, match="model.g_widht"):
        flag_of(("model", "g_widht"))


def test_the_starting_point_of_a_run_is_fixed_on_resume():
    # --data is not among them: on resume it says where the same store is now (its fingerprint is checked).
    fixed = {info.flag for info in settings() if info.fixed_on_resume}
    assert fixed == {"--model", "--z-dim", "--g-width", "--d-width", "--seed", "--out", "--g-activation",
                     "--d-batchnorm", "--spectral-norm", "--mbstd", "--g-upsample", "--cond", "--d-dropout",
                     "--fmap-base", "--fmap-max", "--fade-kimg", "--stable-kimg", "--extra-convs", "--pool-size",
                     "--init", "--freeze-d", "--freeze-g-mapping", "--features", "--feature-resolution",
                     "--pixel-head"}


def test_resume_refuses_fixed_settings_by_flag_and_allows_hyperparameters():
    check_resume_overrides([("lr_g",), ("kimg",), ("loss", "label_flip")])
    with pytest.raises(ConfigError, match=r"drop --cond, --g-width, --preset \(they cannot change mid-run\)"):
        check_resume_overrides([("model", "g_width"), ("lr_g",), ("model", "conditional")], also_given=["--preset"])


@pytest.mark.parametrize("cls, bad, message", [
    (TrainConfig, {"precision": "fp8"}, "--precision must be fp32, bf16 or fp16, got 'fp8'"),
    (AugmentConfig, {"name": "x"}, "--augment must be none, diffaugment or ada"),
    (TrainConfig, {"metrics_extractor": "vgg"}, "--metrics-extractor must be inception or random-conv"),
])
def test_a_setting_with_choices_refuses_others_naming_its_flag(cls, bad, message):
    with pytest.raises(ConfigError, match=message):
        cls(**bad)


def test_describe_config_shows_each_flag_and_the_default_beside_changed_values():
    text = describe_config(TrainConfig(lr_g=1e-3, model=ModelConfig(g_width=32)))
    assert "--lr-g" in text and "0.001  (default 2e-4)" in text and "32  (default 64)" in text
    assert len(text.splitlines()) == len(settings())
