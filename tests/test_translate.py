"""`ganforge translate`: one output per valid input, invalid inputs reported, wrong runs and folders refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ganforge as gf
from ganforge.cli import main
from ganforge.data.store import Store, to_float, to_uint8
from ganforge.errors import ConfigError
from ganforge.runs import load_translator

from data_slices import digit_pairs_store, digits16_store
from run_helpers import only_run

TINY = ["--g-width", "4", "--d-width", "4", "--batch", "4", "--kimg", "0.016", "--tick-kimg", "0.016", "--seed", "2",
        "--no-progress"]


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pix2pix")
    store = digit_pairs_store(root)
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(root / "runs"), "--model",
                                       "pix2pix", *TINY])
    assert result.exit_code == 0, result.output
    return store, only_run(root / "runs")


def test_translate_writes_one_output_per_valid_input_and_reports_the_others(pix2pix_run, tmp_path: Path) -> None:
    store, run = pix2pix_run
    inputs = tmp_path / "inputs"
    (inputs / "nested").mkdir(parents=True)
    digits = Store(store).images[:3, 0]
    Image.fromarray(digits[0]).save(inputs / "a.png")
    Image.fromarray(digits[1]).resize((40, 40)).convert("RGB").save(inputs / "nested" / "b.jpg", quality=95)
    Image.fromarray(digits[2]).save(inputs / "a.bmp")  # collides with a.png once both end in .png
    (inputs / "notes.png").write_text("not an image")
    (inputs / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40)
    (inputs / "readme.txt").write_text("hello")
    result = CliRunner().invoke(main, ["translate", str(run), str(inputs), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a.png", "a.png.png", "nested/b.png"]  # a.bmp came first and took a.png
    assert "skipped notes.png: not an image" in result.output
    assert "skipped cut.jpg: corrupt or truncated" in result.output
    assert "skipped readme.txt: unsupported file type" in result.output
    assert "translated 3 of 6 inputs" in result.output
    # The file is exactly what the run's generator makes of that input (decoded as prepare decodes it).
    translator = load_translator(run).translator
    with torch.no_grad():
        expected = to_uint8(translator(to_float(torch.from_numpy(digits[:1, None].copy()))))[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png.png")).transpose(2, 0, 1), expected.numpy())


def test_translate_refuses_noise_runs_foreign_directions_and_outputs_inside_the_inputs(pix2pix_run,
                                                                                        tmp_path: Path) -> None:
    _, run = pix2pix_run
    (tmp_path / "in").mkdir()
    Image.new("L", (16, 16), 0).save(tmp_path / "in" / "x.png")
    runner = CliRunner()
    result = runner.invoke(main, ["translate", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "in/out")])
    assert result.exit_code != 0 and "is inside the inputs folder" in result.output
    result = runner.invoke(main, ["translate", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "o"),
                                  "--direction", "b2a"])
    assert result.exit_code != 0 and "learns a2b only" in result.output
    store = digits16_store(tmp_path)
    result = runner.invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "runs"), "--model", "dcgan",
                                  *TINY])
    assert result.exit_code == 0, result.output
    noise_run = only_run(tmp_path / "runs")
    result = runner.invoke(main, ["translate", str(noise_run), str(tmp_path / "in"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "draws images from noise" in result.output
    result = runner.invoke(main, ["generate", str(run), "--out", str(tmp_path / "g.png")])
    assert result.exit_code != 0 and "use `ganforge translate" in result.output
    result = runner.invoke(main, ["translate", str(run), str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "no such file or folder" in result.output



def test_python_translate_takes_images_in_memory_or_a_folder(pix2pix_run, tmp_path: Path) -> None:
    store, run = pix2pix_run
    digits = torch.from_numpy(Store(store).images[:5].copy())  # uint8 [5, 1, 16, 16]
    outputs = gf.translate(run, digits, batch=2)  # three batches, the last one short
    translator = load_translator(run).translator
    with torch.no_grad():
        expected = to_uint8(translator(to_float(digits)))
    assert outputs.dtype == torch.uint8 and torch.equal(outputs, expected)  # [5, 3, 16, 16]: grey in, RGB out
    assert torch.equal(gf.translate(run, digits.numpy()[:0]), expected[:0])
    with pytest.raises(ConfigError, match=r"uint8 images \[N, 1, 16, 16\]"):
        gf.translate(run, digits.float())
    with pytest.raises(ConfigError, match=r"uint8 images \[N, 1, 16, 16\]"):
        gf.translate(run, torch.zeros(2, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="out="):
        gf.translate(run, str(tmp_path))
    (tmp_path / "in").mkdir()
    Image.fromarray(digits[0, 0].numpy()).save(tmp_path / "in" / "x.png")
    report = gf.translate(run, tmp_path / "in", out=tmp_path / "out", progress=False)
    assert report.written == [tmp_path / "out" / "x.png"] and not report.skipped
    assert np.array_equal(np.asarray(Image.open(report.written[0])).transpose(2, 0, 1), expected[0].numpy())
