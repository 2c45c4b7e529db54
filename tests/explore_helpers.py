"""A tiny trained run for the generate/explore/export/serve tests: one CLI call, about three seconds on CPU."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from click.testing import CliRunner

from ganforge.cli import main

from data_slices import mnist_store


def train_tiny_run(root: Path, *, ema: bool = True) -> Path:
    """A DCGAN of width 8 trained for 0.3 kimg on 256 real MNIST digits; returns its run folder."""
    store = mnist_store(root / "digits.gfs", 256)
    args = ["train", "--model", "dcgan",
            "--data", str(store), "--kimg", "0.3", "--batch", "32", "--tick-kimg", "0.15", "--g-width", "8",
            "--d-width", "8", "--no-progress", "--out", str(root / "runs")]
    result = CliRunner().invoke(main, args + (["--ema-kimg", "1"] if ema else []))
    assert result.exit_code == 0, result.output
    (run_dir,) = (root / "runs").iterdir()
    return run_dir


def train_tiny_conditional_run(root: Path) -> Path:
    """A class-conditional DCGAN of width 8 (G(z, labels), MNIST's ten digits "0".."9") after 0.1 kimg."""
    store = mnist_store(root / "digits.gfs", 256)
    args = ["train", "--model", "dcgan",
            "--data", str(store), "--cond", "--kimg", "0.1", "--batch", "32", "--tick-kimg", "0.1",
            "--g-width", "8", "--d-width", "8", "--no-progress", "--out", str(root / "runs")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = (root / "runs").iterdir()
    return run_dir


def invoke(*args: str | Path) -> str:
    """Run a ganforge command in-process; returns its output, failing the test with it on a non-zero exit."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def invoke_error(*args: str | Path) -> str:
    """Run a command that must fail the way users see it: exit 2, one line, no traceback."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) == 1, result.output
    return result.output


@contextmanager
def one_thread() -> Iterator[None]:
    """Width-8 networks on 28 px are too small to split across threads: on a busy 2-core machine two OpenMP
    threads made these tests 3x slower than one. Restores the previous setting for the tests that follow."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
