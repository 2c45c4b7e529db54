"""Hostile checkpoints of image-to-image runs: CycleGAN's history pool and an unpaired store's input sampler are
state, so an edited pool or sampler is refused in one line naming the file, as any other edited state is."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.runs.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

from data_slices import digits_fashion_store
from run_helpers import only_run

TRAIN = ["--model", "cyclegan", "--g-width", "4", "--d-width", "4", "--batch", "4", "--kimg", "0.032",
         "--tick-kimg", "0.016", "--snap", "1", "--pool-size", "6", "--seed", "2", "--no-progress"]

Edit = Callable[[dict[str, torch.Tensor], dict[str, Any]], None]

HOSTILE: dict[str, tuple[Edit, str]] = {
    "pool fuller than its size": (lambda t, m: m["pool"].__setitem__("filled", [7, 0]),
                                  "pool filled [7, 0] is not a count of at most 6 per D"),
    "pool of another size": (lambda t, m: m["pool"].__setitem__("size", 50),
                             "the pool was saved with 50 images per D, the run keeps 6"),
    "pool images reshaped": (lambda t, m: t.__setitem__("pool.images", torch.zeros(2, 3, 1, 16, 16)),
                             "tensor pool.images is float32 [2, 3, 1, 16, 16], this run needs float32 "
                             "[2, 6, 1, 16, 16]"),
    "pool dropped": (lambda t, m: m.pop("pool"), "the checkpoint's history pool does not match the model"),
    "input sampler dropped": (lambda t, m: m.pop("input_sampler"), "the checkpoint's input sampler does not match"),
    "input sampler past its epoch": (lambda t, m: m["input_sampler"].__setitem__("position", 60),
                                     "sampler position 60 is outside the epoch of 60 images"),
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-translation")
    store = digits_fashion_store(root)
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(root / "runs"), *TRAIN])
    assert result.exit_code == 0, result.output
    return only_run(root / "runs")


@pytest.mark.parametrize("case", list(HOSTILE))
def test_an_edited_pool_or_input_sampler_is_refused_in_one_line(finished_run: Path, tmp_path: Path,
                                                                 case: str) -> None:
    run = Path(shutil.copytree(finished_run, tmp_path / finished_run.name))
    latest = latest_checkpoint(run)
    assert latest is not None
    tensors, meta = load_checkpoint(latest)
    edit, problem = HOSTILE[case]
    edit(tensors, meta)
    save_checkpoint(latest, tensors, meta)  # with a valid checksum: only the checks can refuse it
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--kimg", "0.064", "--no-progress"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert errors[0].startswith(f"error: {latest} cannot be resumed: ") and problem in errors[0], errors[0]
