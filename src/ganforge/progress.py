"""Progress for terminals and for logs: a redrawn tqdm bar when the stream is a terminal, otherwise one plain line
every few seconds and one at the end (a bar's carriage returns fill a log file with hundreds of frames)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")
LINE_EVERY_S = 10.0


class LineProgress:
    """tqdm's interface (iterate, update, close, context manager) printing whole lines, for non-terminals."""

    def __init__(self, iterable: Iterable[Any] | None, total: int | None, desc: str, unit: str, file: TextIO,
                 every_s: float = LINE_EVERY_S) -> None:
        self.iterable, self.desc, self.unit, self.file, self.every_s = iterable, desc, unit, file, every_s
        self.total = total if total is not None else _length(iterable)
        self.n = 0
        self.started = self.last_line = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last_line >= self.every_s:
            self._line()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(done=True)

    def _line(self, done: bool = False) -> None:
        self.last_line = time.monotonic()
        elapsed = max(1e-9, self.last_line - self.started)
        of = f"/{self.total:,}" if self.total else ""
        percent = f" ({self.n / self.total:.0%})" if self.total else ""
        print(f"{self.desc}: {self.n:,}{of} {self.unit}{percent}, {self.n / elapsed:,.0f} {self.unit}/s"
              f"{', done' if done else ''}", file=self.file, flush=True)


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "img",
             enabled: bool = True, file: TextIO | None = None) -> Any:
    """A tqdm bar on a terminal, LineProgress elsewhere, or a silent tqdm when not `enabled`."""
    stream = file or sys.stderr
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if stream.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True)
    return LineProgress(iterable, total, desc, unit, stream)


def _length(iterable: Iterable[Any] | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None
