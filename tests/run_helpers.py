"""Running `python -m ganforge` in a subprocess and comparing the checkpoints runs end with."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from ganforge.api import _path_of_keyword
from ganforge.runs.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.training import loop, train
from ganforge.training.run_config import RunRequest, resolve_run

# Each `ganforge` subprocess's OpenMP threads: two, but one where pytest-xdist runs a worker per core
# (tests/conftest.py): on a busy core, a second thread waits more than it computes.
THREADS = "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"
# torchrun as the tests start it: two processes, a rendezvous on a port the OS picks (--standalone), so that two
# distributed tests in parallel workers never meet on torchrun's default port 29500.
TORCHRUN_TWO = [shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun", "--standalone",
                "--nproc-per-node", "2"]


def ganforge(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": THREADS}
    return subprocess.Popen([sys.executable, "-m", "ganforge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, **kwargs)


def torchrun(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*TORCHRUN_TWO, "-m", "ganforge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)


def assert_close(a: Path, b: Path) -> None:
    """Equal up to summation order: gradients agree to ~1e-6, but Adam divides by sqrt(v), so a weight whose
    gradient is near zero may move by up to lr (1e-3) differently per step. 5e-3 after 25 steps; the weights
    themselves are N(0, 1) (equalized learning rate), so another seed would differ by about 1."""
    tensors_a, _ = load_checkpoint(a)
    tensors_b, _ = load_checkpoint(b)
    for name in tensors_a:
        if name.startswith(("G.", "D.")):
            torch.testing.assert_close(tensors_a[name], tensors_b[name], rtol=0, atol=5e-3, msg=name)


def mean_weight_difference(a: Path, b: Path) -> float:
    tensors_a, _ = load_checkpoint(a)
    tensors_b, _ = load_checkpoint(b)
    names = [n for n in tensors_a if n.startswith(("G.", "D.")) and tensors_a[n].is_floating_point()]
    return sum((tensors_a[n] - tensors_b[n]).abs().mean().item() for n in names) / len(names)


def assert_killed_two_process_run_resumes_identically(args: list[str], root: Path) -> None:
    """torchrun `train ARGS` straight through under root/a, and killed after its first checkpoint then resumed
    (also on two processes) under root/b: the final checkpoints must be bit-identical."""
    straight = torchrun("train", "--out", str(root / "a"), *args)
    out, _ = straight.communicate(timeout=300)
    assert straight.returncode == 0, out
    proc = torchrun("train", "--out", str(root / "b"), *args)
    wait_for_checkpoint(proc, root / "b")
    kill_tree(proc.pid)
    proc.wait()
    resumed = torchrun("train", "--resume", str(only_run(root / "b")))
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "resumed from" in out and "\ntick " in out, out
    assert_identical(latest_checkpoint(only_run(root / "a")), latest_checkpoint(only_run(root / "b")))


def run_to_end(*args: str) -> str:
    proc = ganforge(*args)
    # The limit catches a hang, not a slow CPU: the demo recipe's 50 kimg take 4 minutes on an AVX2 CPU in fp32.
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    return out


def only_run(parent: Path) -> Path:
    (run_dir,) = parent.iterdir()
    return run_dir


def assert_identical(a: Path, b: Path) -> None:
    tensors_a, meta_a = load_checkpoint(a)
    tensors_b, meta_b = load_checkpoint(b)
    assert tensors_a.keys() == tensors_b.keys()
    different = [k for k in tensors_a if not torch.equal(tensors_a[k], tensors_b[k])]
    assert not different, f"tensors differ after resume: {different[:5]}"
    for key in ("counters", "sampler", "rng_python", "rng_numpy", "opt_G", "opt_D"):
        if key == "counters":  # wall time and the best snapshot's checks: not the run's trajectory
            for counters in (meta_a[key], meta_b[key]):
                for name in ("train_seconds", "best_check_seconds", "best_checks"):
                    counters.pop(name, None)
        assert meta_a[key] == meta_b[key], key


def tick_history(run_dir: Path) -> list[tuple[int, int, float | None, float | None, float | None]]:
    """(tick, nimg, loss_d, loss_g, loss_recon) per tick; None where a phase logs no such loss (SRGAN's
    pre-training has no D)."""
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [(r["tick"], r["nimg"], r.get("loss_d"), r.get("loss_g"), r.get("loss_recon")) for r in rows if "tick" in r]


def wait_for_checkpoint(proc: subprocess.Popen, parent: Path, accept=bool, timeout_s: float = 120) -> Path:
    """Block until the only run under `parent` has checkpoints that `accept` (a list of paths -> bool) likes."""
    from ganforge.runs.checkpoint import list_checkpoints

    deadline = time.monotonic() + timeout_s
    while not (parent.exists() and any(parent.iterdir()) and accept(list_checkpoints(only_run(parent)))):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "the run ended before a checkpoint"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.01)
    return only_run(parent)


def assert_kill_and_resume_matches(args: list[str], root: Path, accept=bool) -> None:
    """Train `args` once uninterrupted (root/a) and once SIGKILLed after a checkpoint `accept`s and resumed
    (root/b): the final checkpoints must be bit-identical and the logs tell the same tick history."""
    run_to_end("train", "--out", str(root / "a"), *args)
    proc = ganforge("train", "--out", str(root / "b"), *args)
    wait_for_checkpoint(proc, root / "b", accept)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_to_end("train", "--resume", str(only_run(root / "b")))
    a, b = only_run(root / "a"), only_run(root / "b")
    assert_identical(latest_checkpoint(a), latest_checkpoint(b))
    assert tick_history(a) == tick_history(b)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants at once, as a crash or an OOM kill of the machine would.
    torchrun starts its workers in process groups of their own, so killing its group leaves them running."""
    def descendants(parent: int) -> list[int]:
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            return []
        return [int(c) for c in children] + [d for c in children for d in descendants(int(c))]

    for target in [pid, *descendants(pid)]:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass


