"""The run's record of progress: log.jsonl (one JSON object per tick or event), TensorBoard when installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.errors import CheckpointError
from ganforge.regular_files import NotARegularFile, append_regular, read_json_lines
from ganforge.whole_files import written_whole

LOG_FILE = "log.jsonl"


class RunLog:
    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.path = run_dir / LOG_FILE
        self._writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional extra: ganforge[tensorboard]
            except ImportError:
                pass
            else:
                self._writer = SummaryWriter(str(run_dir / "tensorboard"))

    def records(self) -> list[dict[str, Any]]:
        """The log's rows up to the first that does not parse (a line cut short by a kill: everything after it is
        unreliable); none when there is no log yet. A log that is no regular file (a FIFO would block for good) or
        too large to be one is a CheckpointError naming it."""
        try:
            rows = read_json_lines(self.path)
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{self.path}: {error}; move it away (the run resumes without its history)") \
                from None
        return [row for row in rows if isinstance(row, dict)]

    def truncate_after(self, nimg: int) -> None:
        """Drop rows from after the checkpoint being resumed, so the log reads as one uninterrupted history."""
        kept = [r for r in self.records() if r.get("nimg", 0) <= nimg]
        with written_whole(self.path) as temporary:
            temporary.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def append(self, record: dict[str, Any]) -> None:
        try:
            append_regular(self.path, json.dumps(record) + "\n")
        except NotARegularFile as error:  # a FIFO would block the run at its first row
            raise CheckpointError(f"{self.path}: {error}; move it away (the run resumes without its history)") \
                from None
        if self._writer is not None and "tick" in record:
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("tick", "nimg"):
                    self._writer.add_scalar(key, value, record["nimg"])
            self._writer.flush()

    def image(self, tag: str, image: Any, nimg: int) -> None:
        """A PIL image to TensorBoard (when it is installed), at step `nimg`."""
        if self._writer is not None:
            self._writer.add_image(tag, np.asarray(image.convert("RGB")), nimg, dataformats="HWC")
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
