"""The interface the training loop sees, and the identity augmentation ("none")."""

from __future__ import annotations

from typing import Protocol

import torch

from ganforge.errors import CheckpointError


class Augment(Protocol):
    """Applied to both real and fake images right before D; its state rides in the training checkpoint."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...  # differentiable

    def observe_real_logits(self, logits: torch.Tensor) -> None: ...  # called once per D step; no host sync

    @property
    def probability(self) -> float: ...  # logged each tick (1.0 for DiffAugment, 0.0 for none)

    def state_dict(self) -> dict[str, float | int]: ...  # JSON-able: p and counters (restored exactly on resume)

    def load_state_dict(self, state: dict[str, float | int]) -> None: ...


def check_state_keys(state: dict[str, float | int], expected: set[str], name: str) -> None:
    """A checkpoint's augment state must hold exactly the keys this augmentation saves."""
    if set(state) != expected:
        raise CheckpointError(
            f"the checkpoint's augmentation state has keys {sorted(state)} but `--augment {name}` expects "
            f"{sorted(expected)}: resume with the --augment the run was started with"
        )


class NoAugment:
    """The identity: D sees the images as they are."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def observe_real_logits(self, logits: torch.Tensor) -> None:
        """Nothing adapts."""

    @property
    def probability(self) -> float:
        return 0.0

    def state_dict(self) -> dict[str, float | int]:
        return {}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        check_state_keys(state, set(), "none")
