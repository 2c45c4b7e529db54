"""pix2pix: its networks' shapes, a few steps on real digit pairs, exact resume, and the flags it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import build_networks

from data_slices import digit_pairs_store, digits16_store
from run_helpers import assert_kill_and_resume_matches, only_run

TINY = ["--model", "pix2pix", "--g-width", "4", "--d-width", "4", "--batch", "4", "--tick-kimg", "0.016",
        "--seed", "5", "--no-progress"]


@pytest.mark.parametrize("side, patch", [(16, 2), (32, 2), (256, 30)])
def test_unet_keeps_the_size_and_patchgan_judges_patches(side: int, patch: int) -> None:
    config = ModelConfig(name="pix2pix", g_width=2, d_width=2, input_shape=(1, side, side))
    nets = build_networks(config, (3, side, side))
    inputs = torch.zeros(2, 1, side, side)
    outputs = nets.generator(inputs)
    assert outputs.shape == (2, 3, side, side) and outputs.abs().max() <= 1
    assert nets.discriminator(outputs, inputs).shape == (2, 1, patch, patch)  # 30x30 patches at 256 px, as published


def test_unet_skips_carry_the_input_to_the_output() -> None:
    """Each output pixel depends on the input at that place through the skips, not only through the bottleneck."""
    config = ModelConfig(name="pix2pix", g_width=4, d_width=4, input_shape=(1, 16, 16))
    G = build_networks(config, (1, 16, 16)).generator.eval()
    inputs = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)).requires_grad_()
    G(inputs)[0, 0, 3, 3].backward()
    assert inputs.grad is not None and inputs.grad[0, 0, 2:5, 2:5].abs().sum() > 0


def test_pix2pix_trains_a_few_steps_and_writes_input_output_target_grids(tmp_path: Path) -> None:
    store = digit_pairs_store(tmp_path)
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "runs"), "--kimg",
                                       "0.032", *TINY])
    assert result.exit_code == 0, result.output
    run = only_run(tmp_path / "runs")
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    ticks = [r for r in rows if "tick" in r]
    assert len(ticks) == 2 and all(np.isfinite([r["loss_d"], r["loss_g"], r["loss_recon"]]).all() for r in ticks)
    grid = Image.open(run / "samples" / "latest.png")
    assert 5 < grid.height / grid.width < 5.5  # 16 rows of 3: input | output | target
    assert (run / "loss.png").is_file()
    record = json.loads((run / "config.json").read_text())
    assert record["dataset"]["pairing"] == "paired" and record["train"]["model"]["input_shape"] == [1, 16, 16]


@pytest.mark.slow
def test_pix2pix_resumes_bit_identically_after_sigkill(tmp_path: Path) -> None:
    store = digit_pairs_store(tmp_path)
    args = ["--data", str(store), "--kimg", "0.096", "--snap", "1", *TINY]
    assert_kill_and_resume_matches(args, tmp_path)


@pytest.mark.parametrize("flags, message", [
    (["--cond"], "has no class-conditional version; drop --cond"),
    (["--augment", "ada"], "--augment"),
    (["--loss", "wgan-gp"], "trains with --loss"),
    (["--metrics", "fid"], "--metrics measures a noise-to-image generator"),
    (["--mbstd"], "does not use --mbstd"),
    (["--z-dim", "8"], "takes an image, not a latent z; drop --z-dim"),
    (["--batch-gpu", "auto"], "--batch-gpu auto measures a noise-to-image generator"),
])
def test_pix2pix_refuses_flags_that_would_do_nothing(tmp_path: Path, flags: list[str], message: str) -> None:
    store = digit_pairs_store(tmp_path)
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "runs"), *TINY,
                                       *flags])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "runs").exists()


def test_stores_and_models_must_match(tmp_path: Path) -> None:
    pairs, images = digit_pairs_store(tmp_path), digits16_store(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--data", str(images), "--out", str(tmp_path / "r"), *TINY])
    assert result.exit_code != 0 and "prepare one with `ganforge prepare --pairs" in result.output
    result = runner.invoke(main, ["train", "--data", str(pairs), "--out", str(tmp_path / "r"), "--model", "dcgan"])
    assert result.exit_code != 0 and "generates images from noise: train --model pix2pix" in result.output
    result = runner.invoke(main, ["train", "--data", str(images), "--model", "dcgan", "--l1-weight", "10"])
    assert result.exit_code != 0 and "--model dcgan does not use --l1-weight" in result.output
    with pytest.raises(ConfigError, match="multiples of 16"):
        build_networks(ModelConfig(name="pix2pix", input_shape=(3, 24, 24)), (3, 24, 24))


def test_summary_counts_the_papers_parameters() -> None:
    """At 256 px, 3 -> 3 channels: the published U-Net has 54.4M parameters and the 70x70 PatchGAN 2.8M."""
    result = CliRunner().invoke(main, ["train", "--model", "pix2pix", "--summary", "--resolution", "256"])
    assert result.exit_code == 0, result.output
    totals = [int(line.split()[-1].replace(",", "")) for line in result.output.splitlines() if "total" in line]
    assert abs(totals[0] - 54_414_000) < 0.01 * 54_414_000 and abs(totals[1] - 2_769_000) < 0.01 * 2_769_000
