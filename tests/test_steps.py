"""The steps' arithmetic, on tiny networks: the self-supervised scheme (FastGAN) adds D's reconstruction loss to
D's objective and logs it, and its real pass split over several accumulation rounds updates D like one pass."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.augment import build_augment
from ganforge.config import LossConfig, TrainConfig
from ganforge.models import MODELS
from ganforge.training.objective.adversary import build_adversary
from ganforge.training.precision import Precision
from ganforge.training.schemes import SCHEMES
from ganforge.training.stats import TickStats
from ganforge.training.step_parts import StepBatch, Trainee

CPU = torch.device("cpu")


class SelfSupervisedD(nn.Module):
    """Two layers (features, logit) and a decoder that rebuilds the image from the features: FastGAN's D in small."""

    def __init__(self) -> None:
        super().__init__()
        self.features, self.logit, self.decoder = nn.Linear(16, 8), nn.Linear(8, 1), nn.Linear(8, 16)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                with_reconstruction: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.features(images.flatten(1)))
        logits = self.logit(h).squeeze(1)
        if not with_reconstruction:
            return logits
        return logits, F.mse_loss(self.decoder(h), images.flatten(1))


class TinyG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 16)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.net(z)).view(-1, 1, 4, 4)


def tiny_g() -> TinyG:
    torch.manual_seed(1)
    return TinyG()


def networks(D: nn.Module) -> Trainee:
    G = tiny_g()
    # Plain SGD (lr 1): the update is minus the gradient, so a wrong weight or a missing term shows (Adam's
    # first step moves every weight by about lr whatever the gradient's scale).
    return Trainee(G, D, None, torch.optim.SGD(G.parameters(), lr=1.0), torch.optim.SGD(D.parameters(), lr=1.0))


def d_step(scheme: str, D: nn.Module, batch: StepBatch) -> TickStats:
    """One D step of `scheme` (a copy of D's initial weights stays with the caller); returns its stats."""
    stats = TickStats(CPU)
    adversary = build_adversary(LossConfig(), build_augment("none", batch=batch.reals.shape[0]), 1.0)
    objective = SCHEMES[scheme].build_objective(TrainConfig(), adversary, {}, CPU)
    SCHEMES[scheme].discriminator_step(networks(D), objective, Precision("fp32", CPU), stats, batch, cur_nimg=0,
                                       d_step=0, keep_fakes=True)
    return stats


def a_batch(size: int, rounds: int = 1) -> StepBatch:
    generator = torch.Generator().manual_seed(0)
    return StepBatch(reals=torch.rand(size, 1, 4, 4, generator=generator) * 2 - 1, labels=None,
                     latents=torch.randn(size, 4, generator=generator), rounds=rounds)


def initial_d() -> SelfSupervisedD:
    torch.manual_seed(0)
    return SelfSupervisedD()


def test_selfsupervised_d_step_adds_the_reconstruction_loss_to_d_and_logs_it():
    D, batch = initial_d(), a_batch(6)
    reference = copy.deepcopy(D)
    stats = d_step("gan-selfsupervised", D, batch)

    # By hand: D's adversarial loss on reals and fakes plus its reconstruction loss on the reals.
    with torch.no_grad():
        fakes = tiny_g()(batch.latents)
    real_logits, reconstruction = reference(batch.reals, None, with_reconstruction=True)
    fake_logits = reference(fakes)
    adversarial = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()  # the nonsaturating D loss
    (adversarial + reconstruction).backward()
    for (name, after), before in zip(D.named_parameters(), reference.parameters(), strict=True):
        assert before.grad is not None
        torch.testing.assert_close(after, before - before.grad, msg=name)
    assert stats.counts["loss_recon"] == 1
    assert stats.means()["loss_recon"] == pytest.approx(reconstruction.item(), rel=1e-6)
    assert stats.means()["loss_d"] == pytest.approx(adversarial.item(), rel=1e-6)  # loss_d stays the GAN loss


def test_the_plain_gan_scheme_neither_reconstructs_nor_logs_a_reconstruction():
    D = initial_d()
    decoder_before = copy.deepcopy(D.decoder)
    stats = d_step("gan", D, a_batch(6))
    assert "loss_recon" not in stats.means()
    assert all(torch.equal(a, b) for a, b in zip(D.decoder.parameters(), decoder_before.parameters(), strict=True))


def test_a_selfsupervised_real_pass_in_three_rounds_updates_d_like_one_pass():
    # 10 images in passes of 4, 3 and 3: the reconstruction loss is weighted by each pass's share like the rest.
    one_d, three_d = initial_d(), initial_d()
    one = d_step("gan-selfsupervised", one_d, a_batch(10))
    three = d_step("gan-selfsupervised", three_d, a_batch(10, rounds=3))
    for (name, a), b in zip(one_d.named_parameters(), three_d.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    assert three.counts["loss_recon"] == 1  # one step, one entry, whatever the number of passes
    assert three.means()["loss_recon"] == pytest.approx(one.means()["loss_recon"], rel=1e-6)
    assert three.means()["loss_d"] == pytest.approx(one.means()["loss_d"], rel=1e-6)


def test_every_model_family_names_a_scheme_the_loop_has():
    assert {name: family.scheme for name, family in MODELS.items() if family.scheme not in SCHEMES} == {}
