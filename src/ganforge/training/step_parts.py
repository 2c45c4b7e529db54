"""What every scheme's steps share: what they update, what they optimise, and how a step runs in passes.

A step takes its arguments explicitly: the `Trainee` (networks, their DDP wrappers, their optimizers), its
scheme's objective (training/schemes/), the `Precision`, the `TickStats` it adds to, its `StepBatch` and the
counters it needs. It never sees the run's whole state (config, sampler, random streams): those stay with the loop.
Every scheme's D update is `update_discriminator` and every G update is `update_generator` around the scheme's
own per-pass loss.

Gradient accumulation: a step may run its device's share of the batch as several smaller passes and still take
one optimizer step. Every loss and penalty is a mean over samples, so weighting each pass by its share of the
samples and summing the gradients gives the full batch's gradient (up to summation order). What differs is what
is computed per pass by design: BatchNorm statistics and minibatch-stddev groups see the pass, and random draws
(augmentation, dropout, label flips) are made per pass. Under DDP only the last pass all-reduces the gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganforge.training.objective.adversary import Adversary
from ganforge.training.objective.losses import pairs_reals
from ganforge.training.precision import Precision
from ganforge.training.stats import TickStats


@dataclass(frozen=True)
class Trainee:
    """What the steps update: the networks, the modules that run them in training, and their optimizers."""

    generator: nn.Module
    discriminator: nn.Module
    encoder: nn.Module | None  # autoencoding schemes only; opt_g trains it with the generator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    wrapped: dict[str, nn.Module] = field(default_factory=dict)  # DDP wrappers ("G", "D", "E") when distributed

    def trained(self, role: str) -> nn.Module:
        """The module to run forward when training `role`: its DDP wrapper in multi-process runs (so backward
        averages its gradients over ranks), the network itself otherwise. Checkpoints always hold the latter."""
        plain = {"G": self.generator, "D": self.discriminator, "E": self.encoder}[role]
        assert plain is not None
        return self.wrapped.get(role, plain)


@dataclass(frozen=True)
class StepBatch:
    """One step's inputs on this device: its share of the global batch, and how many passes to run it in."""

    reals: torch.Tensor  # what D learns to call real: the images, or a two-sided store's targets (B side)
    labels: torch.Tensor | None
    latents: torch.Tensor
    rounds: int = 1
    inputs: torch.Tensor | None = None  # image-to-image schemes: the images G translates (A side)


class DiscriminatorStep(Protocol):
    """Updates D once; returns what the scheme's G step needs (its "carry")."""

    def __call__(self, nets: Trainee, objective: Any, precision: Precision, stats: TickStats,
                 batch: StepBatch, *, cur_nimg: int, d_step: int, keep_fakes: bool) -> Any: ...


class GeneratorStep(Protocol):
    """Updates G (and the encoder, if any) once, from the last D step's carry."""

    def __call__(self, nets: Trainee, objective: Any, precision: Precision, stats: TickStats, carry: Any, *,
                 cur_nimg: int) -> None: ...


