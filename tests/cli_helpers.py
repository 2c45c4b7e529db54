"""Running the CLI in-process and reading its one-line errors, for the hostile tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner, Result

from ganforge.cli import main

# Flags of runs that train in a second, for tests that need a run or an image-to-image run to refuse things on.
TRAIN = ["--model", "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--kimg", "0.025",
         "--tick-kimg", "0.025", "--seed", "1", "--no-progress"]
TINY_PIX2PIX = ["--model", "pix2pix", "--g-width", "4", "--d-width", "4", "--batch", "4", "--kimg", "0.008",
                "--tick-kimg", "0.008", "--seed", "2", "--no-progress"]


@contextmanager
def within(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: SIGALRM interrupts an open() blocked on a FIFO, or a read of /dev/zero (POSIX)."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def invoke(*args: str | Path) -> Result:
    """`ganforge ARGS` in-process; the result, whatever its exit code."""
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(result: Result) -> str:
    """The single `error:` line of a refused command, asserting it exited 1 or 2 without a traceback."""
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code in (1, 2) and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def usage_error(args: list[str]) -> str:
    """The single `error:` line of a command refused for its flags or inputs (exit code 2)."""
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    return one_error(result)


def tiny_pix2pix_run(root: Path) -> Path:
    """A pix2pix run of a few steps on digit pairs, under `root`; its run folder."""
    from data_slices import digit_pairs_store
    from run_helpers import only_run

    result = invoke("train", "--data", digit_pairs_store(root), "--out", root / "runs", *TINY_PIX2PIX)
    assert result.exit_code == 0, result.output
    return only_run(root / "runs")
