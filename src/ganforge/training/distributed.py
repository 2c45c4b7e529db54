"""Multi-process training on PyTorch's own engine: torchrun starts the processes, DDP averages the gradients.

Every rank draws the same global batch of indices and latents (the sampler and latent stream are seeded the
same everywhere) and keeps its own slice, so the global batch and the data order do not depend on the world
size: a run resumes on a different number of processes, and two processes compute what one would, up to
floating-point summation order (and BatchNorm statistics, which stay per rank unless --sync-bn). The draws made
during training (augmentation, dropout, noise) come from each rank's own stream, reseeded at every tick end.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganforge.device import resolve_device
from ganforge.errors import ConfigError


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device_for(self, device_name: str) -> torch.device:
        """The device this rank trains on: `--device` as named, but each rank's own GPU under torchrun."""
        device = resolve_device(device_name)
        return torch.device("cuda", self.local_rank) if self.enabled and device.type == "cuda" else device

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch: every world_size-th item, starting at its rank."""
        return batch[self.rank :: self.world_size] if self.enabled else batch

    def wrap(self, module: nn.Module, device: torch.device, find_unused: bool) -> nn.Module:
        if not self.enabled or not any(p.requires_grad for p in module.parameters()):
            return module
        # broadcast_buffers=False: BatchNorm statistics stay per rank (rank 0's are checkpointed), and D may run
        # several times before one backward (reals, fakes, penalties) without a buffer broadcast each time.
        # PyTorch 2.13 marks the flag deprecated but says to keep it until `init_sync_buffers` exists.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
            return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                           broadcast_buffers=False, find_unused_parameters=find_unused)

    def any_rank(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true on every rank if it is true on any (one collective for all): a stop request must end
        all ranks at the same step."""
        if not self.enabled:
            return flags
        values = torch.tensor([1.0 if flag else 0.0 for flag in flags], device=self.collective_device())
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return tuple(bool(value) for value in values.tolist())

    def broadcast_text(self, text: str) -> str:
        """Rank 0's string on every rank (the new run folder's name)."""
        if not self.enabled:
            return text
        holder = [text]
        dist.broadcast_object_list(holder, src=0)
        return str(holder[0])

    def finish(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor)
        return tensor

    def seed_own_stream(self, seed: int, cur_nimg: int) -> None:
        """Give this rank a torch random stream of its own, from (seed, rank, images so far). Ranks share the seed
        (same initial weights, same data order) but must not share the draws made during training, or every
        rank would augment, drop out and add noise alike. Called at the start, at every tick end and wherever
        the ranks agree whether to stop (the loop's `_stop_or_deadline`): everywhere a checkpoint may be written,
        so a resumed run draws what an uninterrupted one does (rank 0's checkpoint holds its stream only)."""
        if self.enabled:
            torch.manual_seed(hash((seed, self.rank, cur_nimg)) & (2**63 - 1))

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank, e.g. before all ranks generate images
        that must come from one and the same network."""
        if not self.enabled:
            return
        device = self.collective_device()
        for buffer in module.buffers():
            value = buffer.to(device)
            dist.broadcast(value, src=0)
            buffer.copy_(value)

    def collective_device(self) -> torch.device:
        """Where host-side values go for a collective: NCCL reduces tensors on this rank's GPU, gloo CPU ones."""
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def all_gather_rows(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's tensor [N_rank, ...], in rank order, on every rank (on `tensor`'s device). The row counts
        may differ by rank: all_gather needs equal shapes, so each is padded to the largest and trimmed after."""
        if not self.enabled:
            return [tensor]
        device = self.collective_device()
        local = tensor.to(device)
        counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(self.world_size)]
        dist.all_gather(counts, torch.tensor([local.shape[0]], device=device))
        rows = [int(c.item()) for c in counts]
        padded = torch.zeros((max(rows), *local.shape[1:]), dtype=local.dtype, device=device)
        padded[: local.shape[0]] = local
        gathered = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(gathered, padded)
        return [g[:n].to(tensor.device) for g, n in zip(gathered, rows, strict=True)]


def init_distributed(device_name: str) -> Distributed:
    """Join the process group torchrun describes in the environment (gloo on CPU, NCCL on GPU), if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return Distributed(rank, world_size, local_rank)


def per_rank_batch(global_batch: int, ctx: Distributed) -> int:
    if global_batch % ctx.world_size:
        raise ConfigError(f"--batch {global_batch} does not split evenly over {ctx.world_size} processes; use a "
                          f"multiple of {ctx.world_size} (the global batch stays the same whatever the world size)")
    return global_batch // ctx.world_size
