"""Training batches on the device: a store's uint8 pixels served as float [-1, 1] tensors where the steps run.

Split from store.py so that the store file (format, reading, checks) and its device cache read on their own.
"""

from __future__ import annotations

import numpy as np
import torch

from ganforge.data.store import Store, to_float


class DeviceBatches:
    """Serves float batches in [-1, 1] on the training device.

    The whole uint8 store lives on the device when it fits (on a GPU: a quarter of its free memory, so batches
    are one gather with no host work); otherwise each batch is gathered on the host into pinned memory and
    copied asynchronously, overlapping the GPU's work on the previous step (the loop never waits for the GPU).
    """

    def __init__(self, store: Store, device: torch.device, resident_limit_bytes: int | None = None,
                 channels_last: bool = False, side: str = "a") -> None:
        self.store = store
        self.side = side  # "b": the targets of a two-sided store
        self.device = device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.labels = torch.from_numpy(store.labels).to(device)
        self.resident: torch.Tensor | None = None
        limit = _resident_limit(device) if resident_limit_bytes is None else resident_limit_bytes
        pixels = store.side(side)
        if pixels.nbytes <= limit and (store.in_memory or device.type != "cpu"):
            self.resident = _to_device_in_chunks(pixels, device)
        self.pin = device.type == "cuda"

    def labels_of(self, indices: torch.Tensor) -> torch.Tensor:
        return self.labels.index_select(0, indices.to(self.device))

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        if self.resident is not None:
            batch = self.resident.index_select(0, indices.to(self.device))
        else:
            host = self.store.uint8_batch(indices.numpy(), self.side)
            batch = (host.pin_memory() if self.pin else host).to(self.device, non_blocking=True)
        return to_float(batch).contiguous(memory_format=self.memory_format)


def _resident_limit(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 4
    return 1 << 62  # on the CPU "resident" is the RAM copy Store already decided on: no second copy


def _to_device_in_chunks(images: np.ndarray, device: torch.device, chunk_bytes: int = 256 << 20) -> torch.Tensor:
    """The store's pixels on `device`; a memory-mapped store is read in chunks, never whole into host RAM."""
    if device.type == "cpu":
        return torch.from_numpy(images)  # shares the in-RAM array
    out = torch.empty(images.shape, dtype=torch.uint8, device=device)
    rows = max(1, chunk_bytes // max(1, images[0].nbytes))
    for start in range(0, len(images), rows):
        out[start : start + rows].copy_(torch.from_numpy(np.ascontiguousarray(images[start : start + rows])))
    return out
