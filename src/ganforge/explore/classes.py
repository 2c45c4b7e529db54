"""The class an explore tool draws in: a class-conditional run needs `--class`, an unconditional one refuses it.

The tools keep the class fixed and move only z, so a walk or an arithmetic result shows how the latent changes
style within one class (Mirza & Osindero 2014 condition G on y; z carries everything y does not).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganforge.config import TrainConfig
from ganforge.errors import ConfigError
from ganforge.runs import class_names, resolve_class

SHOWN_CLASSES = 20  # names listed in an error; the rest are "..."


def class_label(source: Path, config: TrainConfig, class_name: str | None) -> int | None:
    """--class NAME -> its index for a conditional run; None for an unconditional run without --class."""
    if class_name is not None:
        return resolve_class(source, config, class_name)  # refuses --class for an unconditional run
    if config.model.conditional:
        names = class_names(source, config)
        shown = ", ".join(names[:SHOWN_CLASSES]) + (", ..." if len(names) > SHOWN_CLASSES else "")
        raise ConfigError(f"{source} is class-conditional; give --class NAME to pick the class to draw, one of: "
                          f"{shown}")
    return None


def class_labels(label: int | None, count: int, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """labels [count] all equal to `label` (LongTensor), or None for an unconditional generator."""
    return None if label is None else torch.full((count,), label, dtype=torch.long, device=device)
