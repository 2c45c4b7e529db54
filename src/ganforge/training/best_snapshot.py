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
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ganforge.config import TrainConfig
from ganforge.data.store import Store
from ganforge.errors import ConfigError
from ganforge.metrics import load_extractor
from ganforge.regular_files import read_json
from ganforge.runs import checkpoint as ckpt
from ganforge.runs.folder import BEST_FOLDER, BEST_RECORD, CONFIG_FILE
from ganforge.training.distributed import Distributed
from ganforge.training.metrics_hook import training_metrics_hook
from ganforge.training.state import TrainingState
from ganforge.whole_files import written_whole

CHECK_N = 500  # generated images per check (and real images in the cached statistics)
ESTIMATE_IMAGES = 8  # images the extractor is timed on before the first check
START_SHARE = 0.3  # of the budget spent before the first check


def best_snapshot_hook(config: TrainConfig, store: Store, ctx: Distributed, run_dir: Path,
                       echo: Callable[[str], None]) -> Callable[[TrainingState, dict[str, Any]], None]:
    """The tick hook that checks KID when due and writes RUN/best/ when G beats its best so far. Its checks draw
    nothing from the run's random streams (a G with noise inputs draws from torch's), so the run trains as it
    would without them, and a resumed run as the unbroken one."""
    if len(store) < 2:
        raise ConfigError(f"KID compares sets of at least 2 images and {store.path} holds {len(store)}")
    check = dataclasses.replace(config, metrics="kid", metrics_n=min(CHECK_N, len(store)), metrics_every=1)
    extractor = load_extractor(check.metrics_extractor, device=ctx.device_for(config.device))
    score = training_metrics_hook(check, store, ctx, extractor)
    budget_seconds = config.minutes * 60
    best_kid = _recorded_best(run_dir / BEST_FOLDER, echo, {"n": check.metrics_n, "extractor": check.metrics_extractor})
    # Before the first check, its cost is estimated from the extractor's speed on a few images: the generated
    # ones and, not yet cached, as many real ones (a short budget on a slow extractor then makes no check at all).
    last_cost = -1.0

    def estimated_cost() -> float:
        sample = torch.randint(0, 256, (ESTIMATE_IMAGES, *store.manifest.output_shape), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(0))
        started = time.perf_counter()
        extractor.extract(sample)
        return (time.perf_counter() - started) / ESTIMATE_IMAGES * 2 * check.metrics_n

    def hook(state: TrainingState, record: dict[str, Any]) -> None:
        nonlocal best_kid, last_cost
        counters = state.counters  # the checks' time and count are the run's, over all its sessions
        used = counters.budget_seconds
        last_tick = counters.cur_nimg >= state.config.total_nimg
        if used >= START_SHARE * budget_seconds and last_cost < 0 and ctx.is_main:
            last_cost = estimated_cost()
        due = used >= START_SHARE * budget_seconds and (
            counters.best_check_seconds + last_cost <= config.best_share * used or (last_tick and counters.best_checks))
        if ctx.broadcast_text("due" if ctx.is_main and due else "") != "due":
            return
        started = time.perf_counter()
        score(state, record)
        last_cost = time.perf_counter() - started
        counters.best_check_seconds += last_cost
        counters.best_checks += 1
        if not ctx.is_main or "kid" not in record:
            return
        kid = float(record["kid"])
        if best_kid is None or kid < best_kid:
            try:
                _write_best(state, run_dir, {"kid": kid, "n": check.metrics_n, "nimg": state.counters.cur_nimg,
                                             "extractor": check.metrics_extractor})
            except OSError as error:  # the run goes on: its last weights are what a run without checks keeps
                echo(f"could not keep the best snapshot in {run_dir / BEST_FOLDER} ({error}); training goes on, and "
                     "the last checkpoint is kept as always")
                return
            best_kid = kid
            record["best"] = True
            echo(f"best so far: KID {kid:.4f} at kimg {state.counters.cur_nimg / 1000:.1f} ({run_dir / BEST_FOLDER})")

    return hook


def _write_best(state: TrainingState, run_dir: Path, record: dict[str, Any]) -> None:
    """RUN/best/: the run's config.json, this checkpoint (any other removed once it is written: a run resumed
    from an earlier checkpoint may find a later one there) and best.json (the score). Each file is written whole
    or not at all; OSError when RUN/best or what it holds is not ganforge's to write (a link, a file)."""
    folder = run_dir / BEST_FOLDER
    for path in (folder, folder / ckpt.CHECKPOINT_DIR):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise OSError(f"{path} is {'a link' if path.is_symlink() else 'not a folder'}; move it away")
    (folder / ckpt.CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    with written_whole(folder / CONFIG_FILE) as temporary:
        shutil.copyfile(run_dir / CONFIG_FILE, temporary)
    tensors, meta = state.capture()
    kept = ckpt.checkpoint_path(folder, state.counters.cur_nimg)
    ckpt.save_checkpoint(kept, tensors, meta)
    for other in ckpt.list_checkpoints(folder):
        if other != kept:
            other.unlink(missing_ok=True)
    with written_whole(folder / BEST_RECORD) as temporary:
        temporary.write_text(json.dumps(record))


def _recorded_best(folder: Path, echo: Callable[[str], None], protocol: dict[str, Any]) -> float | None:
    """A resumed run's best KID so far; None when it has none, or (said in a line) when the record is unreadable
    or was scored another way than `protocol` (n and extractor) scores now: the best is then searched afresh and
    the record rewritten."""
    path = folder / BEST_RECORD
    try:
        record = read_json(path)  # a FIFO there must not block the resumed run
        kid = record["kid"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        echo(f"{path} is unreadable ({error}); the best snapshot is chosen afresh from here on")
        return None
    except (KeyError, TypeError):
        echo(f"{path} records no KID; the best snapshot is chosen afresh from here on")
        return None
    scored = {key: record.get(key) for key in protocol}
    if scored != protocol:
        echo(f"{path} was scored with {scored}, this run scores with {protocol}: KIDs of the two do not compare, so "
             "the best snapshot is chosen afresh from here on")
        return None
    if not isinstance(kid, int | float) or isinstance(kid, bool) or not math.isfinite(kid):
        echo(f"{path} records KID {kid!r}, not a finite number; the best snapshot is chosen afresh from here on")
        return None
    nimg = record.get("nimg")
    if not isinstance(nimg, int) or isinstance(nimg, bool) or nimg < 0 or not ckpt.checkpoint_path(folder,
                                                                                                   nimg).is_file():
        # A score without its weights (removed by hand, or a kill between the two writes) would keep every later
        # and worse-scoring snapshot out while RUN/best held nothing to load.
        echo(f"{path} scores a checkpoint (at nimg {nimg!r}) that is not in {folder / ckpt.CHECKPOINT_DIR}; the best "
             "snapshot is chosen afresh from here on")
        return None
    return float(kid)
