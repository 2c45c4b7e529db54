"""How many passes a step takes over a device's share of the batch: from `--batch-gpu N`, or, with `auto`, the
largest number of images per pass that fits in the device's memory.

Two small trial passes (G forward, D on fakes and reals, backward through both, as in the G step, plus a
gradient penalty's double backward when the run has one, and D's reconstruction of the reals when its scheme
has one) give the memory of a pass as fixed + per_image * batch. On a GPU that is the allocator's peak, and the
chosen size is then tried for real, shrinking on out-of-memory; on the CPU, where running out of memory kills
the process instead of raising, it is the bytes autograd saves for backward, against half the available RAM.
Trials run in eval mode inside a forked RNG, so they move no BatchNorm statistics, spectral-norm vectors, random
streams or weights: the run's trajectory is the same as with the size given by hand.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ganforge.config import TrainConfig
from ganforge.data.device_batches import DeviceBatches
from ganforge.data.store import available_ram_bytes
from ganforge.errors import ConfigError
from ganforge.models.growing import Phase, Schedule
from ganforge.training.precision import Precision
from ganforge.training.runlog import RunLog
from ganforge.training.step_parts import Trainee
from ganforge.training.sync_batchnorm import count_batchnorm

TRIAL_SIZES = (2, 8)
GPU_BUDGET_FRACTION = 0.8  # of the free memory: the rest absorbs fragmentation and cuDNN workspaces
CPU_BUDGET_FRACTION = 0.5  # of the available RAM: activations are not all there is (the store, the OS cache)


@dataclass(frozen=True)
class MemoryFit:
    fixed_bytes: float
    bytes_per_image: float
    budget_bytes: float

    def largest_batch(self, limit: int) -> int:
        """The most images per pass (at least 1, at most `limit`) whose estimated footprint fits the budget."""
        if self.bytes_per_image <= 0:
            return limit
        return max(1, min(limit, int((self.budget_bytes - self.fixed_bytes) // self.bytes_per_image)))

    def describe(self, batch: int) -> str:
        return (f"{self.bytes_per_image / 2**20:.2f} MiB per image + {self.fixed_bytes / 2**20:.0f} MiB, "
                f"budget {self.budget_bytes / 2**30:.1f} GiB -> {batch} per pass")


def rounds_for(per_device_batch: int, batch_gpu: int, smallest_pass: int = 1) -> int:
    """Passes to run `per_device_batch` images at most `batch_gpu` at a time (0: all at once), preferring a
    count that splits them evenly: one input shape for cuDNN and torch.compile to tune, and the same BatchNorm
    and minibatch-stddev group sizes in every pass. No pass gets fewer than `smallest_pass` images (BatchNorm
    needs 2), even if one then holds a few more than `batch_gpu`."""
    if batch_gpu <= 0 or batch_gpu >= per_device_batch:
        return 1
    most = max(1, per_device_batch // smallest_pass)
    fewest = min(math.ceil(per_device_batch / batch_gpu), most)
    even = (r for r in range(fewest, min(2 * fewest, most + 1)) if per_device_batch % r == 0)
    return next(even, fewest)


TrialPass = Callable[[int], None]  # runs one forward/backward pass over this many images


def trial_pass(generator: nn.Module, discriminator: nn.Module, encoder: nn.Module | None,
               make_reals: Callable[[int], torch.Tensor], z_dim: int, num_classes: int, precision: Precision,
               gradient_penalty: bool = False, reconstruct_reals: bool = False) -> TrialPass:
    """A pass shaped like the G step (G's graph and D's on fakes and reals; for an autoencoder, E's, D's on the
    codes and the decoder's), plus the double backward of a gradient penalty (R1, WGAN-GP) when the run has one
    and D's decoders when it reconstructs the reals (FastGAN), for measuring memory."""

    def run(batch: int) -> None:
        device = precision.device
        reals = make_reals(batch).requires_grad_(gradient_penalty)
        with precision.autocast():
            if encoder is not None:
                codes = encoder(reals)
                score = discriminator(codes).float().sum() + generator(codes).float().sum()
            else:
                latents = torch.randn(batch, z_dim, device=device)
                labels = torch.randint(num_classes, (batch,), device=device) if num_classes else None
                fakes = generator(latents, labels)
                if reconstruct_reals:
                    real_logits, reconstruction = discriminator(reals, labels, with_reconstruction=True)
                    real_score = real_logits.float().sum()
                    score = discriminator(fakes, labels).float().sum() + real_score + reconstruction.float()
                else:
                    real_score = discriminator(reals, labels).float().sum()
                    score = discriminator(fakes, labels).float().sum() + real_score
                if gradient_penalty:
                    (grad,) = torch.autograd.grad(real_score, reals, create_graph=True)
                    score = score + grad.float().square().sum()
        score.backward()
        # Every trial allocates its own gradients, so each measurement counts them alike (in the fixed part).
        for network in (generator, discriminator, encoder):
            if network is not None:
                network.zero_grad(set_to_none=True)

    return run


def fit_batch(run: TrialPass, networks: tuple[nn.Module, ...], device: torch.device, limit: int,
              smallest: int = 1) -> tuple[int, str]:
    """(images per pass, how it was chosen) for a device's share of `limit` images, never below `smallest`
    (BatchNorm needs 2); 0 when not even that fits, which the caller reports once all ranks have agreed."""
    if limit <= TRIAL_SIZES[0]:
        return limit, f"{limit} per pass (the whole share)"
    with _quiet_trials(networks, device):
        try:
            fit = _measure(run, (TRIAL_SIZES[0], min(TRIAL_SIZES[1], limit)), device)
            batch = max(smallest, fit.largest_batch(limit))
            if device.type == "cuda":
                batch = _largest_that_runs(run, batch, smallest)
        except torch.OutOfMemoryError:
            return 0, f"out of memory already at {TRIAL_SIZES[0]} images per pass"
    return batch, fit.describe(batch)


def agree_on_smallest(batch: int, device: torch.device) -> int:
    """Every rank must run the same number of passes (DDP syncs on the last): take the smallest fit."""
    if not (dist.is_available() and dist.is_initialized()):
        return batch
    value = torch.tensor([batch], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return int(value.item())


def _measure(run: TrialPass, sizes: tuple[int, int], device: torch.device) -> MemoryFit:
    if device.type == "cuda":
        torch.cuda.empty_cache()  # blocks cached for an earlier resolution count as free for this one
    small, large = (_pass_bytes(run, size, device) for size in sizes)
    per_image = max(0.0, (large - small) / max(1, sizes[1] - sizes[0]))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = GPU_BUDGET_FRACTION * free
    else:  # the processes of one machine share its RAM
        budget = CPU_BUDGET_FRACTION * available_ram_bytes() / int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return MemoryFit(fixed_bytes=max(0.0, small - per_image * sizes[0]), bytes_per_image=per_image,
                     budget_bytes=budget)


def _pass_bytes(run: TrialPass, batch: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run(batch)
        torch.cuda.synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - before)
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run(batch)
    return float(sum(saved.values()))


def _largest_that_runs(run: TrialPass, batch: int, smallest: int) -> int:
    """The first size from `batch` down (by quarters) whose pass runs on the GPU; 0 if not even `smallest`."""
    while True:
        try:
            run(batch)
            return batch
        except torch.OutOfMemoryError:
            if batch <= smallest:
                return 0
            batch = max(smallest, batch * 3 // 4)
        finally:
            torch.cuda.empty_cache()


@contextlib.contextmanager
def _quiet_trials(networks: tuple[nn.Module, ...], device: torch.device) -> Iterator[None]:
    """Trials leave no trace: eval mode (no statistics moved, no collectives in SyncBatchNorm), a forked RNG,
    and no gradients left behind."""
    modes = [net.training for net in networks]
    for net in networks:
        net.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            yield
    finally:
        for net, mode in zip(networks, modes, strict=True):
            net.train(mode)
            for parameter in net.parameters():
                parameter.grad = None


def passes_per_step(config: TrainConfig, nets: Trainee, precision: Precision, reconstruct_reals: bool,
                    gradient_penalty: bool, schedule: Schedule, phase: Phase, data: DeviceBatches, share: int,
                    cur_nimg: int, echo: Callable[[str], None], log: RunLog | None) -> int:
    """How many passes a step takes over this rank's `share` of the batch: from --batch-gpu N, or measured (with
    a gradient penalty's double backward when the objective has one, and D's decoders when it rebuilds reals)."""
    networks = tuple(net for net in (nets.generator, nets.discriminator, nets.encoder) if net is not None)
    smallest = 2 if any(count_batchnorm(net) for net in networks) else 1  # batch statistics need two images
    if config.batch_gpu != "auto":
        if 0 < int(config.batch_gpu) < smallest:
            raise ConfigError(f"--batch-gpu {config.batch_gpu}: {config.model.name} has BatchNorm layers, which "
                              f"need at least {smallest} images per pass; use --batch-gpu {smallest} or more")
        return rounds_for(share, int(config.batch_gpu), smallest)
    count = len(data.store)

    def make_reals(batch: int) -> torch.Tensor:
        images = schedule.prepare_reals(data.images(torch.arange(min(batch, count))), phase)
        return images.repeat(-(-batch // images.shape[0]), 1, 1, 1)[:batch]

    trial = trial_pass(nets.generator, nets.discriminator, nets.encoder, make_reals, config.model.z_dim,
                       config.model.num_classes if config.model.conditional else 0, precision,
                       gradient_penalty=gradient_penalty, reconstruct_reals=reconstruct_reals)
    fitted, how = fit_batch(trial, networks, precision.device, share, smallest)
    per_pass = agree_on_smallest(fitted, precision.device)
    if per_pass == 0:  # every rank raises together, after the agreement
        raise ConfigError(f"--batch-gpu auto: {smallest} image(s) per pass at {phase.resolution} px do not fit on "
                          f"{precision.device} ({how}); use --precision bf16, smaller --g-width/--d-width "
                          "(or --fmap-max), or a device with more memory")
    rounds = rounds_for(share, per_pass, smallest)
    echo(f"--batch-gpu auto at {phase.resolution} px: {how}; {rounds} pass{'es' if rounds > 1 else ''} of "
         f"{share // rounds}{'+' if share % rounds else ''} images per step on each device")
    if log is not None:
        log.append({"event": "batch-gpu", "nimg": cur_nimg, "resolution": phase.resolution,
                    "share": share, "per_pass": per_pass, "rounds": rounds, "fit": how})
    return rounds
