"""A trained StyleGAN2 through the tools: truncation in W (psi 1 is the identity, psi 0 the mean-w image for every
seed) in generate, the Python API and exports; the style-mixing figure; interpolation in W; ONNX and TorchScript
exports that take psi as an input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.numpy import load_file

import ganforge as gf
from ganforge.cli import main
from ganforge.data.store import to_uint8
from ganforge.errors import ConfigError
from ganforge.explore.mixing import parse_styles, style_mixing
from ganforge.explore.noise_maps import load_noise_maps
from ganforge.generate import render, seed_latents
from ganforge.images import make_grid
from ganforge.runs import load_generator

from run_helpers import noise_run_and_export

FLAGS = ["--model", "stylegan2", "--z-dim", "32", "--fmap-base", "256", "--fmap-max", "32", "--batch", "8",
         "--kimg", "0.032", "--tick-kimg", "0.032", "--ema-kimg", "0.1", "--no-progress"]
OLD_DCGAN_RUN = Path(__file__).parent / "fixtures" / "v0.1-dcgan-run"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    _, run, export = noise_run_and_export(tmp_path_factory.mktemp("sg2"), FLAGS)
    return run, export


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_truncation_in_w_psi_1_is_the_identity_and_psi_0_is_the_mean_w_image_for_every_seed(trained) -> None:
    run, export = trained
    for source in (run, export):
        generator = gf.load_generator(source)
        assert generator.module.w_avg.abs().sum() > 0  # tracked in training, carried by checkpoint and export
        assert torch.equal(generator.sample(4, truncation=1.0), generator.sample(4))
        at_zero = generator.sample(6, truncation=0.0)
        assert all(torch.equal(image, at_zero[0]) for image in at_zero)
        g = generator.module
        mean_image = to_uint8(g.synthesis(g.w_avg.view(1, 1, -1).expand(1, g.num_ws, -1)))
        assert (at_zero[0].int() - mean_image[0].int()).abs().max() <= 1
        assert not torch.equal(generator.sample(2, truncation=0.5), generator.sample(2))


def test_generate_truncates_in_w(trained, tmp_path) -> None:
    run, _ = trained
    invoke("generate", str(run), "--seeds", "0-3", "--truncation", "0", "--out", str(tmp_path / "zero.png"))
    grid = np.asarray(Image.open(tmp_path / "zero.png"))
    first = torch.from_numpy(grid[2:18, 2:18].copy()).view(1, 1, 16, 16)  # 16 px cells after 2 px of padding
    assert np.array_equal(grid, np.asarray(make_grid(first.expand(4, -1, -1, -1), None)))


def test_the_mixing_figure_has_a_header_row_and_column_and_takes_the_named_layers_from_the_columns(trained,
                                                                                                    tmp_path) -> None:
    run, export = trained
    out = invoke("mix", str(run), "--rows", "1,2,3", "--cols", "4,5", "--out", str(tmp_path / "mix.png"))
    assert "(4x3 images)" in out
    expected = make_grid(torch.zeros(12, 1, 16, 16, dtype=torch.uint8), 3).size
    assert Image.open(tmp_path / "mix.png").size == expected
    generator, config, _ = load_generator(run)
    every_layer = f"0-{generator.num_ws - 1}"
    style_mixing(export, [1, 2], [4, 5], tmp_path / "all.png", styles=every_layer)
    grid = np.asarray(Image.open(tmp_path / "all.png"))
    cell = lambda r, c: grid[2 + r * 18: 18 + r * 18, 2 + c * 18: 18 + c * 18]  # noqa: E731
    for r in (1, 2):  # every layer from the column seed: each cell is its column's image
        for c in (1, 2):
            assert np.array_equal(cell(r, c), cell(0, c))
    singles = render(generator, seed_latents([4, 5], config.model.z_dim))
    assert np.array_equal(cell(0, 1), singles[0, 0].numpy())


def test_mix_refuses_a_bad_layer_range_and_a_generator_without_w(trained, tmp_path) -> None:
    assert parse_styles(None, 8) == [4, 5, 6, 7] and parse_styles("0-2,5", 8) == [0, 1, 2, 5]
    with pytest.raises(ConfigError, match="outside this generator's layers 0-7"):
        parse_styles("6-9", 8)
    result = CliRunner().invoke(main, ["mix", str(OLD_DCGAN_RUN), "--rows", "1", "--cols", "2",
                                       "--out", str(tmp_path / "m.png")])
    assert result.exit_code != 0 and "ganforge mix needs a style-based generator" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "m.png").exists()


def test_interpolate_walks_in_w(trained, tmp_path) -> None:
    run, _ = trained
    invoke("interpolate", str(run), "--seeds", "1,2", "--frames", "4", "--out", str(tmp_path / "walk.png"))
    assert Image.open(tmp_path / "walk.png").info["method"] == "lerp in W"


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_traced_exports_take_psi_as_an_input(trained, tmp_path, fmt) -> None:
    pytest.importorskip("onnxruntime")
    run, _ = trained
    invoke("export", str(run), "--format", fmt, "--out", str(tmp_path / fmt))
    reference = gf.load_generator(run)
    exported = gf.load_generator(tmp_path / fmt)
    for psi in (1.0, 0.6, 0.0):
        difference = (exported.sample(5, truncation=psi).int() - reference.sample(5, truncation=psi).int()).abs()
        assert difference.max() <= 1, psi


@pytest.mark.parametrize("space, shape", [("w", lambda g: (32,)), ("w+", lambda g: (g.num_ws, 32))])
def test_project_optimises_in_w_and_w_plus(trained, tmp_path, space, shape) -> None:
    from ganforge.explore.project import project

    run, _ = trained
    generator, config, _ = load_generator(run)
    target = render(generator, seed_latents([3], config.model.z_dim))[0, 0].numpy()
    Image.fromarray(target).save(tmp_path / "target.png")
    result = project(run, tmp_path / "target.png", tmp_path / space, steps=20, starts=8, space=space)
    assert tuple(result.latent.shape) == shape(generator) and result.losses[-1] < result.losses[0]
    assert Image.open(tmp_path / space / "projected.png").info["space"] == space
    assert np.load(tmp_path / space / "latent.npy").shape == shape(generator)


def test_project_defaults_to_w_plus_for_stylegan2_and_refuses_w_without_a_mapping(trained, tmp_path) -> None:
    from ganforge.explore.project import project

    run, _ = trained
    generator = load_generator(run)[0]
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "black.png")
    assert project(run, tmp_path / "black.png", tmp_path / "p", steps=2, starts=2).latent.shape == (generator.num_ws,
                                                                                                     32)
    with pytest.raises(ConfigError, match="--space w needs a style-based generator"):
        project(OLD_DCGAN_RUN, tmp_path / "black.png", tmp_path / "q", steps=2, starts=2, space="w")


def test_serve_truncates_in_w_for_a_run_and_its_onnx_export(trained, tmp_path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("onnxruntime")
    from serve_helpers import local_client

    run, _ = trained
    invoke("export", str(run), "--format", "onnx", "--out", str(tmp_path / "onnx"))
    for source in (run, tmp_path / "onnx"):
        client = local_client(source)
        assert client.get("/api/info").json()["truncation"] is True
        at_zero = [client.get("/api/image.png", params={"seed": s, "psi": 0}) for s in (1, 2)]
        assert all(r.status_code == 200 for r in at_zero), at_zero[0].text
        pixels = [np.asarray(Image.open(io.BytesIO(r.content))) for r in at_zero]
        assert np.array_equal(pixels[0], pixels[1])  # psi 0: the mean-w image for every seed
        plain = [client.get("/api/image.png", params={"seed": s, "psi": 1}).content for s in (1, 2)]
        assert plain[0] != plain[1]


def test_a_projected_photo_is_edited_in_w_plus_on_the_directions_layers(trained, tmp_path) -> None:
    from ganforge.explore.direction_search import find_directions
    from ganforge.explore.directions import edited_images
    from ganforge.explore.project import project

    run, _ = trained
    generator, config, _ = load_generator(run)
    directions = find_directions(generator, config, "sefa", 2, layers=(0, 2))
    target = render(generator, seed_latents([4], config.model.z_dim))[0, 0].numpy()
    Image.fromarray(target).save(tmp_path / "target.png")
    result = project(run, tmp_path / "target.png", tmp_path / "p", steps=5, starts=2, edits=[(directions, {0: 3.0})])
    load_noise_maps(generator, load_file(tmp_path / "p" / "noise.safetensors"))  # the photo's own noise maps
    expected = edited_images(generator, result.latent[None], [(directions, {0: 3.0})], in_w=True)
    edited = np.array(Image.open(tmp_path / "p" / "edited.png"))
    assert np.array_equal(edited, expected[0, 0].numpy())
    assert not np.array_equal(edited, np.array(Image.open(tmp_path / "p" / "projected.png")))
