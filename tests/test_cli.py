import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main

from data_slices import mnist_store


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    store = mnist_store(root / "digits.gfs", 256)
    result = CliRunner().invoke(main, ["train", "--model", "dcgan",
                                       "--data", str(store), "--out", str(root / "runs"), "--kimg", "0.5",
                                       "--batch", "32", "--tick-kimg", "0.25", "--g-width", "8", "--d-width", "8",
                                       "--ema-kimg", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    return root / "runs" / "00001-dcgan-digits"


def test_python_dash_m_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "ganforge", "--help"], capture_output=True, text=True, check=True)
    listed = re.findall(r"^  (\S+)", out.stdout.split("Commands:")[1], re.M)  # wrapped help lines indent deeper
    assert sorted(listed) == sorted(main.commands)


def test_train_writes_the_documented_run_folder(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.json", "log.jsonl", "loss.png", "reals.png", "samples", "checkpoints"} <= names
    config = json.loads((trained_run / "config.json").read_text())
    assert config["train"]["kimg"] == 0.5 and config["dataset"]["shape"] == [1, 28, 28]
    rows = [json.loads(line) for line in (trained_run / "log.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in rows] == [1, 2]
    for key in ("kimg", "img_per_s", "sec_per_kimg", "loss_d", "loss_g", "d_real", "d_fake", "acc_real",
                "acc_fake", "peak_mem_gb"):
        assert key in rows[-1]
    assert Image.open(trained_run / "samples" / "latest.png").size == Image.open(trained_run / "reals.png").size


def test_dry_run_prints_config_and_creates_nothing(tmp_path):
    result = CliRunner().invoke(main, ["train", "--dry-run", "--model", "mlp", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    rows = {line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1] for line in result.output.splitlines()
            if line.startswith("--")}
    assert rows["--model"] == "mlp  (default dcgan)" and rows["--kimg"] == "100" and "G 1.49M" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "missing.gfs"], "missing.gfs: no such store"),
    (["train", "--model", "nope", "--dry-run"], "--model 'nope' is not a model"),
    (["train", "--batch", "0", "--dry-run"], "--batch must be at least 1"),
    (["train", "--resume", "no/such/run"], "no such run folder"),
    (["generate", "no/such/run"], "no such run folder"),
    (["generate", "x", "--seeds", "5-1"], "runs backwards"),
])
def test_bad_input_is_one_clear_line_without_traceback(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.splitlines()) == 1, result.output


def test_resume_refuses_to_change_the_architecture(trained_run):
    result = CliRunner().invoke(main, ["train", "--resume", str(trained_run), "--g-width", "16"])
    assert result.exit_code == 2 and "--g-width" in result.output


@pytest.mark.parametrize("flags, named", [(["--no-d-batchnorm"], "--d-batchnorm"), (["--phase-kimg", "2"], None),
                                          (["--preset", "wgan"], None), (["--seed", "1", "--cond"], "--cond, --seed"),
                                          (["--features", "lite1"], None)])
def test_resume_refuses_flags_that_change_the_starting_point(trained_run, flags, named):
    result = CliRunner().invoke(main, ["train", "--resume", str(trained_run), *flags])
    assert result.exit_code == 2 and f"drop {named or flags[0]} (they cannot change mid-run)" in result.output


def test_train_help_shows_each_settings_default_from_its_field():
    train = main.commands["train"]
    with train.make_context("train", []) as ctx:
        rows = dict(record for param in train.params if (record := param.get_help_record(ctx)) is not None)
    assert rows["--g-width INTEGER"].endswith("[64]") and rows["--lr-g FLOAT"].endswith("[2e-4]")
    assert rows["--d-batchnorm / --no-d-batchnorm"].endswith("[on]") and rows["--cond / --no-cond"].endswith("[off]")
    assert rows["--data PATH"].endswith("[embedded MNIST]") and rows["--phase-kimg FLOAT"].endswith("[600]")
    assert rows["--batch-gpu AUTO|N"].endswith("[0]") and "0 = all at once" in rows["--batch-gpu AUTO|N"]


