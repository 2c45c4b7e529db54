"""Seed 000's Progressive GAN on real car photos: a short CPU run grows through 4, 8 and 16 px with fade-ins,
and a SIGKILL in the middle of a fade-in resumes bit-identically."""

from __future__ import annotations

import json
import tarfile

import pytest
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main

from data_slices import SHARED_DATA, shared_file
from run_helpers import (
    assert_kill_and_resume_matches,
    only_run,
    run_to_end,
)

CARS = SHARED_DATA / "stanford-cars" / "stanford_cars_train_128_pad_jpg.tar.gz"
# Phases of 0.3 kimg: 4 px stable, 8 px fade + stable, 16 px fade + the rest; narrow networks for the CPU.
GROW = ["--model", "progan", "--phase-kimg", "0.3", "--kimg", "1.8", "--batch", "16", "--tick-kimg", "0.15",
        "--snap", "1", "--fmap-base", "256", "--fmap-max", "32", "--z-dim", "32", "--no-progress"]


@pytest.fixture(scope="module")
def cars16(tmp_path_factory):
    root = tmp_path_factory.mktemp("cars")
    with tarfile.open(shared_file(CARS)) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".jpg")][:200]
        tar.extractall(root / "photos", members=members, filter="data")
    result = CliRunner().invoke(main, ["prepare", str(root / "photos"), "--out", str(root / "cars16.gfs"),
                                       "--resolution", "16", "--crop", "pad"])
    assert result.exit_code == 0, result.output
    return root / "cars16.gfs"


def ticks(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if '"tick"' in line]


@pytest.mark.slow
def test_progan_grows_through_4_8_16_px_with_fade_ins(cars16, tmp_path):
    out = run_to_end("train", "--data", str(cars16), "--out", str(tmp_path), *GROW)
    assert "lod 2" in out and "minibatch 16" in out
    rows = ticks(only_run(tmp_path))
    resolutions = [r["resolution"] for r in rows]
    assert resolutions == sorted(resolutions) and set(resolutions) == {4, 8, 16}
    fading = [r for r in rows if 0 < r["alpha"] < 1]
    assert fading and all(2 > r["lod"] > 0 for r in fading)
    assert rows[-1]["lod"] == 0 and rows[-1]["alpha"] == 1
    assert Image.open(only_run(tmp_path) / "samples" / "latest.png").size == Image.open(
        only_run(tmp_path) / "reals.png").size  # low-resolution grids are enlarged for display


@pytest.mark.slow
def test_sigkill_during_a_fade_in_resumes_bit_identically(cars16, tmp_path):
    # The 8 px fade-in runs from 0.3 to 0.6 kimg: kill once a checkpoint inside it exists.
    assert_kill_and_resume_matches(["--data", str(cars16), *GROW], tmp_path,
                                   lambda paths: any(300 < int(p.stem.split("-")[1]) < 600 for p in paths))


def test_progan_1024_summary_matches_the_paper_table():
    result = CliRunner().invoke(main, ["train", "--model", "progan", "--resolution", "1024", "--summary"])
    assert result.exit_code == 0, result.output
    assert result.output.count("23.1M") == 2  # G and D, as in Karras et al. 2018, Table 2
