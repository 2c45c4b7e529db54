"""Mixed precision for the two networks: autocast for the forward passes, a gradient scaler per network for fp16.

bf16 has fp32's exponent range, so it needs no loss scaling; fp16 does, and G and D each get their own scaler
because their losses live on different scales (a step skipped for one must not skip the other). The scalers'
state is JSON, saved with every checkpoint so a resumed fp16 run continues with the same scale.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from ganforge.errors import ConfigError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, name: str, device: torch.device) -> None:
        if name not in DTYPES:
            raise ConfigError(f"--precision {name!r} is not one of {', '.join(DTYPES)}")
        self.name = name
        self.device = device
        self.scalers = {net: torch.amp.GradScaler(device.type, enabled=name == "fp16") for net in ("G", "D")}

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.name == "fp32":
            yield
            return
        with torch.autocast(self.device.type, dtype=DTYPES[self.name]):
            yield

    def backward(self, loss: torch.Tensor, net: str) -> None:
        """Accumulate `net`'s gradients of `loss`, scaled by its scaler when fp16 needs one (a no-op otherwise)."""
        self.scalers[net].scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, net: str) -> None:
        """One optimizer step on the accumulated gradients; fp16 skips it if any gradient overflowed."""
        scaler = self.scalers[net]
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {net: scaler.state_dict() for net, scaler in self.scalers.items() if scaler.is_enabled()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for net, scaler_state in state.items():
            if self.scalers[net].is_enabled():
                self.scalers[net].load_state_dict(scaler_state)
