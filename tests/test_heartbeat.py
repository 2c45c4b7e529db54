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



def test_a_fresh_run_shows_its_first_samples_before_its_first_tick_and_trains_as_without_them(tmp_path, monkeypatch):
    # FastGAN's G draws noise from torch's stream even when sampling: the early grid must leave that stream as it
    # was, so the run ends bit-identical to one that showed no early grid.
    import numpy as np

    from ganforge.api import _path_of_keyword
    from ganforge.data.store import Store
    from ganforge.training import loop, train
    from ganforge.training.run_config import RunRequest, resolve_run

    from data_slices import make_store
    from run_helpers import assert_identical

    images = np.random.default_rng(0).integers(0, 256, (16, 3, 64, 64), dtype=np.uint8)
    store = make_store(tmp_path / "s.gfs", images).path
    given = {"data": str(store), "model": "fastgan", "g_width": 4, "d_width": 4, "batch": 4, "kimg": 0.012,
             "tick_kimg": 0.012, "grid_size": 4}
    config = resolve_run(RunRequest({_path_of_keyword(k): v for k, v in given.items()})).config
    finals = []
    for early_s, name in ((1e9, "without"), (0.0, "with")):
        monkeypatch.setattr(loop, "EARLY_SAMPLES_S", early_s)
        run_dir = tmp_path / name
        run_dir.mkdir()
        lines: list[str] = []
        train(config, run_dir, Store(store), progress=False, echo=lines.append)
        finals.append(sorted((run_dir / "checkpoints").glob("*.safetensors"))[-1])
        assert any(line.startswith("first samples at kimg 0.00") for line in lines) == (name == "with"), lines
    assert (tmp_path / "with" / "samples" / "fakes-0000000004.png").exists()
    assert_identical(*finals)
