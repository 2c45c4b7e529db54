"""One trainer per run folder: an OS advisory lock (flock) on RUN/.lock, held while a process trains the run.

Without it two `train --resume RUN` at once both train, interleaving checkpoints and logging every tick twice.
An flock belongs to the open file, so the OS drops it when the process ends, however it ends (SIGKILL and
OOM kills included): a killed run never blocks its own resume, and there is no stale lock to clean up. The file
holds the holder's pid, for the refusal message only. Platforms without fcntl (Windows) train unlocked.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from types import TracebackType

from ganforge.errors import CheckpointError, RunInUse
from ganforge.regular_files import kind_of
from ganforge.runs.checkpoint import remove_stale_temporaries

if sys.platform != "win32":
    import fcntl

LOCK_FILE = ".lock"
# File systems that cannot lock (some network mounts) train unlocked rather than not at all.
_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}


class RunLock:
    """A held lock on a run folder; a context manager around the training, which releases it at the end."""

    def __init__(self, run_dir: Path, fd: int | None) -> None:
        self.run_dir = run_dir
        self._fd = fd
        self.training = False

    def __enter__(self) -> RunLock:
        self.training = True
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        if _held.get(self.run_dir) is self:
            del _held[self.run_dir]
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor of the open file drops the flock
            self._fd = None


# This process's locks, by resolved run folder. flock locks conflict between two opens within one process too,
# so a lock left by a call here that failed before training began (its frame kept alive by a traceback) would
# otherwise refuse the next call with this process's own pid.
_held: dict[Path, RunLock] = {}


def lock_run(run_dir: Path) -> RunLock:
    """Take `run_dir`'s lock, or refuse in one line (RunInUse) naming the process that holds it."""
    key = run_dir.resolve()
    earlier = _held.get(key)
    if earlier is not None:
        if earlier.training:
            raise RunInUse(_busy(run_dir, str(os.getpid())))
        earlier.release()
    if sys.platform == "win32":
        return RunLock(key, None)
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o644)
    except IsADirectoryError as exc:
        raise _not_regular(path, stat.S_IFDIR) from exc
    except OSError as exc:
        raise CheckpointError(f"cannot open {path} ({exc.strerror}); train the run where you may write.") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunInUse(_busy(run_dir, holder)) from None
    except OSError as exc:
        if exc.errno not in _NO_LOCKING:
            os.close(fd)
            raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    lock = _held[key] = RunLock(key, fd)
    # Holding the lock, no other trainer writes here: a temporary checkpoint of a dead writer (a SIGKILL mid-write)
    # is stale, and would otherwise stay as large as a checkpoint for good. Run start and resume both pass here.
    remove_stale_temporaries(run_dir)
    return lock


def _not_regular(path: Path, mode: int) -> CheckpointError:
    return CheckpointError(f"{path} is not a regular file ({kind_of(mode)}); remove it, then train the run again "
                           "(ganforge makes a new one).")


def _busy(run_dir: Path, pid: str) -> str:
    return f"{run_dir} is being trained by another process (pid {pid}); wait for it or stop it"


def lock_holder(run_dir: Path) -> str | None:
    """The pid of the process training `run_dir` now, or None; reads only (the lock file is not created)."""
    if sys.platform == "win32":
        return None
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO there must not block `doctor`
    except OSError:
        return None  # no lock file: never trained by this version, or not now
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # no process can hold a lock on it: training would refuse it
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the shared lock taken when the run was free
    return None
