"""Hostile checkpoints on resume. Edited counters, data positions and RNG states, missing, renamed or misshapen
tensors are refused in one line naming the file, touching nothing. Flipped bytes fail the checksum: the resume
falls back to the previous checkpoint and ends bit-identical to a run never damaged; with none intact it
refuses. A checkpoint that does not read back intact prunes nothing; checkpoints from before checksums load."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from ganforge.cli import main
from ganforge.errors import CheckpointDamaged
from ganforge.runs import checkpoint as ckpt
from ganforge.runs.checkpoint import (
    CHECKSUM_KEY,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)

from data_slices import make_store
from run_helpers import assert_identical, only_run, run_to_end, tick_history

# Two ticks of a tiny DCGAN on 64 noise images: checkpoints at 32 and 56 images.
TRAIN = ["--model", "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--kimg", "0.05",
         "--tick-kimg", "0.025", "--snap", "1", "--keep", "5", "--seed", "1", "--no-progress"]
FIRST, LAST = "ckpt-0000000032.safetensors", "ckpt-0000000056.safetensors"

Edit = Callable[[dict[str, torch.Tensor], dict[str, Any]], None]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-checkpoints")
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    store = make_store(root / "noise.gfs", images).path
    run_to_end("train", "--data", str(store), "--out", str(root / "runs"), *TRAIN)
    return only_run(root / "runs")


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished run to damage."""
    return Path(shutil.copytree(finished_run, tmp_path / finished_run.name))


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _refusal(run_dir: Path, *flags: str) -> str:
    """The error line of a `train --resume` that must refuse (exit 2, no traceback, one error line)."""
    result = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--no-progress", *flags])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.output and len(errors) == 1, result.output
    return errors[0]


def _flip_bytes(path: Path, offset: int, count: int = 4) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _first(tensors: dict[str, torch.Tensor], prefix: str) -> str:
    return next(k for k in sorted(tensors) if k.startswith(prefix) and tensors[k].dim() > 1)


def _set(section: str, key: str, value: Any) -> Edit:
    return lambda tensors, meta: meta[section].__setitem__(key, value)


