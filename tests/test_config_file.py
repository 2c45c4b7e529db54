"""`ganforge train --config FILE`: settings from JSON, TOML or YAML, flags over them, a run's config.json to rerun
it, and an unknown key refused by name."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ganforge.cli import main

from data_slices import make_store
from run_helpers import only_run


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return make_store(tmp_path / "s.gfs", np.random.default_rng(0).integers(0, 256, (32, 1, 16, 16), np.uint8)).path


def dry_run(*args: str) -> str:
    result = CliRunner().invoke(main, ["train", "--dry-run", *args])
    assert result.exit_code == 0, result.output
    return result.output


def setting_line(output: str, flag: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(flag + " "))


def test_a_toml_file_sets_the_run_and_flags_on_the_line_win(store, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(f'data = "{store}"\nkimg = 3\nbatch = 16\n[model]\nname = "dcgan"\ng_width = 8\n'
                      '[loss]\nname = "hinge"\n')
    output = dry_run("--config", str(config), "--batch", "8")
    assert "8" in setting_line(output, "--g-width") and "hinge" in setting_line(output, "--loss")
    assert setting_line(output, "--batch").split()[1] == "8"  # the flag over the file's 16
    assert setting_line(output, "--kimg").split()[1] == "3"


has_yaml = importlib.util.find_spec("yaml") is not None


@pytest.mark.parametrize("name", ["run.json", pytest.param("run.yaml", marks=pytest.mark.skipif(
    not has_yaml, reason="YAML needs PyYAML (installed with ganforge[dev])"))])
def test_json_and_yaml_files_read_alike(store, tmp_path, name):
    values = {"data": str(store), "model": {"name": "mlp", "d_width": 16}, "lr_d": 1e-3}
    (tmp_path / "run.json").write_text(json.dumps(values))
    (tmp_path / "run.yaml").write_text(f"data: {store}\nmodel:\n  name: mlp\n  d_width: 16\nlr_d: 0.001\n")
    output = dry_run("--config", str(tmp_path / name))
    assert "mlp" in setting_line(output, "--model") and "16" in setting_line(output, "--d-width")
    assert "0.001" in setting_line(output, "--lr-d") or "1e-3" in setting_line(output, "--lr-d")


def test_a_runs_own_config_json_trains_it_again(store, tmp_path):
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "runs"), "--model",
                                       "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--kimg",
                                       "0.016", "--seed", "7", "--no-progress"])
    assert result.exit_code == 0, result.output
    first = only_run(tmp_path / "runs")
    output = dry_run("--config", str(first / "config.json"))
    assert setting_line(output, "--seed").split()[1] == "7" and "4" in setting_line(output, "--g-width")


@pytest.mark.parametrize("text, problem", [
    ('{"model": {"g_widht": 8}}', "model.g_widht is not a setting"),
    ('{"kimgs": 3}', "kimgs is not a setting"),
    ("[1, 2]", "must hold a table of settings"),
    ("{", "cannot be read"),
])
def test_a_bad_file_is_refused_in_one_line_naming_it(tmp_path, text, problem):
    config = tmp_path / "bad.json"
    config.write_text(text)
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--dry-run"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert str(config) in errors[0] and problem in errors[0], errors[0]


def test_config_with_resume_is_refused(tmp_path):
    (tmp_path / "c.json").write_text("{}")
    result = CliRunner().invoke(main, ["train", "--config", str(tmp_path / "c.json"), "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "--config starts a new run" in result.output, result.output