def noise_run_and_export(root: Path, train_flags: list[str]) -> tuple[Path, Path, Path]:
    """(store, run, export): 64 noise images at 16 px, a run trained on them in-process with `train_flags`, and
    its safetensors export, all under `root`."""
    import numpy as np
    from click.testing import CliRunner

    from ganforge.cli import main

    from data_slices import make_store

    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    store = make_store(root / "noise.gfs", images).path
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(root / "runs"), *train_flags])
    assert result.exit_code == 0, result.output
    run = only_run(root / "runs")
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(root / "export")])
    assert result.exit_code == 0, result.output
    return store, run, root / "export"


class FakeClock:
    """Seconds that pass only as the run trains: a step of `batch` images takes batch / speed, whatever the
    machine does meanwhile. `speed` may be a function of the images shown (a load spike)."""

    def __init__(self, speed) -> None:
        self.speed = speed if callable(speed) else (lambda nimg: speed)
        self.now = 1000.0
        self.nimg = 0

    def __call__(self) -> float:
        return self.now

    def advance_to(self, nimg: int) -> None:
        while self.nimg < nimg:
            self.now += 8 / self.speed(self.nimg)
            self.nimg += 8


TINY = {"model": "dcgan", "g_width": 8, "d_width": 8, "batch": 8}  # a budget run's smallest networks


def budget_run(store: Path, out: Path, clock: FakeClock, monkeypatch, run_dir: Path | None = None,
               tick_hooks=(), recorded_kimg: float | None = None, **settings):
    """train() with `settings` under `clock`, which advances with every step the loop reports; `recorded_kimg`
    stands in for the --kimg a budget run's config holds before its first plan."""
    beat = loop.Heartbeat.beat

    def beat_and_tick_the_clock(self, cur_nimg, tick_end_nimg):
        clock.advance_to(cur_nimg)
        beat(self, cur_nimg, tick_end_nimg)

    monkeypatch.setattr(loop.Heartbeat, "beat", beat_and_tick_the_clock)
    given = {**TINY, "data": str(store), "out": str(out), "snap": 1, **settings}
    resolved = resolve_run(RunRequest({_path_of_keyword(k): v for k, v in given.items()}))
    if recorded_kimg is not None:
        resolved = dataclasses.replace(resolved, config=dataclasses.replace(resolved.config, kimg=recorded_kimg))
    run_dir = run_dir or out / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.json").exists():
        from ganforge.runs.folder import write_run_config
        from ganforge.training.session import dataset_record

        write_run_config(run_dir, resolved.config, dataset_record(resolved.store, resolved.config))
    lines: list[str] = []
    state = train(resolved.config, run_dir, resolved.store, progress=False, echo=lines.append, clock=clock,
                  tick_hooks=tick_hooks)
    return state, lines, run_dir
