"""SRGAN: exactly 4x the input, SRResNet pre-training then the adversarial phase, exact resume, the content loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.config import ModelConfig
from ganforge.models import build_networks, srgan
from ganforge.models.efficientnet_lite import extra_installed
from ganforge.training.objective.content_loss import FeatureContentLoss, PixelContentLoss

from data_slices import digit_pairs_store, digits_sr_store
from run_helpers import assert_kill_and_resume_matches, only_run

TINY = ["--model", "srgan", "--g-width", "4", "--d-width", "4", "--batch", "4", "--tick-kimg", "0.016",
        "--seed", "4", "--content-loss", "mse", "--no-progress"]


@pytest.mark.parametrize("side, channels", [(4, 1), (8, 3), (24, 3)])
def test_srresnet_output_is_exactly_four_times_the_input(side: int, channels: int) -> None:
    config = ModelConfig(name="srgan", g_width=4, d_width=4, input_shape=(channels, side, side * 2))
    nets = build_networks(config, (channels, 4 * side, 8 * side))
    outputs = nets.generator(torch.rand(2, channels, side, side * 2) * 2 - 1)
    assert outputs.shape == (2, channels, 4 * side, 8 * side) and outputs.abs().max() <= 1
    assert nets.discriminator(outputs).shape == (2, 1)
    assert sum(1 for m in nets.generator.modules() if isinstance(m, torch.nn.PixelShuffle)) == 2


def test_srgan_pretrains_on_pixels_then_trains_adversarially(tmp_path: Path) -> None:
    store = digits_sr_store(tmp_path)
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "runs"), "--kimg",
                                       "0.064", *TINY])
    assert result.exit_code == 0, result.output
    assert "D not training yet" in result.output
    ticks = [json.loads(line) for line in (only_run(tmp_path / "runs") / "log.jsonl").read_text().splitlines()]
    assert ["loss_d" in t for t in ticks] == [False, False, True, True]  # --pretrain 0.5 of 4 ticks
    assert all(np.isfinite([t.get("loss_d", 0), t.get("loss_g", 0), t["loss_recon"]]).all() for t in ticks)


@pytest.mark.slow
def test_srgan_resumes_bit_identically_across_its_phases(tmp_path: Path) -> None:
    store = digits_sr_store(tmp_path)
    args = ["--data", str(store), "--kimg", "0.096", "--snap", "1", *TINY]
    assert_kill_and_resume_matches(args, tmp_path)


def test_without_the_lite0_weights_the_content_loss_falls_back_to_pixels_and_says_so(monkeypatch) -> None:
    given = {("model", "name"): "srgan"}
    monkeypatch.setattr(srgan, "extra_installed", lambda: True)
    assert srgan.available_content_loss(given) == (given, None)
    monkeypatch.setattr(srgan, "extra_installed", lambda: False)
    adjusted, note = srgan.available_content_loss(given)
    assert adjusted[("loss", "content_loss")] == "mse" and note is not None and "ganforge[projected]" in note
    chosen = {**given, ("loss", "content_loss"): "mse"}
    assert srgan.available_content_loss(chosen) == (chosen, None)


def test_content_losses_are_zero_on_the_target_and_grow_with_the_error() -> None:
    targets = torch.rand(2, 3, 32, 32) * 2 - 1
    losses = [PixelContentLoss()] + ([FeatureContentLoss(torch.device("cpu"))] if extra_installed() else [])
    for loss in losses:
        assert loss(targets, targets).item() == 0
        assert 0 < loss(targets + 0.05, targets).item() < loss(targets + 0.5, targets).item()


def test_srgan_refuses_pairs_that_are_not_four_times_apart(tmp_path: Path) -> None:
    store = digit_pairs_store(tmp_path)  # 16 px -> 16 px
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "r"), *TINY])
    assert result.exit_code != 0 and "srgan upscales x4" in result.output
