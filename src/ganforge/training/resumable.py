"""Whether a checkpoint would resume: the checks `train --resume` makes, run on a fresh CPU state, for tools
that inspect a run without training it (`ganforge doctor`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ganforge.config import TrainConfig
from ganforge.data.store import Store
from ganforge.training.checkpoint_check import restore_checked
from ganforge.training.distributed import init_distributed
from ganforge.training.state import build_state


def check_resumable(config: TrainConfig, store: Store, path: Path, tensors: dict[str, torch.Tensor],
                    meta: dict[str, Any]) -> int:
    """The images the checkpoint read from `path` has trained on; CheckpointError in one line if a resume of
    `config` on `store` would refuse it."""
    state = build_state(config, store, torch.device("cpu"), init_distributed("cpu"))
    restore_checked(state, path, tensors, meta)
    return state.counters.cur_nimg
