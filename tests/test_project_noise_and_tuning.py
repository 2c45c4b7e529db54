"""StyleGAN2's projector extras: the noise maps optimised beside w (regularised to stay white noise, written so that
latent.npy redraws projected.png), and pivotal tuning (G tuned around the found latent, written as an export that
generate and --edit draw with)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file
from safetensors.torch import load_file as load_tensors
from safetensors.torch import save_file as save_tensors

import ganforge as gf
from cli_helpers import invoke, one_error
from ganforge.errors import ConfigError
from ganforge.explore.noise_maps import autocorrelation_penalty, load_noise_maps, renormalise
from ganforge.explore.project import project
from ganforge.generate import render, seed_latents
from ganforge.runs import load_generator

from run_helpers import noise_run_and_export

FLAGS = ["--model", "stylegan2", "--z-dim", "32", "--fmap-base", "256", "--fmap-max", "32", "--batch", "8",
         "--kimg", "0.032", "--tick-kimg", "0.032", "--ema-kimg", "0.1", "--no-progress"]
DCGAN = Path(__file__).parent / "fixtures" / "v0.1-dcgan-run"
QUICK = {"steps": 6, "starts": 2, "features": "random-conv"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A StyleGAN2 safetensors export whose synthesis layers use their noise (a run this short has not learnt to
    yet, so the strengths are set in its weights), and face.png, an image it draws, beside it."""
    root = tmp_path_factory.mktemp("sg2-project")
    export = noise_run_and_export(root, FLAGS)[2]
    tensors = load_tensors(str(export / "model.safetensors"))
    save_tensors({k: v.fill_(0.5) if k.endswith("noise_strength") else v for k, v in tensors.items()},
                 str(export / "model.safetensors"))
    generator, config, _ = load_generator(export)
    Image.fromarray(render(generator, seed_latents([3], config.model.z_dim))[0, 0].numpy()).save(root / "face.png")
    return export


def _face(run: Path) -> Path:
    return run.parent / "face.png"


def test_white_noise_has_a_small_penalty_and_a_smooth_map_a_large_one() -> None:
    white = [torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))]
    ramp = torch.linspace(-1, 1, 32)
    smooth = [(ramp[None, :] + ramp[:, None])[None, None].clone()]
    renormalise(smooth)
    assert float(smooth[0].mean()).__abs__() < 1e-5 and abs(float(smooth[0].square().mean()) - 1) < 1e-4
    assert float(autocorrelation_penalty(smooth)) > 100 * float(autocorrelation_penalty(white))


def test_the_optimised_noise_maps_are_written_and_redraw_the_projected_image(run: Path, tmp_path: Path) -> None:
    result = project(run, _face(run), tmp_path / "p", **QUICK)
    maps = load_file(tmp_path / "p" / "noise.safetensors")
    generator = load_generator(run)[0]
    fixed = [m.noise_const.clone() for m in generator.modules() if hasattr(m, "noise_const")]
    renormalise(fixed)  # what the maps would be had the optimiser not moved them
    moved = [float(np.abs(maps[name] - f.numpy()).max()) for name, f in zip(sorted(maps), fixed, strict=True)]
    assert max(moved) > 0.05, moved
    for noise in maps.values():  # renormalised after every step: still unit white noise
        assert abs(noise.mean()) < 1e-4 and abs(noise.var() - 1) < 1e-3
    load_noise_maps(generator, maps)
    latent = torch.from_numpy(np.load(tmp_path / "p" / "latent.npy"))[None]
    with torch.no_grad():
        redrawn = ((generator.synthesis(latent)[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    projected = torch.from_numpy(np.array(Image.open(tmp_path / "p" / "projected.png")))
    assert (redrawn.permute(1, 2, 0).squeeze(-1).int() - projected.int()).abs().max() <= 1
    assert result.written[:2] == ("latent.npy", "noise.safetensors")


def test_fixed_noise_writes_no_maps_and_removes_an_earlier_projections(run: Path, tmp_path: Path) -> None:
    project(run, _face(run), tmp_path / "p", **QUICK)
    project(run, _face(run), tmp_path / "p", noise="fixed", **QUICK)
    assert not (tmp_path / "p" / "noise.safetensors").exists()
    with pytest.raises(ConfigError, match="--noise optimise needs a style-based generator"):
        project(DCGAN, _face(run), tmp_path / "q", noise="optimise", **QUICK)
    with pytest.raises(ConfigError, match="the noise maps are for 1 layers"):
        load_noise_maps(load_generator(run)[0], {"layer00": np.zeros((1, 1, 4, 4), np.float32)})


def test_pivotal_tuning_reproduces_the_photo_better_and_its_export_draws_it(run: Path, tmp_path: Path) -> None:
    plain = project(run, _face(run), tmp_path / "plain", **QUICK)
    tuned = project(run, _face(run), tmp_path / "tuned", tune_steps=40, tune_lr=3e-3, **QUICK)
    assert tuned.pixel_mse < 0.5 * plain.pixel_mse, (tuned.pixel_mse, plain.pixel_mse)
    # The pivot is the untuned projection itself, so one tuned projection also reports the plain one.
    assert plain.pivot_image is None and plain.pivot_pixel_mse is None
    assert tuned.pivot_pixel_mse == pytest.approx(plain.pixel_mse, rel=1e-4)
    assert tuned.pivot_image is not None and (tuned.pivot_image.int() - plain.image.int()).abs().max() <= 1
    generator = gf.load_generator(tmp_path / "tuned" / "tuned")  # the export, its optimised noise maps inside
    latent = torch.from_numpy(np.load(tmp_path / "tuned" / "latent.npy"))[None]
    with torch.no_grad():
        redrawn = ((generator.module.synthesis(latent)[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    projected = torch.from_numpy(np.array(Image.open(tmp_path / "tuned" / "projected.png")))
    assert (redrawn.permute(1, 2, 0).squeeze(-1).int() - projected.int()).abs().max() <= 1
    assert generator.sample(2, seed=0).shape[0] == 2


def test_the_cli_tunes_edits_and_refuses_absurd_tuning(run: Path, tmp_path: Path) -> None:
    result = invoke("directions", run, "--method", "sefa", "--k", "2", "--out", tmp_path / "dirs")
    assert result.exit_code == 0, result.output
    result = invoke("project", run, _face(run), "--steps", "4", "--starts", "2", "--features", "random-conv",
                    "--tune", "3", "--edit", f"{tmp_path / 'dirs'}:0=2", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    assert re.search(r"after 3 tuning steps \(\d+\.\d+ before\)", result.output)
    assert "tuned/" in result.output and "edited.png" in result.output
    assert invoke("generate", tmp_path / "p" / "tuned", "--seeds", "0-1", "--out", tmp_path / "g.png").exit_code == 0
    assert "--tune-lr" in one_error(invoke("project", run, _face(run), "--tune-lr", "5", "--out", tmp_path / "q"))
    assert "--noise-weight" in one_error(invoke("project", run, _face(run), "--noise-weight", "nan",
                                               "--out", tmp_path / "q"))


def test_tuning_a_torchscript_export_is_refused_in_one_line(tmp_path: Path) -> None:
    dcgan_script = tmp_path / "script"
    assert invoke("export", DCGAN, "--format", "torchscript", "--out", dcgan_script).exit_code == 0
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "black.png")
    error = one_error(invoke("project", dcgan_script, tmp_path / "black.png", "--tune", "2", "--steps", "2",
                             "--starts", "1", "--out", tmp_path / "p"))
    assert "TorchScript" in error and "--tune" in error
