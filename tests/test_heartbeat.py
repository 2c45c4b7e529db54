"""Off a terminal no progress bar is drawn: `train` says it is alive between ticks with a line every half minute."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.training import heartbeat
from ganforge.training.heartbeat import progress_line

from data_slices import make_store

TINY = ["--model", "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--kimg", "0.064", "--tick-kimg",
        "0.032"]


def train(tmp_path, *extra: str) -> str:
    images = (np.random.default_rng(0).random((32, 1, 16, 16)) * 255).astype(np.uint8)
    store = make_store(tmp_path / "noise.gfs", images).path
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "runs"), *TINY, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_off_a_terminal_train_prints_progress_lines_before_its_first_tick(tmp_path, monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_S", 0.0)  # every step, instead of every 30 s
    lines = train(tmp_path).splitlines()
    first_tick = next(i for i, line in enumerate(lines) if line.startswith("tick "))
    before = [line for line in lines[:first_tick] if line.startswith("kimg ")]
    assert before and all(" of 0.064 " in line and "next tick in ~" in line and "done in ~" in line
                          for line in before), lines


def test_no_progress_keeps_to_the_status_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_S", 0.0)
    assert not [line for line in train(tmp_path, "--no-progress").splitlines() if line.startswith("kimg ")]


def test_a_progress_line_gives_the_rate_and_the_times_left():
    assert progress_line(2000, 10_000, 100.0, 2000) == "kimg 2.00 of 10  img/s 100  next tick in ~0m20s, done in ~1m20s"
    assert progress_line(0, 10_000, 0.0, 4000) == "kimg 0.00 of 10: warming up"
