"""Every loss, regularizer and trick trains a DCGAN on real MNIST digits for a few hundred images without NaN;
presets, conditional runs, the adversarial autoencoder, ADA, mixed precision and bench run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main

from data_slices import make_store, mnist_store

SHORT = ["--model", "dcgan",
         "--kimg", "0.25", "--batch", "32", "--tick-kimg", "0.125", "--g-width", "8", "--d-width", "8",
         "--no-progress"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return mnist_store(tmp_path_factory.mktemp("zoo") / "digits.gfs", 256)


def train(digits: Path, out: Path, *args: str) -> list[dict]:
    result = CliRunner().invoke(main, ["train", "--data", str(digits), "--out", str(out), *SHORT, *args])
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("args", [
    ["--loss", "minimax"], ["--loss", "wgan", "--d-steps", "2"], ["--loss", "wgan-gp", "--no-d-batchnorm"],
    ["--loss", "hinge", "--spectral-norm"], ["--loss", "lsgan", "--label-smoothing", "0.1"],
    ["--r1-gamma", "1", "--r1-every", "2", "--instance-noise", "0.1", "--mbstd"],
    ["--g-upsample", "resize", "--ema-kimg", "1", "--ema-rampup", "0.05", "--label-flip", "0.05"],
    ["--model", "mlp", "--loss", "hinge", "--spectral-norm", "--mbstd", "--d-dropout", "0.3"],
])
def test_each_loss_and_trick_trains_without_nan(digits, tmp_path, args):
    rows = train(digits, tmp_path, *args)
    assert len(rows) == 2 and all(abs(r["loss_d"]) < 1e4 and abs(r["loss_g"]) < 1e4 for r in rows)


def test_presets_are_listed_and_applied(digits, tmp_path):
    listing = CliRunner().invoke(main, ["train", "--list-presets"])
    assert "wgan-gp" in listing.output and "keras-gan" in listing.output and "dcgan-celeba32" in listing.output
    train(digits, tmp_path, "--preset", "wgan-gp", "--d-steps", "2")
    config = json.loads(next(tmp_path.iterdir()).joinpath("config.json").read_text())["train"]
    assert config["loss"]["name"] == "wgan-gp" and config["beta1"] == 0.0 and config["d_steps"] == 2


def test_conditional_training_needs_labels(tmp_path):
    import numpy as np

    make_store(tmp_path / "nolabels.gfs", np.zeros((64, 1, 28, 28), np.uint8))  # no label names
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "nolabels.gfs"), "--cond", "--dry-run"])
    assert result.exit_code == 2 and "--labels folders" in result.output


def test_conditional_run_records_its_classes_and_draws_a_class_per_column(digits, tmp_path):
    train(digits, tmp_path, "--cond", "--grid-size", "20")
    run_dir = next(tmp_path.iterdir())
    assert json.loads((run_dir / "config.json").read_text())["train"]["model"]["num_classes"] == 10
    grid = Image.open(run_dir / "samples" / "latest.png")  # 20 samples in ten columns, one per class, shown 2x
    assert grid.size == (2 * (10 * 30 + 2), 2 * (2 * 30 + 2))


def test_adversarial_autoencoder_trains_reconstructs_and_generates(digits, tmp_path):
    rows = train(digits, tmp_path, "--model", "aae", "--z-dim", "8", "--kimg", "0.5", "--tick-kimg", "0.25")
    assert rows[-1]["loss_recon"] < rows[0]["loss_recon"]
    run_dir = next(tmp_path.iterdir())
    assert (run_dir / "samples" / "reconstructions.png").exists()
    result = CliRunner().invoke(main, ["generate", str(run_dir), "--seeds", "0-3", "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 0, result.output


def test_ada_probability_rises_when_d_overfits_a_tiny_dataset(tmp_path):
    tiny = mnist_store(tmp_path / "tiny.gfs", 32)
    rows = train(tiny, tmp_path / "runs", "--augment", "ada", "--ada-kimg", "2", "--kimg", "1", "--tick-kimg", "0.25",
                 "--d-width", "16")
    probabilities = [r["augment_p"] for r in rows]
    assert probabilities[0] > 0 and probabilities[-1] > probabilities[0]


def test_preview_augment_writes_reals_with_copies(digits, tmp_path):
    out = tmp_path / "aug.png"
    result = CliRunner().invoke(main, ["preview-augment", str(digits), "--n", "4", "--copies", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from PIL import Image

    assert Image.open(out).size == (4 * 30 + 2, 4 * 30 + 2)


@pytest.mark.parametrize("args", [["--precision", "bf16", "--channels-last"], ["--precision", "fp16"]])
def test_mixed_precision_trains_and_saves_its_scaler(digits, tmp_path, args):
    rows = train(digits, tmp_path, *args)
    assert len(rows) == 2 and all(abs(r["loss_d"]) < 1e4 for r in rows)
    from ganforge.runs.checkpoint import latest_checkpoint, load_checkpoint

    _, meta = load_checkpoint(latest_checkpoint(next(tmp_path.iterdir())))
    assert ("G" in meta["precision"]) == (args[1] == "fp16")


def test_bench_reports_ratio_to_the_textbook_loop():
    from ganforge.bench import run_bench

    result = run_bench("dcgan", 32, 16, "fp32", False, kimg=0.2, device_name="cpu", reference_seconds=1.0)
    assert result.ganforge_img_per_s > 0 and result.reference_img_per_s > 0
    assert result.gflop_per_img > 0 and 0 < result.fraction_of_peak < 1
    assert "ratio" in result.report() and "of peak" in result.report()