# One pass of a G step: (is_last, weight, this pass's parts of the carry's tensors) -> (the weighted loss to
# backpropagate, {stat name: unweighted value to log}).
PassLoss = Callable[[bool, float, tuple[torch.Tensor | None, ...]], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def update_generator(nets: Trainee, precision: Precision, stats: TickStats, rounds: int,
                     tensors: tuple[torch.Tensor | None, ...], pass_loss: PassLoss, *,
                     roles: tuple[str, ...] = ("G",), after_step: Callable[[], None] | None = None) -> None:
    """Every scheme's G update: D frozen, one pass per part of `tensors` (gradient accumulation), each pass's
    loss from the scheme's `pass_loss`, one optimizer step for G (and the other `roles` it trains, e.g. "E"),
    each logged value's mean over the passes added to the tick's stats."""
    # D's weights need no gradients here; skipping them saves ~10 % of the G step (benchmarked on CPU).
    nets.discriminator.requires_grad_(False)
    nets.opt_g.zero_grad(set_to_none=True)
    trained = [nets.trained(role) for role in roles]
    sums: dict[str, torch.Tensor] = {}
    for last, weight, parts in passes(rounds, *tensors):
        with gradient_sync(last, *trained):
            with precision.autocast():
                total, logged = pass_loss(last, weight, parts)
            precision.backward(total, "G")
        for name, value in logged.items():
            sums[name] = accumulate(sums.get(name), value, weight)
    precision.step(nets.opt_g, "G")
    if after_step is not None:
        after_step()
    for group in nets.opt_d.param_groups:  # D's trained weights only: FreezeD's blocks stay frozen
        for parameter in group["params"]:
            parameter.requires_grad_(True)
    for name, value in sums.items():
        stats.add(name, value)


def update_discriminator(nets: Trainee, adversary: Adversary, precision: Precision, stats: TickStats,
                         labels: torch.Tensor | None, real_in: torch.Tensor, fake_in: torch.Tensor, rounds: int, *,
                         d_step: int, reconstruct_reals: bool = False) -> None:
    """D's adversarial loss plus its regularizers' penalties (and, with `reconstruct_reals`, its reconstruction
    loss on the reals), one optimizer step, its constraints, the stats. Shared by every scheme: what D sees as
    "real" and "fake" (images, or codes for the AAE) is the caller's. `d_step` counts the D updates before this
    one (lazy regularizers key on it)."""
    D = nets.trained("D")
    nets.opt_d.zero_grad(set_to_none=True)
    d_loss: torch.Tensor | None = None
    recon_loss: torch.Tensor | None = None
    real_logits_seen, fake_logits_seen = [], []
    for last, weight, (reals, fakes, part_labels) in passes(rounds, real_in, fake_in, labels):
        assert reals is not None and fakes is not None

        def critic(x: torch.Tensor, y: torch.Tensor | None = part_labels) -> torch.Tensor:
            return D(x, y)

        with gradient_sync(last, D):
            with precision.autocast():
                if reconstruct_reals:  # through the wrapper, so the decoders' gradients sync too
                    real_logits, reconstruction = D(reals, part_labels, with_reconstruction=True)
                else:
                    real_logits = critic(reals)
                fake_logits = critic(fakes)
                loss = adversary.loss.discriminator_loss(real_logits, fake_logits)
                total = loss + reconstruction if reconstruct_reals else loss
                for regularizer in adversary.regularizers:
                    with uncompiled(nets.discriminator):
                        term = regularizer.penalty(critic, reals, fakes, real_logits, d_step)
                    if term is not None:
                        total = total + term
            precision.backward(total * weight, "D")
        d_loss = accumulate(d_loss, loss, weight)
        if reconstruct_reals:
            recon_loss = accumulate(recon_loss, reconstruction, weight)
        real_logits_seen.append(real_logits.detach())
        fake_logits_seen.append(fake_logits.detach())
    precision.step(nets.opt_d, "D")
    for regularizer in adversary.regularizers:
        regularizer.after_step(D)
    all_real, all_fake = (torch.cat(seen) if rounds > 1 else seen[0] for seen in (real_logits_seen, fake_logits_seen))
    # ADA's overfitting heuristic E[sign(D(x))] and the logged D(x), D(G(z)) and accuracies need logits with a
    # meaning of their own; a relativistic loss ignores any shift D applies to both sides, so there D's margin of
    # each real over the fake beside it stands in.
    if pairs_reals(adversary.loss):
        all_real, all_fake = all_real - all_fake, all_fake - all_real
    adversary.augment.observe_real_logits(all_real)
    assert d_loss is not None
    stats.add_discriminator(d_loss, all_real, all_fake)
    if recon_loss is not None:
        stats.add("loss_recon", recon_loss)


def accumulate(total: torch.Tensor | None, value: torch.Tensor, weight: float) -> torch.Tensor:
    """`total` plus one pass's `value` weighted by its share of the batch (no kernel for a whole-batch pass)."""
    value = value.detach().float()
    if weight != 1.0:
        value = value * weight
    return value if total is None else total + value


def split(tensor: torch.Tensor, rounds: int) -> tuple[torch.Tensor, ...]:
    """Near-equal consecutive parts (sizes differ by at most one)."""
    return tensor.tensor_split(rounds) if rounds > 1 else (tensor,)


def split_optional(tensor: torch.Tensor | None, rounds: int) -> tuple[torch.Tensor | None, ...]:
    return (None,) * rounds if tensor is None else split(tensor, rounds)


def passes(rounds: int, *tensors: torch.Tensor | None) -> Iterator[tuple[bool, float, tuple[torch.Tensor | None, ...]]]:
    """(is_last, weight, parts) per pass: the parts of each tensor (None stays None), weighted by their share."""
    if rounds == 1:  # the usual case, without splitting anything
        yield True, 1.0, tensors
        return
    parts = [split_optional(t, rounds) for t in tensors]
    total = next(t.shape[0] for t in tensors if t is not None)
    for index, chunk in enumerate(zip(*parts, strict=True)):
        size = next(t.shape[0] for t in chunk if t is not None)
        yield index == rounds - 1, size / total, chunk


@contextlib.contextmanager
def gradient_sync(last: bool, *modules: nn.Module) -> Iterator[None]:
    """Inside, DDP modules skip their gradient all-reduce (`no_sync`) unless this is the last pass of the step."""
    if last:
        yield
        return
    with contextlib.ExitStack() as stack:
        if not last:
            for module in modules:
                if isinstance(module, DistributedDataParallel):
                    stack.enter_context(module.no_sync())
        yield


@contextlib.contextmanager
def uncompiled(module: nn.Module) -> Iterator[None]:
    """Inside, `module` runs eagerly even when `--compile` compiled it in place: torch.compile's graphs cannot
    be differentiated twice, which gradient penalties (R1, WGAN-GP, path length) need. A DDP wrapper reaches
    the module through its `__call__`, so the wrapper runs it eagerly too."""
    compiled = module._compiled_call_impl
    module._compiled_call_impl = None
    try:
        yield
    finally:
        module._compiled_call_impl = compiled
