"""Two trainers of one run folder: the second `train --resume` (while a run or a resume trains) is refused at
once in one line naming the holder's pid, writing nothing; a SIGKILLed trainer never blocks the resume."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ganforge.errors import RunInUse
from ganforge.runs.checkpoint import list_checkpoints
from ganforge.runs.lock import LOCK_FILE, lock_run

from data_slices import make_store
from run_helpers import ganforge, kill_tree, only_run, run_to_end

# A tiny DCGAN on 16 px noise that trains far longer than the test waits.
TRAIN_LONG = ["--model", "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--kimg", "100",
              "--tick-kimg", "0.025", "--snap", "1", "--seed", "1", "--no-progress"]


def _wait_until_locked_by(proc: subprocess.Popen, run_dir: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not ((run_dir / "config.json").exists() and (run_dir / LOCK_FILE).exists()
               and (run_dir / LOCK_FILE).read_text() == str(proc.pid)):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "the trainer ended early"
        assert time.monotonic() < deadline, "the trainer never took the lock"
        time.sleep(0.05)


def _refused_resume(run_dir: Path, holder: int) -> None:
    """A `train --resume` of a run another process trains: exit 2 at once, one line, nothing written."""
    config_before = (run_dir / "config.json").read_bytes()
    started = time.monotonic()
    proc = ganforge("train", "--resume", str(run_dir), "--kimg", "50")  # an override it would write on resume
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert out.strip().splitlines() == [f"error: {run_dir} is being trained by another process (pid {holder}); "
                                        "wait for it or stop it"]
    assert time.monotonic() - started < 60  # at import speed: it never waits for the lock
    assert (run_dir / "config.json").read_bytes() == config_before


@pytest.mark.slow
def test_a_second_trainer_is_refused_and_a_killed_one_never_blocks_the_resume(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    store = make_store(tmp_path / "noise.gfs", images).path
    first = ganforge("train", "--data", str(store), "--out", str(tmp_path / "runs"), *TRAIN_LONG)
    try:
        while not ((tmp_path / "runs").exists() and any((tmp_path / "runs").iterdir())):
            assert first.poll() is None, first.stdout.read() if first.stdout else ""
            time.sleep(0.05)
        run_dir = only_run(tmp_path / "runs")
        _wait_until_locked_by(first, run_dir)
        _refused_resume(run_dir, first.pid)  # --resume while the original run still trains
    finally:
        kill_tree(first.pid)
        first.wait()
    resumed = ganforge("train", "--resume", str(run_dir))  # the SIGKILLed run's lock went with it
    try:
        _wait_until_locked_by(resumed, run_dir)
        _refused_resume(run_dir, resumed.pid)  # a second --resume while a resume trains
    finally:
        kill_tree(resumed.pid)
        resumed.wait()
    trained_kimg = int(list_checkpoints(run_dir)[-1].stem.removeprefix("ckpt-")) / 1000
    # Exit 0, one tick on: no lock of a killed trainer is left.
    run_to_end("train", "--resume", str(run_dir), "--kimg", f"{trained_kimg + 0.05:g}")


def test_the_lock_is_held_across_processes_and_released_by_sigkill(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from pathlib import Path; "
                               "from ganforge.runs.lock import lock_run; lock_run(Path(sys.argv[1])); "
                               "print('held', flush=True); sys.stdin.read()", str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInUse, match=rf"^{tmp_path} is being trained by another process \(pid {holder.pid}\)"):
            lock_run(tmp_path)
    finally:
        kill_tree(holder.pid)
        holder.wait()
    with lock_run(tmp_path):  # the OS dropped the killed holder's lock: no stale lock file blocks anything
        assert (tmp_path / LOCK_FILE).read_text() == str(os.getpid())


def test_one_process_cannot_train_a_run_twice_but_reclaims_a_lock_it_never_trained_under(tmp_path: Path) -> None:
    with lock_run(tmp_path):
        with pytest.raises(RunInUse, match="is being trained by another process"):
            lock_run(tmp_path)
    lock_run(tmp_path)  # taken, then left behind by a call that failed before training (as a traceback keeps it)
    with lock_run(tmp_path):  # ... so this process takes it over rather than refusing itself
        pass
