import pytest

from ganforge.config import ModelConfig, TrainConfig, apply_overrides, changed_settings
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
