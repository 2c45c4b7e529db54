"""`--sync-bn`: BatchNorm statistics over the global batch in multi-process runs, as one process would compute.

On GPUs this is PyTorch's own `nn.SyncBatchNorm`. PyTorch's refuses CPU tensors, so on the CPU (gloo) the same
statistics come from `GlobalBatchNorm`, built on PyTorch's differentiable (functional) all-reduce: autograd then
carries each rank's gradient through the shared mean and variance to every rank's inputs. Both keep the parameter
and buffer names of `nn.BatchNorm*d`, so checkpoints load into the plain networks `generate` and `export` build.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as collectives
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ganforge.training.distributed import Distributed
from ganforge.training.state import TrainingState


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are over every rank's batch (two all-reduces per call)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(input)
        x = input.float()
        dims = [0, *range(2, x.ndim)]
        shape = [1, -1] + [1] * (x.ndim - 2)
        local_count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float32, device=x.device)
        sums = _summed_over_ranks(torch.cat([x.sum(dims), local_count]))
        count = sums[-1]
        mean = sums[:-1] / count
        # The variance about the global mean, in a second round: stable where E[x^2] - E[x]^2 is not.
        var = _summed_over_ranks((x - mean.view(shape)).pow(2).sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                tracked = self.num_batches_tracked
                if tracked is not None:
                    tracked.add_(1)
                momentum = self.momentum
                if momentum is None:  # a cumulative average, as nn.BatchNorm's
                    momentum = 1.0 / (tracked.item() if tracked is not None else 1)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / (count - 1).clamp(min=1), momentum)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")


def _summed_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """All-reduce with autograd (backward all-reduces the gradient): PyTorch's functional collective, the
    replacement its deprecated torch.distributed.nn.functional.all_reduce names."""
    group = dist.group.WORLD
    assert group is not None  # only called once the process group is up
    return collectives.wait_tensor(collectives.all_reduce(tensor, "sum", group))


def synchronize_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` with every BatchNorm layer computing its statistics over all ranks (in place where possible)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _to_global(module)


def synchronize_run_batchnorm(state: TrainingState, ctx: Distributed, device: torch.device,
                              echo: Callable[[str], None]) -> None:
    """With --sync-bn under torchrun, switch the run's networks to global-batch statistics (before DDP wraps
    them)."""
    if not state.config.sync_bn:
        return
    layers = sum(count_batchnorm(net) for net in (state.generator, state.discriminator, state.encoder)
                 if net is not None)
    if not ctx.enabled or not layers:
        echo(f"--sync-bn: nothing to synchronise ({'no BatchNorm layers' if not layers else 'one process'})")
        return
    state.generator = synchronize_batchnorm(state.generator, device)
    state.discriminator = synchronize_batchnorm(state.discriminator, device)
    if state.encoder is not None:
        state.encoder = synchronize_batchnorm(state.encoder, device)
    echo(f"--sync-bn: {layers} BatchNorm layers normalise over the global batch of {ctx.world_size} processes")


def count_batchnorm(module: nn.Module) -> int:
    return sum(isinstance(m, _BatchNorm) for m in module.modules())


def _to_global(module: nn.Module) -> nn.Module:
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        # The same parameter and buffer objects, as PyTorch's conversion does: optimizers built before still
        # update them, and restoring a checkpoint afterwards still reaches them.
        replacement = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                      module.track_running_stats)
        replacement._parameters = module._parameters
        replacement._buffers = module._buffers
        replacement.train(module.training)
        return replacement
    for name, child in module.named_children():
        module.add_module(name, _to_global(child))
    return module
