"""Rates that move over a run: --schedule cosine (R3GAN's shape) and --lr-decay, as functions of the image count."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganforge.augment import build_augment
from ganforge.cli import main
from ganforge.config import LossConfig, TrainConfig
from ganforge.errors import ConfigError
from ganforge.training.objective.adversary import build_adversary
from ganforge.training.schedule import BETA2_FINAL, GAMMA_FINAL, LR_FINAL, apply_schedule, scheduled

from data_slices import make_store
from run_helpers import only_run


def test_a_constant_run_moves_nothing():
    assert scheduled(TrainConfig(kimg=10), 5000) is None


def test_cosine_starts_at_the_given_values_and_ends_annealed_along_a_half_cosine():
    config = TrainConfig(kimg=10, schedule="cosine", beta2=0.9)
    start, middle, end = (scheduled(config, nimg) for nimg in (0, 5000, 10_000))
    assert start is not None and middle is not None and end is not None
    assert (start.lr_factor, start.gamma_factor, start.beta2) == (1.0, 1.0, 0.9)
    assert end.lr_factor == pytest.approx(LR_FINAL) and end.gamma_factor == pytest.approx(GAMMA_FINAL)
    assert end.beta2 == pytest.approx(BETA2_FINAL)
    assert middle.lr_factor == pytest.approx((1 + LR_FINAL) / 2)  # cos(pi / 2) = 0: halfway between
    quarter = scheduled(config, 2500)
    assert quarter is not None and quarter.lr_factor == pytest.approx(LR_FINAL + (1 - LR_FINAL) * (1 + math.cos(
        math.pi / 4)) / 2)


def test_lr_decay_keeps_the_rates_then_falls_linearly_to_zero():
    config = TrainConfig(kimg=10, lr_decay=0.5)
    factors = [scheduled(config, nimg).lr_factor for nimg in (0, 5000, 7500, 10_000)]  # type: ignore[union-attr]
    assert factors == [1.0, 1.0, 0.5, 0.0]


def test_the_two_schedules_of_the_learning_rate_are_refused_together():
    with pytest.raises(ConfigError, match="--lr-decay and --schedule cosine"):
        TrainConfig(lr_decay=0.5, schedule="cosine")


def test_applying_the_schedule_sets_both_optimizers_and_scales_r1_and_r2():
    config = TrainConfig(kimg=1, schedule="cosine", lr_g=1e-3, lr_d=2e-3, beta2=0.9,
                         loss=LossConfig(r1_gamma=4.0, r2_gamma=2.0, r1_every=1))
    weights = torch.nn.Parameter(torch.ones(3))
    opt_g, opt_d = (torch.optim.Adam([weights], lr=1.0, betas=(0.0, 0.9)) for _ in range(2))
    adversary = build_adversary(config.loss, build_augment("none", batch=4), config.kimg)
    apply_schedule(config, 1000, opt_g, opt_d, adversary)
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * LR_FINAL)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-3 * LR_FINAL)
    assert opt_d.param_groups[0]["betas"] == (0.0, pytest.approx(BETA2_FINAL))

    # D(x) = 2 sum(x): ||grad||^2 = 4 * pixels, so R1 = gamma / 2 * 4 * 4 = 8 gamma (R2 the same on the fakes).
    def critic(x):
        return 2 * x.flatten(1).sum(1)

    points = torch.zeros(2, 1, 2, 2)
    penalties = [r.penalty(critic, points, points, critic(points), 0) for r in adversary.regularizers]
    assert [float(p) for p in penalties] == pytest.approx([8 * 4.0 * GAMMA_FINAL, 8 * 2.0 * GAMMA_FINAL])


def test_a_cosine_run_logs_its_learning_rate_falling_to_a_quarter(tmp_path):
    images = (np.random.default_rng(0).random((32, 1, 16, 16)) * 255).astype(np.uint8)
    store = make_store(tmp_path / "noise.gfs", images).path
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "runs"), "--model",
                                       "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--kimg", "0.064",
                                       "--tick-kimg", "0.016", "--schedule", "cosine", "--lr-g", "1e-3",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    ticks = [json.loads(line) for line in (only_run(tmp_path / "runs") / "log.jsonl").read_text().splitlines()
             if '"tick"' in line]
    rates = [tick["lr_g"] for tick in ticks]
    assert rates == sorted(rates, reverse=True) and rates[0] < 1e-3
    assert rates[-1] == pytest.approx(1e-3 * (LR_FINAL + (1 - LR_FINAL) * (1 + math.cos(math.pi * 56 / 64)) / 2))
