"""Counting what makes the host wait for the device during training: reads of a tensor's value back to Python
(`item`, `tolist`, `bool`, `float`, `int`, `index`, `cpu`, `numpy`), and on CUDA every operation torch itself reports
as synchronizing (`torch.cuda.set_sync_debug_mode`). Each is counted by its call site in ganforge.

`reads_per_step` trains one run twice, with 2 and with 6 iterations per tick, and counts between the first and the
second tick: what a tick does (log line, grid, checkpoint) is the same in both, so any site counted more often in
the longer tick is read inside a step. Can be run under torchrun (`python tests/host_reads.py SETTINGS_JSON`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

import ganforge

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")
SHORT_TICK, LONG_TICK = 2, 6  # iterations per tick


def _optimizer_step_count(tensor: torch.Tensor) -> bool:
    """Whether torch's own optimizer or fp16 gradient scaler reads a CPU tensor: Adam on the CPU (multi-tensor)
    reads its step counts each step, and the scaler then reads its overflow flag. On a GPU ganforge's Adam is
    fused: the counts and the flag stay on the device, and a read there would be counted."""
    caller = sys._getframe(2).f_code.co_filename
    return tensor.device.type == "cpu" and any(f"{os.sep}torch{os.sep}{part}{os.sep}" in caller
                                               for part in ("optim", "amp"))


PACKAGE = str(Path(ganforge.__file__).resolve().parent) + os.sep  # the installed package, wherever the clone is


def _site(kind: str) -> str:
    frames = traceback.extract_stack(limit=16)[:-2]
    where = next((f for f in reversed(frames) if f.filename.startswith(PACKAGE)), frames[-1])
    return f"{kind} at {where.filename.removeprefix(PACKAGE)}:{where.lineno}"


@contextlib.contextmanager
def counting_host_reads() -> Iterator[Counter[str]]:
    """Inside, every host read and (on CUDA) every synchronizing operation adds one to its site's count."""
    sites: Counter[str] = Counter()
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def counted(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def read(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if not _optimizer_step_count(self):
                sites[_site(name)] += 1
            return original(self, *args, **kwargs)
        return read

    for name, original in originals.items():
        setattr(torch.Tensor, name, counted(name, original))
    cuda = torch.cuda.is_available()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            yield sites
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
    for warning in caught:
        if "synchroniz" in str(warning.message):
            sites[f"cuda sync at {Path(warning.filename).name}:{warning.lineno}"] += 1


def reads_in_one_tick(data: Path, out: Path, iterations: int, settings: dict[str, Any]) -> Counter[str]:
    """Host reads between a run's first and second tick, with `iterations` D-and-G iterations per tick."""
    from ganforge.api import _path_of_keyword
    from ganforge.training import train
    from ganforge.training.run_config import RunRequest, resolve_run

    batch = settings.setdefault("batch", 8)
    per_tick = batch * iterations * settings.get("d_steps", 1)
    given = {**settings, "data": str(data), "out": str(out), "tick_kimg": per_tick / 1000,
             "kimg": 3 * per_tick / 1000, "snap": 100}
    resolved = resolve_run(RunRequest({_path_of_keyword(k): v for k, v in given.items()}))
    assert resolved.store is not None
    run_dir = out / f"every-{iterations}"
    run_dir.mkdir(parents=True, exist_ok=True)
    marks: list[Counter[str]] = []
    with counting_host_reads() as sites:
        train(resolved.config, run_dir, resolved.store, progress=False, echo=lambda _: None,
              tick_hooks=(lambda state, record: marks.append(Counter(sites)),))
    assert len(marks) >= 2, f"the run made {len(marks)} ticks"
    return marks[1] - marks[0]


def reads_per_step(data: Path, settings: dict[str, Any]) -> Counter[str]:
    """The sites read more often in a tick of 6 iterations than in one of 2: reads inside the steps."""
    with tempfile.TemporaryDirectory() as out:
        short = reads_in_one_tick(data, Path(out) / "short", SHORT_TICK, dict(settings))
        long = reads_in_one_tick(data, Path(out) / "long", LONG_TICK, dict(settings))
    return long - short


if __name__ == "__main__":  # under torchrun: print each rank's reads per step as one JSON line
    store, given = Path(sys.argv[1]), json.loads(sys.argv[2])
    print("reads:", json.dumps(dict(reads_per_step(store, given))), flush=True)
