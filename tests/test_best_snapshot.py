"""With `--minutes`, RUN/best: the best-scoring weights kept beside the last, the record that says which, and what
the checks must not do (change the run's trajectory, end the run over a hostile RUN/best)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import ganforge as gf
from ganforge.api import _path_of_keyword
from ganforge.cli import main
from ganforge.data.store import Store
from ganforge.runs.checkpoint import checkpoint_path, list_checkpoints, nimg_of, save_checkpoint
from ganforge.training.best_snapshot import _recorded_best, best_snapshot_hook
from ganforge.training.distributed import Distributed
from ganforge.training.run_config import RunRequest, resolve_run

from data_slices import make_store
from run_helpers import TINY, FakeClock, assert_identical, budget_run

# Checks may take half the budget here (random-conv features stand in for Inception): after 30 % of the time,
# every tick is scored.
CHECKED = {"minutes": 0.3, "tick_kimg": 0.4, "best_share": 0.5, "metrics_extractor": "random-conv", "ema_kimg": 0.1}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    return make_store(tmp_path / "s.gfs", images).path


def checked_run(store: Path, root: Path, monkeypatch: pytest.MonkeyPatch, with_checks: bool = True):
    """A budget run under a fake clock with the best-snapshot hook (or none); its state, lines and folder."""
    config = resolve_run(RunRequest({_path_of_keyword(k): v for k, v in
                                     {**TINY, "data": str(store), **CHECKED}.items()})).config
    said: list[str] = []
    hooks = (best_snapshot_hook(config, Store(store), Distributed(), root / "run", said.append),) if with_checks else ()
    state, lines, run_dir = budget_run(store, root, FakeClock(100.0), monkeypatch, tick_hooks=hooks, **CHECKED)
    return state, lines + said, run_dir


def scored_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if '"kid"' in line]


def test_the_best_snapshot_is_kept_beside_the_last_and_loads_like_a_run(store, tmp_path, monkeypatch):
    state, lines, run_dir = checked_run(store, tmp_path, monkeypatch)
    scored = scored_rows(run_dir)
    assert len(scored) >= 2
    best = json.loads((run_dir / "best" / "best.json").read_text())
    assert best["kid"] == min(row["kid"] for row in scored)
    assert best["nimg"] == next(row["nimg"] for row in scored if row["kid"] == best["kid"])
    assert len(list((run_dir / "best" / "checkpoints").glob("*"))) == 1
    assert any(line.startswith("best so far: KID") for line in lines)
    assert state.counters.best_checks == len(scored) and state.counters.best_check_seconds > 0  # a resume goes on
    G = gf.load_generator(run_dir / "best")
    assert G.nimg == best["nimg"] and G.sample(2, seed=0).shape == (2, 1, 16, 16)
    result = CliRunner().invoke(main, ["generate", str(run_dir / "best"), "--out", str(tmp_path / "grid.png")])
    assert result.exit_code == 0, result.output


def test_the_checks_leave_the_run_as_it_would_be_without_them(store, tmp_path, monkeypatch):
    # Same weights, optimizer states and random streams at the end: a budget run with checks trains the run a
    # budget run without them trains (and so a resumed one, whose first check estimates its cost again).
    checked, _, checked_dir = checked_run(store, tmp_path / "checked", monkeypatch)
    plain, _, plain_dir = checked_run(store, tmp_path / "plain", monkeypatch, with_checks=False)
    assert scored_rows(checked_dir) and not scored_rows(plain_dir)
    assert checked.counters.cur_nimg == plain.counters.cur_nimg
    assert_identical(list_checkpoints(checked_dir)[-1], list_checkpoints(plain_dir)[-1])


def test_a_later_checkpoint_left_in_best_gives_way_to_the_new_best(store, tmp_path, monkeypatch):
    # A run killed after a best was kept at a tick without a checkpoint resumes from an earlier one; its next best
    # has a smaller kimg than the file already in RUN/best, which must not survive in its place.
    stale = checkpoint_path(tmp_path / "run" / "best", 999_992)
    save_checkpoint(stale, {"w": torch.zeros(1)}, {})
    (tmp_path / "run" / "best" / "best.json").write_text(json.dumps({"kid": 10.0, "nimg": 999_992}))
    _, _, run_dir = checked_run(store, tmp_path, monkeypatch)
    best = json.loads((run_dir / "best" / "best.json").read_text())
    kept = list_checkpoints(run_dir / "best")
    assert len(kept) == 1 and nimg_of(kept[0]) == best["nimg"] < 999_992
    assert gf.load_generator(run_dir / "best").nimg == best["nimg"]


@pytest.mark.parametrize("hostile", ["record is a folder", "best is a link"])
def test_a_hostile_best_folder_is_reported_and_the_run_goes_on(store, tmp_path, monkeypatch, hostile):
    elsewhere = tmp_path / "elsewhere"
    if hostile == "record is a folder":
        (tmp_path / "run" / "best" / "best.json").mkdir(parents=True)
    else:
        (elsewhere / "checkpoints").mkdir(parents=True)
        (elsewhere / "checkpoints" / "ckpt-0000000008.safetensors").write_text("someone else's")
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "best").symlink_to(elsewhere, target_is_directory=True)
    state, lines, run_dir = checked_run(store, tmp_path, monkeypatch)
    assert any(line.startswith("done: ") for line in lines), lines
    assert any(line.startswith("could not keep the best snapshot in") for line in lines), lines
    assert nimg_of(list_checkpoints(run_dir)[-1]) == state.counters.cur_nimg  # the last weights, as always
    if hostile == "best is a link":
        assert [p.name for p in elsewhere.rglob("*")] == ["checkpoints", "ckpt-0000000008.safetensors"]


def test_a_damaged_or_incomparable_best_record_is_ignored_not_trusted(tmp_path):
    folder = tmp_path / "best"
    folder.mkdir()
    protocol = {"n": 500, "extractor": "inception"}
    scored = ', "n": 500, "extractor": "inception", "nimg": 8}'
    save_checkpoint(checkpoint_path(folder, 8), {"w": torch.zeros(1)}, {})
    good = '{"kid": 0.01' + scored
    for text in ("", "{", '{"kid": "low"' + scored, '{"kid": NaN' + scored, '{"kid": -Infinity' + scored,
                 '{"kid": -1e999' + scored, "[]", '{"kid": 0.01, "n": 50, "extractor": "inception", "nimg": 8}',
                 '{"kid": 0.01, "n": 500, "extractor": "random-conv", "nimg": 8}',
                 '{"kid": 0.01, "n": 500, "extractor": "inception"}',  # no weights named
                 '{"kid": 0.01, "n": 500, "extractor": "inception", "nimg": 16}',  # weights not there
                 '{"kid": 0.01, "n": 500, "extractor": "inception", "nimg": "8"}', good):
        (folder / "best.json").write_text(text)
        said: list[str] = []
        assert _recorded_best(folder, said.append, protocol) == (0.01 if text == good else None)
        assert len(said) == (0 if text == good else 1), text
