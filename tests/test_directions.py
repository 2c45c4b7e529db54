"""Latent directions and edits: SeFa's closed form against its definition, GANSpace's components, a brightness
boundary that brightens, StyleGAN2's layer-wise edits in W, the directions folder round trip and its figure, and
`ganforge directions` / `generate --edit` / `Generator.edit` from the CLI and the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ganforge as gf
from ganforge.cli import main
from ganforge.config import ModelConfig, TrainConfig
from ganforge.errors import ConfigError
from ganforge.explore.direction_search import find_directions, latent_layer
from ganforge.explore.directions import edited_images, load_directions, write_figure
from ganforge.explore.image_scores import image_statistic
from ganforge.generate import seed_latents
from ganforge.models import build_networks


def _dcgan() -> tuple[torch.nn.Module, TrainConfig]:
    config = TrainConfig(model=ModelConfig(name="dcgan", z_dim=16, g_width=8, d_width=8))
    torch.manual_seed(0)
    return build_networks(config.model, (3, 16, 16)).generator.eval(), config


def _stylegan2() -> tuple[torch.nn.Module, TrainConfig]:
    config = TrainConfig(model=ModelConfig(name="stylegan2", z_dim=16, fmap_base=256, fmap_max=32))
    torch.manual_seed(0)
    return build_networks(config.model, (3, 16, 16)).generator.eval(), config


def test_sefa_directions_are_the_unit_eigenvectors_that_move_the_first_layer_most() -> None:
    generator, config = _dcgan()
    found = find_directions(generator, config, "sefa", 4, samples=64)
    weight = latent_layer(generator, 16).weight.detach()
    matrix = weight.reshape(16, -1).T  # [outputs, z]
    gains = [float((matrix @ v).norm()) for v in found.vectors]
    assert torch.allclose(found.vectors.norm(dim=1), torch.ones(4), atol=1e-5)
    assert gains == sorted(gains, reverse=True)
    random = torch.nn.functional.normalize(torch.randn(200, 16), dim=1)
    assert gains[0] >= float((matrix @ random.T).norm(dim=0).max()) - 1e-4  # no direction moves it more
    assert torch.allclose(found.scales, torch.ones(4), atol=0.1)  # z ~ N(0, I): std 1 along any direction


def test_ganspace_finds_orthogonal_components_of_w_with_decreasing_variance() -> None:
    generator, config = _stylegan2()
    found = find_directions(generator, config, "ganspace", 3, samples=500)
    assert found.space == "w" and found.layers == (0, generator.num_ws)
    gram = found.vectors @ found.vectors.T
    assert torch.allclose(gram, torch.eye(3), atol=1e-4)
    assert found.values == sorted(found.values, reverse=True) and found.scales[0] >= found.scales[2]


def test_a_brightness_boundary_brightens_what_it_moves() -> None:
    generator, config = _dcgan()
    found = find_directions(generator, config, "labels", 1, score="brightness", samples=400)
    z = seed_latents(list(range(1000, 1016)), 16)
    darker = image_statistic(edited_images(generator, z, [(found, {0: -2.0})]), "brightness")
    brighter = image_statistic(edited_images(generator, z, [(found, {0: 2.0})]), "brightness")
    assert (brighter > darker).float().mean() >= 0.9


def test_a_w_edit_moves_only_its_style_layers() -> None:
    generator, config = _stylegan2()
    found = find_directions(generator, config, "sefa", 2, layers=(0, 2))
    z = seed_latents([3], 16)
    with torch.no_grad():
        w = generator.mapping(z, None)
    moved = edited_images(generator, w, [(found, {0: 3.0})], in_w=True)
    assert not torch.equal(moved, edited_images(generator, w, [(found, {})], in_w=True))
    captured: list[torch.Tensor] = []
    handle = generator.synthesis.register_forward_pre_hook(lambda _, args: captured.append(args[0].clone()))
    edited_images(generator, w, [(found, {0: 3.0})], in_w=True)
    handle.remove()
    ws = captured[0][0]
    assert not torch.equal(ws[0], w[0]) and not torch.equal(ws[1], w[0])
    assert all(torch.equal(ws[i], w[0]) for i in range(2, generator.num_ws))


def test_directions_round_trip_and_their_figure_has_a_row_per_direction(tmp_path: Path) -> None:
    generator, config = _dcgan()
    found = find_directions(generator, config, "sefa", 3)
    found.save(tmp_path / "dirs")
    loaded = load_directions(tmp_path / "dirs")
    assert torch.equal(loaded.vectors, found.vectors) and loaded.method == "sefa" and loaded.space == "z"
    write_figure(generator, config, loaded, [0, 1], tmp_path / "fig.png", steps=5)
    with Image.open(tmp_path / "fig.png") as figure:
        assert figure.size == (2 + 10 * 18, 2 + 3 * 18)  # 16 px images, 2 px padding: 10 columns, 3 rows
    with pytest.raises(ConfigError, match="direction 3 does not exist"):
        loaded.delta({3: 1.0})


def test_a_damaged_directions_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    generator, config = _dcgan()
    find_directions(generator, config, "sefa", 2).save(tmp_path / "dirs")
    record = json.loads((tmp_path / "dirs" / "directions.json").read_text())
    (tmp_path / "dirs" / "directions.json").write_text(json.dumps({**record, "space": "x"}))
    with pytest.raises(ConfigError, match="do not hold directions"):
        load_directions(tmp_path / "dirs")
    with pytest.raises(ConfigError, match="is not a directions folder"):
        load_directions(tmp_path)


def test_directions_and_edits_from_the_cli_and_the_api(tiny_ema_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "dirs"
    result = runner.invoke(main, ["directions", str(tiny_ema_run), "--method", "sefa", "--k", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"directions.safetensors", "directions.json", "directions.png"}
    plain, edited = tmp_path / "plain.png", tmp_path / "edited.png"
    assert runner.invoke(main, ["generate", str(tiny_ema_run), "--seeds", "0-7", "--out", str(plain)]).exit_code == 0
    result = runner.invoke(main, ["generate", str(tiny_ema_run), "--seeds", "0-7", "--out", str(edited),
                                  "--edit", f"{out}:0=3", "--edit", f"{out}:1=-2"])
    assert result.exit_code == 0, result.output
    with Image.open(plain) as a, Image.open(edited) as b:
        assert a.size == b.size and a.tobytes() != b.tobytes()
    generator = gf.load_generator(tiny_ema_run)
    directions = load_directions(out)
    z = seed_latents(list(range(8)), generator.z_dim)
    api = generator.edit([(directions, {0: 3.0, 1: -2.0})], z=z)
    assert torch.equal(api, edited_images(generator.module, z, [(directions, {0: 3.0, 1: -2.0})]))
    bad = runner.invoke(main, ["generate", str(tiny_ema_run), "--out", str(tmp_path / "x.png"), "--edit", "nowhere"])
    assert bad.exit_code == 2 and "--edit" in bad.output


def test_gf_directions_writes_what_the_cli_writes(tiny_ema_run: Path, tmp_path: Path) -> None:
    found = gf.directions(tiny_ema_run, "ganspace", 3, out=tmp_path / "api", samples=200)
    assert isinstance(found, gf.Directions) and len(found) == 3 and found.space == "z"
    assert torch.equal(gf.load_directions(tmp_path / "api").vectors, found.vectors)
    assert (tmp_path / "api" / "directions.png").is_file()


def test_directions_found_for_another_model_are_refused_in_one_line(tmp_path: Path) -> None:
    generator, config = _dcgan()  # z of 16
    wider = TrainConfig(model=ModelConfig(name="dcgan", z_dim=20, g_width=8, d_width=8))
    other = build_networks(wider.model, (3, 16, 16)).generator.eval()
    found = find_directions(other, wider, "sefa", 2)
    with pytest.raises(ConfigError, match="20-dimensional, and this generator's z has 16"):
        edited_images(generator, seed_latents([0], 16), [(found, {0: 1.0})])
    styled, styled_config = _stylegan2()
    high = find_directions(styled, styled_config, "sefa", 1, layers=(0, 2))
    beyond = type(high)(high.method, "w", high.vectors, high.scales, high.values, (6, 8), high.source, high.score)
    with pytest.raises(ConfigError, match="style layers 6-7, and this generator has"):
        edited_images(styled, seed_latents([0], 16), [(beyond, {0: 100.0})])


@pytest.mark.parametrize("flag", ["dirs:²=2", "dirs:0=nan", "dirs:0=2e9", "dirs:=1", ":0=1", "dirs:0=abc"])
def test_a_malformed_edit_is_refused_naming_the_flag(flag: str) -> None:
    from ganforge.explore.directions import parse_edits

    with pytest.raises(ConfigError, match="--edit .*write DIR:INDEX=AMOUNT"):
        parse_edits([flag])


def test_repeated_edits_of_one_direction_stay_within_the_bound(tmp_path: Path) -> None:
    from ganforge.explore.directions import parse_edits

    generator, config = _dcgan()
    find_directions(generator, config, "sefa", 2).save(tmp_path / "dirs")
    assert parse_edits([f"{tmp_path / 'dirs'}:0=60", f"{tmp_path / 'dirs'}:0=-30"])[0][1] == {0: 30.0}
    with pytest.raises(ConfigError, match="repeated --edit flags included"):
        parse_edits([f"{tmp_path / 'dirs'}:0=60", f"{tmp_path / 'dirs'}:0=60"])


def test_an_edit_is_drawn_in_the_class_asked_for_and_recorded_in_the_png(tiny_conditional_run: Path,
                                                                          tmp_path: Path) -> None:
    runner = CliRunner()
    dirs = tmp_path / "dirs"
    assert runner.invoke(main, ["directions", str(tiny_conditional_run), "--method", "sefa", "--k", "2", "--out",
                                str(dirs)]).exit_code == 0
    plain, edited = tmp_path / "plain.png", tmp_path / "edited.png"
    common = ["generate", str(tiny_conditional_run), "--seeds", "0-3", "--class", "3"]
    assert runner.invoke(main, [*common, "--out", str(plain)]).exit_code == 0
    result = runner.invoke(main, [*common, "--out", str(edited), "--edit", f"{dirs}:0=5"])
    assert result.exit_code == 0, result.output
    with Image.open(plain) as a, Image.open(edited) as b:
        assert a.tobytes() != b.tobytes()
        assert b.text["edit"] == f"{dirs}:0=5" and b.text["class"] == "3" and "edit" not in a.text
