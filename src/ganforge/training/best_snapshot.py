"""With `--minutes`: a periodic cheap quality check that keeps the best snapshot beside the last.

A budget run ends when its time does, not when G is at its best: a late collapse or a bad last stretch would leave
the user the worse weights. So the run scores G (its EMA when kept) by KID on `CHECK_N` images against the store's
cached real features, at tick ends, and keeps the best-scoring weights in `RUN/best/`, itself a run folder (its
config.json and one checkpoint): `ganforge generate RUN/best`, `export RUN/best` and `serve RUN/best` take it as
they take RUN, whose latest checkpoint stays the last weights.

The checks cost a stated share of the budget (--best-share, 5 % by default): none before `START_SHARE` of the
budget is spent (early weights do not win), then one whenever the time spent on checks so far, plus the last
check's cost, stays within the share of the time used; the run's last tick is always checked once any check was
made, so the last weights compete too. Under torchrun rank 0 decides and every rank takes part in the scoring.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ganforge.config import TrainConfig
from ganforge.data.store import Store
from ganforge.metrics import load_extractor
from ganforge.regular_files import read_json
from ganforge.runs import checkpoint as ckpt
from ganforge.runs.folder import CONFIG_FILE
from ganforge.training.distributed import Distributed
from ganforge.training.metrics_hook import training_metrics_hook
from ganforge.training.state import TrainingState

CHECK_N = 500  # generated images per check (and real images in the cached statistics)
ESTIMATE_IMAGES = 8  # images the extractor is timed on before the first check
START_SHARE = 0.3  # of the budget spent before the first check
BEST_FOLDER = "best"
BEST_RECORD = "best.json"


def best_snapshot_hook(config: TrainConfig, store: Store, ctx: Distributed, run_dir: Path,
                       echo: Callable[[str], None]) -> Callable[[TrainingState, dict[str, Any]], None]:
    """The tick hook that checks KID when due and writes RUN/best/ when G beats its best so far."""
    check = dataclasses.replace(config, metrics="kid", metrics_n=min(CHECK_N, len(store)), metrics_every=1)
    extractor = load_extractor(check.metrics_extractor, device=ctx.device_for(config.device))
    score = training_metrics_hook(check, store, ctx, extractor)
    budget_seconds = config.minutes * 60
    best_kid = _recorded_best(run_dir / BEST_FOLDER, echo)
    spent, checks = 0.0, 0
    # Before the first check, its cost is estimated from the extractor's speed on a few images: the generated
    # ones and, not yet cached, as many real ones (a short budget on a slow extractor then makes no check at all).
    last_cost = -1.0

    def estimated_cost() -> float:
        sample = torch.randint(0, 256, (ESTIMATE_IMAGES, *store.manifest.output_shape), dtype=torch.uint8)
        started = time.perf_counter()
        extractor.extract(sample)
        return (time.perf_counter() - started) / ESTIMATE_IMAGES * 2 * check.metrics_n

    def hook(state: TrainingState, record: dict[str, Any]) -> None:
        nonlocal best_kid, spent, last_cost, checks
        used = state.counters.budget_seconds
        last_tick = state.counters.cur_nimg >= state.config.total_nimg
        if used >= START_SHARE * budget_seconds and last_cost < 0 and ctx.is_main:
            last_cost = estimated_cost()
        due = used >= START_SHARE * budget_seconds and (
            spent + last_cost <= config.best_share * used or (last_tick and checks > 0))
        if ctx.broadcast_text("due" if ctx.is_main and due else "") != "due":
            return
        started = time.perf_counter()
        score(state, record)
        last_cost = time.perf_counter() - started
        spent, checks = spent + last_cost, checks + 1
        if not ctx.is_main or "kid" not in record:
            return
        kid = float(record["kid"])
        if best_kid is None or kid < best_kid:
            best_kid = kid
            record["best"] = True
            _write_best(state, run_dir, {"kid": kid, "n": check.metrics_n, "nimg": state.counters.cur_nimg,
                                         "extractor": check.metrics_extractor})
            echo(f"best so far: KID {kid:.4f} at kimg {state.counters.cur_nimg / 1000:.1f} ({run_dir / BEST_FOLDER})")

    return hook


def _write_best(state: TrainingState, run_dir: Path, record: dict[str, Any]) -> None:
    """RUN/best/: the run's config.json, this checkpoint (the previous best's removed once it is written) and
    best.json (the score). Each file is written whole or not at all."""
    folder = run_dir / BEST_FOLDER
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{CONFIG_FILE}.tmp"
    shutil.copyfile(run_dir / CONFIG_FILE, tmp)
    os.replace(tmp, folder / CONFIG_FILE)
    tensors, meta = state.capture()
    ckpt.save_checkpoint(ckpt.checkpoint_path(folder, state.counters.cur_nimg), tensors, meta)
    ckpt.prune_checkpoints(folder, 1)
    tmp = folder / f".{BEST_RECORD}.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, folder / BEST_RECORD)


def _recorded_best(folder: Path, echo: Callable[[str], None]) -> float | None:
    """A resumed run's best KID so far; None when it has none, or (said in a line) when the record is unreadable:
    the best is then searched afresh and the record rewritten."""
    path = folder / BEST_RECORD
    try:
        kid = read_json(path)["kid"]  # a FIFO there must not block the resumed run
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        echo(f"{path} is unreadable ({error}); the best snapshot is chosen afresh from here on")
        return None
    except (KeyError, TypeError):
        echo(f"{path} records no KID; the best snapshot is chosen afresh from here on")
        return None
    return float(kid) if isinstance(kid, int | float) and not isinstance(kid, bool) and kid == kid else None
