"""Errors meant for users: one sentence naming what is wrong, where, and what to do.

The CLI prints a GanforgeError without a traceback (``--debug`` shows one) and exits with its `exit_code`;
anything else is a bug.
"""

import signal


class GanforgeError(Exception):
    """Base class of every error a user can fix."""

    exit_code = 2


class DataError(GanforgeError):
    """A dataset source or store cannot be read or holds nothing usable."""


class ConfigError(GanforgeError):
    """A flag or configuration value is invalid or inconsistent."""


class CheckpointError(GanforgeError):
    """A run folder or checkpoint is missing, damaged or incompatible."""


class CheckpointDamaged(CheckpointError):
    """A checkpoint file cannot be read or fails its checksum: its bytes changed after it was written."""


class RunInUse(GanforgeError):
    """Another process holds the run folder's lock: it is training that run now."""


class TrainingDiverged(GanforgeError):
    """A loss became NaN or infinite; no checkpoint with non-finite values is written."""


class TrainingInterrupted(GanforgeError):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM after writing its checkpoint: resume continues exactly."""

    def __init__(self, signum: int, where: str) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        super().__init__(f"interrupted ({name}) {where}")
        self.exit_code = 128 + signum  # what a shell reports for a process the signal killed: 130, 143


class PartlyWritten(GanforgeError):
    """A command that writes many files failed part-way: `cause` says why; the files already written (each whole)
    stay, and `note` says how many and that running the command again replaces them."""

    def __init__(self, cause: Exception, written: int, total: int, where: str) -> None:
        self.cause = cause
        self.note = (f"({written:,} of {total:,} files were written to {where} before it stopped; each is whole, "
                     "and running the command again replaces them)")
        super().__init__(f"{cause} {self.note}")
        self.exit_code = getattr(cause, "exit_code", 1)
