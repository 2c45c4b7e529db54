"""A run killed at any moment and resumed ends bit-identical to one that was never interrupted."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from ganforge.runs.checkpoint import latest_checkpoint, list_checkpoints

from data_slices import mnist_store
from run_helpers import (
    assert_identical,
    assert_kill_and_resume_matches,
    ganforge,
    only_run,
    run_to_end,
    tick_history,
    wait_for_checkpoint,
)

# Every random stream in play: dropout, label flips, EMA, shuffled epochs (512 images, 3 epochs).
TRAIN = ["--model", "dcgan",
         "--kimg", "1.5", "--batch", "32", "--tick-kimg", "0.2", "--snap", "1", "--keep", "2", "--seed", "7",
         "--d-dropout", "0.2", "--label-flip", "0.05", "--ema-kimg", "0.5", "--g-width", "16", "--d-width", "16",
         "--no-progress"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reference")
    store = mnist_store(root / "mnist512.gfs", 512)
    run_to_end("train", "--data", str(store), "--out", str(root / "runs"), *TRAIN)
    return store, latest_checkpoint(only_run(root / "runs"))


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_s", [0.0, 0.7, 1.9])
def test_sigkill_then_resume_is_bit_identical(reference, tmp_path, kill_after_s):
    store, reference_final = reference
    proc = ganforge("train", "--data", str(store), "--out", str(tmp_path), *TRAIN)
    wait_for_checkpoint(proc, tmp_path)
    time.sleep(kill_after_s)  # kill somewhere after the first checkpoint: mid-tick, mid-write or after the end
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = only_run(tmp_path)
    out = run_to_end("train", "--resume", str(run_dir))
    final = latest_checkpoint(run_dir)
    assert final.name == reference_final.name, out
    assert_identical(reference_final, final)
    # The log reads as one uninterrupted history: the same ticks with the same statistics, none repeated.
    assert tick_history(run_dir) == tick_history(reference_final.parents[1])


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_mid_tick_and_resume_is_bit_identical(reference, tmp_path):
    store, reference_final = reference
    proc = ganforge("train", "--data", str(store), "--out", str(tmp_path), *TRAIN[:-1], "--snap", "100")
    while not (tmp_path.exists() and any(tmp_path.iterdir())
               and (only_run(tmp_path) / "samples" / "latest.png").exists()):
        assert proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    # 130 = 128 + SIGINT, as a shell reports a process Ctrl-C stopped: a script can tell it from a finished run.
    assert proc.returncode == 130 and "interrupted (Ctrl-C) at kimg" in out and "checkpoint written" in out
    run_dir = only_run(tmp_path)
    assert len(list_checkpoints(run_dir)) == 1
    run_to_end("train", "--resume", str(run_dir), "--snap", "1")
    assert_identical(reference_final, latest_checkpoint(run_dir))


@pytest.mark.slow
def test_zoo_state_resumes_bit_identically(reference, tmp_path):
    """ADA's p and sign counters, lazy R1's step count and annealed instance noise all survive a SIGKILL."""
    store, _ = reference
    zoo = ["--kimg", "0.8", "--batch", "32", "--tick-kimg", "0.2", "--snap", "1", "--seed", "3", "--augment", "ada",
           "--ada-kimg", "1", "--r1-gamma", "1", "--r1-every", "3", "--instance-noise", "0.1", "--loss", "hinge",
           "--g-width", "8", "--d-width", "8", "--no-progress"]
    assert_kill_and_resume_matches(["--data", str(store), *zoo], tmp_path)
