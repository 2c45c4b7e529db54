"""Checkpoints as data, never code: tensors in one safetensors file, everything else as JSON in its header.

A checkpoint holds G, D, G-EMA, both optimizers' tensors, RNG states and the per-tick sums; the JSON metadata
holds the config, counters, optimizer hyperparameters, Python/NumPy RNG states and the data position. It is
written to a temp file, fsynced and renamed, so a kill at any moment leaves the previous checkpoint intact.
Loading reads tensors and JSON only: nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from ganforge.errors import CheckpointError, TrainingDiverged

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^ckpt-(\d{10})\.safetensors$")


def checkpoint_path(run_dir: Path, nimg: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"ckpt-{nimg:010d}.safetensors"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first (by images seen, which the name encodes)."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Atomic write; refuses (TrainingDiverged) if any floating-point tensor holds NaN or infinity."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise TrainingDiverged(f"refusing to write {path.name}: tensor {name} holds NaN or infinity; "
                                   "resume from the previous checkpoint with a lower learning rate.")
    blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                metadata={"ganforge": json.dumps(meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get("ganforge")
        tensors = load_file(str(path))
    except (OSError, ValueError, RuntimeError) as exc:  # safetensors raises its own SafetensorError(Exception)
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc}); delete it to resume from the one "
                              "before.") from exc
    except Exception as exc:
        raise CheckpointError(f"{path} is damaged ({exc}); delete it to resume from the one before.") from exc
    if raw_meta is None:
        raise CheckpointError(f"{path} has no ganforge metadata; it was not written by `ganforge train`.")
    return tensors, json.loads(raw_meta)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    state = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"the checkpoint's {prefix} does not fit the configured model ({exc}); resume with "
                              "the architecture the run was started with.") from exc


def optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    """Split an optimizer's state_dict into tensors (per-parameter state) and JSON (hyperparameters)."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def load_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                   meta: Any) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    for index, scalars in meta["scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