def _rename(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    name = _first(tensors, "D.")
    tensors[name.replace("weight", "kernel")] = tensors.pop(name)


HOSTILE: dict[str, tuple[Edit, str]] = {
    "negative cur_nimg": (_set("counters", "cur_nimg", -100_000), "counter cur_nimg is -100000, not an integer >= 0"),
    "fractional tick": (_set("counters", "tick", 1.5), "counter tick is 1.5, not an integer"),
    "counter as text": (_set("counters", "d_steps", "7"), "counter d_steps is '7', not an integer"),
    "cur_nimg off the data": (_set("counters", "cur_nimg", 64), "(epoch 0, image 56) is 56 images in, but counter "
                                                                "cur_nimg is 64"),
    "position past the epoch": (_set("sampler", "position", 64), "sampler position 64 is outside the epoch of 64"),
    "another dataset size": (_set("sampler", "dataset_size", 60_000), "saved for 60000 images, the store has 64"),
    "null sampler": (lambda t, m: m.__setitem__("sampler", None), "metadata 'sampler' is null"),
    "unknown key": (lambda t, m: m.__setitem__("resume_at", 0), "metadata has an unknown key 'resume_at'"),
    "unknown counter": (_set("counters", "bonus_nimg", 0), "counters has an unknown key 'bonus_nimg'"),
    "missing numpy RNG": (lambda t, m: m.pop("rng_numpy"), "metadata lacks 'rng_numpy'"),
    "short Python RNG": (lambda t, m: m["rng_python"].__setitem__(1, m["rng_python"][1][:10]),
                         "rng_python is not a Python random state"),
    "negative Python RNG word": (lambda t, m: m["rng_python"][1].__setitem__(0, -1),
                                 "rng_python is not a Python random state"),
    "NumPy RNG of another kind": (lambda t, m: m["rng_numpy"].__setitem__(0, "PCG64"),
                                  "rng_numpy is not a NumPy MT19937 state"),
    "NumPy RNG position": (lambda t, m: m["rng_numpy"].__setitem__(2, 10_000), "rng_numpy is not a NumPy MT19937"),
    "short torch RNG": (lambda t, m: t.__setitem__("rng.torch", t["rng.torch"][:100]),
                        "tensor rng.torch is uint8 [100], this run needs uint8 [5056]"),
    "torch RNG of another type": (lambda t, m: t.__setitem__("rng.latent", t["rng.latent"].long()),
                                  "tensor rng.latent is int64 [5056], this run needs uint8 [5056]"),
    "negative stat count": (_set("stat_counts", "loss_d", -1), "stat_counts loss_d is -1"),
    # A stat newer than the format (the mode-seeking term) may be absent, but only its tensor and count together.
    "a newer stat's count without its tensor": (lambda t, m: t.pop("stats.mode_seeking"),
                                                "no tensor stats.mode_seeking but a stat_counts mode_seeking"),
    "negative budget time": (_set("counters", "budget_seconds", -5.0), "counter budget_seconds is -5.0, not seconds"),
    "budget time as text": (_set("counters", "budget_seconds", "60"), "counter budget_seconds is '60', not seconds"),
    "endless tick end": (_set("counters", "budget_end_seconds", float("inf")), "counter budget_end_seconds is inf"),
    "negative tick end": (_set("counters", "budget_end_seconds", -1.0), "counter budget_end_seconds is -1.0, not"),
    "healthy tick in the future": (_set("counters", "healthy_nimg", 10**9), "counter healthy_nimg 1000000000 is past"),
    "healthy tick below -1": (_set("counters", "healthy_nimg", -2), "counter healthy_nimg is -2, not an integer >= -1"),
    "collapse kept twice": (_set("counters", "collapse_kept", 2), "counter collapse_kept is 2, not 0 or 1"),
    "collapse warned in the future": (_set("counters", "collapse_warned_nimg", 10**9),
                                      "counter collapse_warned_nimg 1000000000 is past"),
    "missing tensor": (lambda t, m: t.pop(_first(t, "G.")), "is missing"),
    "renamed tensor": (_rename, ".kernel is not part of this run's state (renamed, or from another model)"),
    "misshapen weight": (lambda t, m: t.__setitem__(_first(t, "G."), torch.zeros(3)),
                         "is float32 [3], this run needs float32 ["),
    "misshapen Adam moment": (lambda t, m: t.__setitem__("opt_D.0.exp_avg", torch.zeros(2)),
                              "tensor opt_D.0.exp_avg is float32 [2], the optimizer needs floats of shape"),
    "Adam state of no parameter": (lambda t, m: t.__setitem__("opt_D.99.exp_avg", torch.zeros(2)),
                                   "tensor opt_D.99.exp_avg is not the state of one of the optimizer's"),
    "another format": (lambda t, m: m.__setitem__("format", 99), "checkpoint format 99 is not 1"),
    "Adam beta above 1": (lambda t, m: m["opt_D"]["param_groups"][0].__setitem__("betas", [0.5, 1.5]),
                          "opt_D parameter group 0 has betas = [0.5, 1.5], but Adam's betas must be in [0, 1)"),
    "negative learning rate": (lambda t, m: m["opt_G"]["param_groups"][0].__setitem__("lr", -0.1),
                               "opt_G parameter group 0 has lr = -0.1, but Adam's lr must be positive"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_an_intact_but_hostile_checkpoint_is_refused_in_one_line_touching_nothing(run: Path, case: str) -> None:
    edit, problem = HOSTILE[case]
    latest = run / "checkpoints" / LAST
    tensors, meta = load_checkpoint(latest)
    edit(tensors, meta)
    save_checkpoint(latest, tensors, meta)  # with a valid checksum: only the checks can refuse it
    before = _snapshot(run)
    # With an override, which a resume records in config.json and log.jsonl only once the checkpoint passed.
    error = _refusal(run, "--lr-d", "1e-3")
    assert error.startswith(f"error: {latest} cannot be resumed: ") and problem in error, error
    assert _snapshot(run) == before  # log.jsonl, config.json and every checkpoint as they were


@pytest.mark.slow
def test_flipped_bytes_fall_back_to_the_previous_checkpoint_and_resume_bit_identically(finished_run: Path,
                                                                                      run: Path) -> None:
    damaged = run / "checkpoints" / LAST
    _flip_bytes(damaged, damaged.stat().st_size - 600)  # inside the tensor data, after the header
    out = run_to_end("train", "--resume", str(run))
    assert (f"checkpoint {damaged} is damaged (checksum mismatch); resuming from the previous one, "
            f"{run / 'checkpoints' / FIRST}") in out, out
    assert f"resumed from {run / 'checkpoints' / FIRST}" in out
    # Re-trained from the intact one to the same point: the same state as before the damage, the same history.
    assert_identical(finished_run / "checkpoints" / LAST, damaged)
    assert tick_history(run) == tick_history(finished_run)
    kept = damaged.with_name(LAST + ".damaged")  # nothing is lost, and nothing prunes or resumes from it
    assert kept.exists() and [p.name for p in list_checkpoints(run)] == [FIRST, LAST]


def test_with_no_intact_checkpoint_the_resume_refuses_in_one_line_moving_nothing(run: Path) -> None:
    _flip_bytes(run / "checkpoints" / LAST, (run / "checkpoints" / LAST).stat().st_size - 600)
    _flip_bytes(run / "checkpoints" / FIRST, 20)  # inside the safetensors header: no longer readable
    before = _snapshot(run)
    error = _refusal(run)
    assert error.startswith(f"error: no checkpoint of {run} is intact (") and f"{LAST}: checksum mismatch" in error
    assert f"{FIRST}: not a readable checkpoint" in error and "restore the run folder from a backup" in error
    assert _snapshot(run) == before


def test_a_checkpoint_that_does_not_read_back_intact_is_set_aside_and_prunes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for nimg in (100, 200):
        save_checkpoint(checkpoint_path(tmp_path, nimg), {"w": torch.full((1000,), float(nimg))}, {"nimg": nimg})
    rename = os.replace

    def replace_then_rot(src: str | Path, dst: str | Path) -> None:  # a disk that corrupts what it is given
        rename(src, dst)
        if str(dst).endswith("300.safetensors"):
            _flip_bytes(Path(dst), Path(dst).stat().st_size - 100)

    monkeypatch.setattr(ckpt.os, "replace", replace_then_rot)
    with pytest.raises(CheckpointDamaged, match="did not read back intact after writing \\(checksum mismatch\\)"):
        save_checkpoint(checkpoint_path(tmp_path, 300), {"w": torch.zeros(1000)}, {"nimg": 300})
    # The loop prunes only after save_checkpoint returns, so the good ones stay, and they are the newest listed.
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-0000000100.safetensors",
                                                            "ckpt-0000000200.safetensors"]
    assert (tmp_path / "checkpoints" / "ckpt-0000000300.safetensors.damaged").exists()


def test_checkpoints_record_a_checksum_and_older_ones_without_one_load_unverified(tmp_path: Path) -> None:
    path = checkpoint_path(tmp_path, 10)
    save_checkpoint(path, {"w": torch.arange(4.0)}, {"counters": {"cur_nimg": 10}})
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    assert header["__metadata__"][CHECKSUM_KEY] == ckpt.content_checksum(header["__metadata__"]["ganforge"],
                                                                         {"w": torch.arange(4.0)})
    old = checkpoint_path(tmp_path, 20)  # as ganforge 0.1 wrote them (tests/fixtures/v0.1-*): no checksum
    save_file({"w": torch.arange(4.0)}, str(old), metadata={"ganforge": json.dumps({"counters": {"cur_nimg": 20}})})
    _flip_bytes(old, old.stat().st_size - 4)
    tensors, meta = load_checkpoint(old)  # unverified but accepted: there is nothing to verify it against
    assert meta == {"counters": {"cur_nimg": 20}} and not torch.equal(tensors["w"], torch.arange(4.0))
