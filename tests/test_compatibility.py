"""Runs and exports written by ganforge 0.1 (before the redesign of runs, models and training) still load, render
the same images for the same seeds, resume, and the same command still trains the same networks.

The fixtures in tests/fixtures were written by the 0.1 code: a DCGAN (widths 8, z 16, G EMA) trained for 256
images on the embedded MNIST sample, its safetensors export, and its `generate --seeds 0-7` grid.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.generate import render, seed_latents
from ganforge.images import make_grid
from ganforge.runs import load_generator
from ganforge.runs.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.training.stats import ADDED_LATER

from run_helpers import only_run, run_to_end

FIXTURES = Path(__file__).parent / "fixtures"
OLD_RUN = FIXTURES / "v0.1-dcgan-run"
OLD_EXPORT = FIXTURES / "v0.1-dcgan-export"
OLD_GRID = FIXTURES / "v0.1-dcgan-seeds0-7.png"
# The command that wrote OLD_RUN (on the embedded MNIST sample).
OLD_COMMAND = ("train", "--model", "dcgan", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--kimg", "0.256",
               "--batch", "32", "--tick-kimg", "0.128", "--ema-kimg", "1", "--grid-size", "16", "--no-progress")


def grid_of(images: torch.Tensor) -> np.ndarray:
    """The 8 images as `generate --seeds 0-7 --out x.png` lays them out (3 columns, 2 px padding)."""
    return np.asarray(make_grid(images, None))


def test_an_old_run_and_its_export_render_the_same_images_as_0_1_did() -> None:
    expected = np.asarray(Image.open(OLD_GRID))
    for source in (OLD_RUN, OLD_EXPORT):
        generator, config, nimg = load_generator(source)
        assert (config.model.name, config.model.z_dim, nimg) == ("dcgan", 16, 256)
        images = render(generator, seed_latents(list(range(8)), config.model.z_dim))
        difference = np.abs(grid_of(images).astype(int) - expected.reshape(grid_of(images).shape).astype(int))
        assert difference.max() <= 1, source  # the same weights; a rounding step at most across CPUs


@pytest.mark.slow
def test_an_old_run_resumes_with_the_current_code(tmp_path: Path) -> None:
    run = tmp_path / OLD_RUN.name
    shutil.copytree(OLD_RUN, run)
    out = run_to_end("train", "--resume", str(run), "--kimg", "0.384", "--no-progress")
    assert "resumed from" in out and "kimg 0.3" in out
    tensors, meta = load_checkpoint(latest_checkpoint(run))
    assert meta["counters"]["cur_nimg"] == 384 and all(torch.isfinite(t).all() for t in tensors.values()
                                                       if t.is_floating_point())


@pytest.mark.slow
def test_the_same_command_trains_the_same_networks_as_0_1(tmp_path: Path) -> None:
    run_to_end(*OLD_COMMAND, "--out", str(tmp_path))
    new, _ = load_checkpoint(latest_checkpoint(only_run(tmp_path)))
    old, _ = load_checkpoint(latest_checkpoint(OLD_RUN))
    # Only the stats added since 0.1 are new, and this run without their options never filed one.
    assert new.keys() - old.keys() == {f"stats.{name}" for name in ADDED_LATER} and old.keys() <= new.keys()
    assert all(new[f"stats.{name}"] == 0 for name in ADDED_LATER)
    for key in old:
        if old[key].is_floating_point():  # bit-identical on the machine that wrote it; float noise elsewhere
            torch.testing.assert_close(new[key], old[key], rtol=1e-3, atol=1e-4, msg=key)
        else:
            assert torch.equal(new[key], old[key]), key
