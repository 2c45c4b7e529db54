"""torchrun + DDP on the CPU (gloo): two processes compute what one process computes with the same global batch,
and a killed two-process run resumes, here on one process (the world size may change on resume)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from ganforge.runs.checkpoint import latest_checkpoint, load_checkpoint

from data_slices import digits16_store
from run_helpers import (
    assert_close,
    assert_identical,
    assert_killed_two_process_run_resumes_identically,
    kill_tree,
    mean_weight_difference,
    only_run,
    run_to_end,
    torchrun,
    wait_for_checkpoint,
)

# Without --sync-bn BatchNorm keeps per-rank statistics, so the equivalence check uses ProGAN's networks, which
# have no layer mixing samples once minibatch-stddev is off; DCGAN (BatchNorm in G and D) checks --sync-bn.
ARGS = ["--model", "progan", "--no-mbstd", "--loss", "nonsaturating", "--drift", "0", "--phase-kimg", "0.2",
        "--kimg", "0.8", "--batch", "32", "--tick-kimg", "0.1", "--snap", "1", "--fmap-base", "256", "--fmap-max",
        "32", "--z-dim", "32", "--no-progress"]
DCGAN = ["--model", "dcgan", "--kimg", "0.32", "--batch", "32", "--tick-kimg", "0.16", "--seed", "3", "--no-progress"]


@pytest.fixture(scope="module")
def digits16(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ddp")
    store = digits16_store(root)
    run_to_end("train", "--data", str(store), "--out", str(root / "single"), *ARGS)
    return store, latest_checkpoint(only_run(root / "single"))


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(digits16, tmp_path):
    store, single = digits16
    proc = torchrun("train", "--data", str(store), "--out", str(tmp_path), *ARGS)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    single_ticks = (single.parents[1] / "log.jsonl").read_text().count('"tick"')
    assert sum(line.startswith("tick ") for line in out.splitlines()) == single_ticks  # rank 0 alone reports
    assert out.count("run folder") == 1
    assert latest_checkpoint(only_run(tmp_path)).name == single.name
    assert_close(single, latest_checkpoint(only_run(tmp_path)))


@pytest.mark.slow
def test_killed_two_process_run_resumes_on_one_process(digits16, tmp_path):
    store, single = digits16
    proc = torchrun("train", "--data", str(store), "--out", str(tmp_path), *ARGS)
    wait_for_checkpoint(proc, tmp_path)
    kill_tree(proc.pid)  # torchrun and both workers, mid-run
    proc.wait()
    run_dir = only_run(tmp_path)
    out = run_to_end("train", "--resume", str(run_dir))
    assert "resumed from" in out and "\ntick " in out  # killed mid-run: the resumed run still had ticks to train
    assert latest_checkpoint(run_dir).name == single.name
    assert_close(single, latest_checkpoint(run_dir))


@pytest.mark.slow
def test_sync_bn_gives_two_processes_the_batchnorm_statistics_of_one(digits16, tmp_path):
    store, _ = digits16
    run_to_end("train", "--data", str(store), "--out", str(tmp_path / "single"), *DCGAN)
    outputs = {}
    for name, flag in (("synced", "--sync-bn"), ("per-rank", "--no-sync-bn")):
        proc = torchrun("train", "--data", str(store), "--out", str(tmp_path / name), flag, *DCGAN)
        outputs[name], _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, outputs[name]
    assert "BatchNorm layers normalise over the global batch of 2 processes" in outputs["synced"]
    single, synced, per_rank = (latest_checkpoint(only_run(tmp_path / name)) for name in ("single", "synced",
                                                                                          "per-rank"))
    assert_close(single, synced)
    # Per-rank statistics (half the batch each) are a different computation, not float noise: measured mean
    # differences 1e-8 (synced) against 3e-4 (per rank).
    synced_gap, per_rank_gap = mean_weight_difference(single, synced), mean_weight_difference(single, per_rank)
    assert per_rank_gap > 3 * synced_gap, (synced_gap, per_rank_gap)


@pytest.mark.slow
def test_killed_two_process_run_with_random_draws_resumes_bit_identically(digits16, tmp_path):
    # Dropout and label flips draw from each rank's own stream, reseeded at every tick end: a resumed run draws
    # what the uninterrupted one drew (a reseed only at start-up left the weights up to 1e-3 apart).
    store, _ = digits16
    args = ["--data", str(store), *DCGAN, "--kimg", "0.64", "--tick-kimg", "0.064", "--snap", "1", "--d-dropout",
            "0.3", "--label-flip", "0.1"]
    assert_killed_two_process_run_resumes_identically(args, tmp_path)


@pytest.mark.slow
def test_two_processes_end_by_their_deadline_inside_a_long_tick(digits16, tmp_path):
    # A tick of 1,000 kimg (hours here) never reaches its end, where the ranks plan: they must still agree to stop
    # on time, mid-tick, and end as a finished run does (its last tick row, a checkpoint, "done").
    store, _ = digits16
    proc = torchrun("train", "--data", str(store), "--out", str(tmp_path), "--model", "dcgan", "--batch", "32",
                    "--minutes", "0.25", "--tick-kimg", "1000", "--no-progress")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "done: " in out and out.count("run folder") == 1
    run_dir = only_run(tmp_path)
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    final = [e for e in events if e.get("source") == "the deadline came first"]
    assert len(final) == 1 and final[0]["seconds_left"] > 0, events
    ticks = [e for e in events if "tick" in e]
    assert len(ticks) == 1 and ticks[0]["nimg"] == round(final[0]["kimg"] * 1000) < 1_000_000
    assert latest_checkpoint(run_dir) is not None


@pytest.mark.slow
def test_two_processes_stopped_mid_tick_by_ctrl_c_resume_bit_identically(digits16, tmp_path):
    # torchrun gives its workers 30 s after a Ctrl-C before it kills them, and a tick may be longer: the ranks must
    # agree to stop within the tick, checkpoint, and resume to what a run never stopped trains (own random draws
    # included: dropout and label flips).
    store, _ = digits16
    args = ["--data", str(store), *DCGAN, "--kimg", "4.8", "--tick-kimg", "1000", "--d-dropout", "0.3",
            "--label-flip", "0.1"]
    straight = torchrun("train", "--out", str(tmp_path / "a"), *args)
    out, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, out
    stopped = torchrun("train", "--out", str(tmp_path / "b"), *args)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "b").glob("*/reals.png")):  # written just before the loop starts
        assert stopped.poll() is None and time.monotonic() < deadline, stopped.communicate()[0]
        time.sleep(0.05)
    time.sleep(3)
    stopped.send_signal(signal.SIGINT)  # what Ctrl-C sends torchrun, which passes it on to its workers
    out, _ = stopped.communicate(timeout=60)
    run_dir = only_run(tmp_path / "b")
    assert out.count("checkpoint written") == 1 and "forcefully" not in out, out  # rank 0's line; not killed
    _, meta = load_checkpoint(latest_checkpoint(run_dir))
    assert 0 < meta["counters"]["cur_nimg"] < 4_800 and meta["counters"]["tick"] == 0, meta["counters"]
    resumed = torchrun("train", "--resume", str(run_dir))
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0 and "resumed from" in out, out
    assert_identical(latest_checkpoint(only_run(tmp_path / "a")), latest_checkpoint(run_dir))