def test_train_help_lists_every_option_once_in_its_section():
    from ganforge.cli.options import SECTIONS

    out = CliRunner().invoke(main, ["train", "--help"]).output
    headers = [line.rstrip(":") for line in out.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headers == list(SECTIONS)  # in order, none empty
    flags = re.findall(r"^  (--[a-z0-9-]+)", out, re.M)
    assert len(flags) == len(set(flags)) and {"--data", "--minutes", "--lr-g", "--loss", "--augment"} <= set(flags)
    sections = dict(zip(headers, re.split(r"^[A-Z][^\n]*:$", out, flags=re.M)[1:], strict=True))
    assert "--g-width" in sections["Model"] and "--r1-gamma" in sections["Loss and regularization"]
    assert "--minutes" in sections["Data, length and run folder"] and "--precision" in sections["Precision and scale"]
    assert "--resume" in sections["Run"] and "--ada-target" in sections["Augmentation"]


def test_flags_left_out_keep_the_presets_values(tmp_path):
    result = CliRunner().invoke(main, ["train", "--dry-run", "--preset", "wgan-gp", "--lr-d", "3e-4", "--no-cond",
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1] for line in result.output.splitlines() if line.startswith("--")}
    assert lines["--lr-d"] == "3e-4" and lines["--lr-g"] == "1e-4" and lines["--d-steps"] == "5"
    assert lines["--d-batchnorm"] == "off" and lines["--cond"] == "off"
    assert lines["--out"] == str(tmp_path / "r")


def test_generate_grid_embeds_run_and_seeds(trained_run, tmp_path):
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(main, ["generate", str(trained_run), "--seeds", "0-8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    image = Image.open(out)
    assert image.text["seeds"] == "0,1,2,3,4,5,6,7,8" and image.text["run"] == str(trained_run)
    assert image.size == (3 * 30 + 2, 3 * 30 + 2)  # 3x3 cells of 28 px with 2 px padding


def test_a_seed_renders_the_same_image_whatever_else_is_generated(trained_run, tmp_path):
    CliRunner().invoke(main, ["generate", str(trained_run), "--seeds", "3,4,5", "--out", str(tmp_path / "a")])
    CliRunner().invoke(main, ["generate", str(trained_run), "--seeds", "5", "--out", str(tmp_path / "b")])
    first, alone = Image.open(tmp_path / "a" / "seed0005.png"), Image.open(tmp_path / "b" / "seed0005.png")
    assert first.tobytes() == alone.tobytes() and first.text["seed"] == "5"
    assert Image.open(tmp_path / "a" / "seed0004.png").tobytes() != first.tobytes()


def test_resolution_outside_a_summary_without_data_is_refused_not_ignored(tmp_path):
    for flags in (["--resolution", "63", "--dry-run"], ["--resolution", "32", "--summary", "--data", "x.gfs"]):
        result = CliRunner().invoke(main, ["train", *flags])
        assert result.exit_code == 2 and "--resolution is the image size of a --summary" in result.output, flags


def test_a_flag_error_under_torchrun_is_said_once_by_rank_0_but_a_file_error_by_every_rank(tmp_path):
    """Every rank parses the same flags, so each meets the same ConfigError: four ranks printing it is noise. A
    missing or damaged file may be one rank's own trouble, so each rank still says it."""
    flags = ["train", "--resolution", "63", "--dry-run"]
    for rank, said in (("0", True), ("1", False)):
        result = CliRunner().invoke(main, flags, env={"RANK": rank})
        assert result.exit_code == 2 and ("--resolution is the image size" in result.output) == said, result.output
    missing = ["generate", str(tmp_path), "--out", str(tmp_path / "g.png")]
    result = CliRunner().invoke(main, missing, env={"RANK": "1"})
    assert result.exit_code == 2 and "made by `ganforge train`" in result.output, result.output


def test_generate_on_a_folder_that_is_no_run_says_what_to_pass(tmp_path):
    result = CliRunner().invoke(main, ["generate", str(tmp_path), "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 2 and "made by `ganforge train`" in result.output, result.output
