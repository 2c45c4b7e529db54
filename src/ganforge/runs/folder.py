"""Numbered run folders (`runs/00001-dcgan-mnist`) and the resolved config they record.

A run folder holds config.json, log.jsonl, samples/, loss.png and checkpoints/: everything `--resume`,
`generate` and `evaluate` need, with no other state anywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ganforge.config import TrainConfig
from ganforge.data.embedded import open_training_store
from ganforge.data.store import Store
from ganforge.errors import CheckpointError, ConfigError, DataError
from ganforge.regular_files import read_json
from ganforge.version import __version__
from ganforge.whole_files import written_whole

CONFIG_FILE = "config.json"
BEST_FOLDER, BEST_RECORD = "best", "best.json"  # a budget run's best snapshot: RUN/best/, a run folder with its score
_NUMBERED = re.compile(r"^(\d{5})-")


def create_run_dir(parent: Path, model_name: str, data_name: str) -> Path:
    """The next free number under `parent`; safe against two runs starting at once."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{model_name}-{data_name}")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        while True:
            taken = [int(m.group(1)) for p in parent.iterdir() if (m := _NUMBERED.match(p.name))]
            run_dir = parent / f"{max(taken, default=0) + 1:05d}-{slug}"
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:
                continue
    except OSError as exc:
        raise ConfigError(f"--out {parent}: cannot make a run folder there ({exc.strerror}); choose a folder you "
                          "can write to") from exc


def remove_if_unstarted(run_dir: Path) -> None:
    """Delete a new run folder whose start failed before its first tick or checkpoint: it holds nothing a user
    could want, and an empty numbered folder would only mislead. A folder with either is always kept."""
    if not run_dir.is_dir() or (run_dir / "log.jsonl").exists() or any(run_dir.glob("checkpoints/*")):
        return
    shutil.rmtree(run_dir, ignore_errors=True)


def write_run_config(run_dir: Path, config: TrainConfig, dataset: dict[str, Any]) -> None:
    record = {"ganforge_version": __version__, "train": config.to_dict(), "dataset": dataset}
    with written_whole(run_dir / CONFIG_FILE) as temporary:
        temporary.write_text(json.dumps(record, indent=2))


def read_run_config(run_dir: Path) -> tuple[TrainConfig, dict[str, Any]]:
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder; pass a folder made by `ganforge train` "
                              "(e.g. runs/00001-dcgan-mnist).")
    if not os.path.lexists(path):
        raise CheckpointError(f"{run_dir} has no {CONFIG_FILE}; it is not a ganforge run folder: pass one made by "
                              "`ganforge train` (e.g. runs/00001-dcgan-mnist) or a folder `ganforge export` wrote.")
    try:
        record = read_json(path)
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc}); restore it from the checkpoint metadata.") from exc
    except ValueError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); restore it from the checkpoint metadata.") from exc
    if isinstance(record, dict) and "ganforge_export" in record:
        # An export carries its run's "train" settings too, but no training state: a resume would start a fresh
        # run inside it, an export of it would nest one export in another.
        raise CheckpointError(f"{run_dir} is an exported folder (`ganforge export` wrote it), not a run folder: it "
                              "holds no training state; pass the run folder it was exported from (e.g. "
                              "runs/00001-dcgan-mnist)")
    if not isinstance(record, dict) or not isinstance(record.get("train"), dict):
        raise CheckpointError(f"{path} is not a run config (a JSON object with a \"train\" object); restore it from "
                              "a backup or from the `config` in a checkpoint's metadata.")
    dataset = record.get("dataset", {})
    dataset = dataset if isinstance(dataset, dict) else {}
    if "shape" in dataset and not is_image_shape(dataset["shape"]):  # 0.1's runs recorded one too
        raise CheckpointError(f"{path}: dataset.shape is {str(dataset['shape'])[:40]}, not the [channels, height, "
                              "width] of the run's images (1 or 3 channels, sides of 1 px or more); the file was "
                              "edited: restore it from a backup")
    try:
        return TrainConfig.from_dict(record["train"]), dataset
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def is_image_shape(shape: Any) -> bool:
    """Whether a config.json's recorded image shape is one ganforge writes: [1 or 3, height, width], sides >= 1."""
    return (isinstance(shape, list) and len(shape) == 3 and shape[0] in (1, 3)
            and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 1 << 16 for s in shape))


def read_record(folder: Path) -> dict[str, Any]:
    """The JSON record (config.json) of a run folder or an exported folder: config, dataset, fingerprint."""
    try:
        record = read_json(Path(folder) / CONFIG_FILE)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder} has no readable {CONFIG_FILE} ({exc}); pass a run folder or an exported "
                              "folder.") from exc
    if not isinstance(record, dict):
        raise CheckpointError(f"{Path(folder) / CONFIG_FILE} is not a JSON object; pass a run or exported folder.")
    return record


def open_recorded_store(folder: Path, data: str) -> Store:
    """The store a run or an export records as its train.data (the embedded sample when that is empty). One that
    cannot be opened is a DataError naming the setting and the record it came from: the user never typed that
    path, the folder did, and it may have been moved or edited (`../../../../etc/shadow` is a path like any other)."""
    try:
        return open_training_store(data)
    except DataError as exc:
        raise DataError(f"train.data in {Path(folder) / CONFIG_FILE}: {exc}") from exc
