"""Every training scheme's D step and G step against its paper's loss written out by hand, on tiny networks.

The optimizers are plain SGD with lr 1, so each parameter after a step must equal its value before minus the
gradient of the hand-written loss: a wrong weight, a missing or extra term, a network called with the wrong
condition or domain, or a gradient reaching a network it should not, all show. The logged losses must be the hand
values, a step run in several passes (gradient accumulation) must update the networks like one pass, and with the
relativistic pairing loss (rpgan) G's update must treat D's verdict on the reals as a constant.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.augment import build_augment
from ganforge.config import LossConfig
from ganforge.training.objective.adversary import Adversary, build_adversary
from ganforge.training.objective.content_loss import PixelContentLoss
from ganforge.training.objective.fake_pool import FakePool
from ganforge.training.precision import Precision
from ganforge.training.schemes import SCHEMES
from ganforge.training.schemes.aae import AaeObjective
from ganforge.training.schemes.cycle import CycleObjective
from ganforge.training.schemes.gan import GanObjective
from ganforge.training.schemes.paired import PairedObjective
from ganforge.training.schemes.sr import SrObjective
from ganforge.training.stats import TickStats
from ganforge.training.step_parts import StepBatch, Trainee

CPU = torch.device("cpu")
IMAGE = (1, 2, 2)  # the image-to-image schemes' images: 4 pixels

# Each loss as its paper writes it on D's logits. D's loss takes (real, fake); G's takes (fake, real), where `real`
# is D's verdict on the reals beside the fakes, computed without a graph by the caller (only rpgan reads it).
HAND_D = {
    "nonsaturating": lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),  # -log s(r) - log(1-s(f))
    "lsgan": lambda real, fake: 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean()),
    "rpgan": lambda real, fake: F.softplus(fake - real).mean(),
}
HAND_G = {
    "nonsaturating": lambda fake, real: F.softplus(-fake).mean(),  # -log sigmoid(D(G(z)))
    "lsgan": lambda fake, real: 0.5 * (fake - 1).pow(2).mean(),
    "rpgan": lambda fake, real: F.softplus(real - fake).mean(),
}


# --- tiny networks with the call signatures the schemes use ---------------------------------------------------


class LabelledG(nn.Module):
    """G(z, labels) -> [B, 4]: a linear map of the latent plus a per-class offset."""

    def __init__(self) -> None:
        super().__init__()
        self.net, self.embed = nn.Linear(3, 4), nn.Embedding(2, 4)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.net(z)
        return torch.tanh(h if labels is None else h + self.embed(labels))


class LabelledD(nn.Module):
    """D(images, labels) -> [B]: two layers plus a per-class offset (a projection D in small)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden, self.logit, self.embed = nn.Linear(4, 3), nn.Linear(3, 1), nn.Embedding(2, 1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        out = self.logit(torch.tanh(self.hidden(images.flatten(1)))).squeeze(1)
        return out if labels is None else out + self.embed(labels).squeeze(1)


class Critic(nn.Module):
    """D(x[, condition]) -> [B]: two layers on the flattened input, with the flattened condition beside it when
    given (pix2pix's D sees its input next to the output). Sized for one or the other, so a scheme that passes a
    condition where none belongs, or none where one does, fails on the shapes."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.hidden, self.logit = nn.Linear(features, 3), nn.Linear(3, 1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1) if condition is None else torch.cat([x.flatten(1), condition.flatten(1)], 1)
        return self.logit(torch.tanh(self.hidden(h))).squeeze(1)


class Translator(nn.Module):
    """G(inputs) -> [B, *IMAGE]: one linear layer on the flattened inputs."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.net = nn.Linear(features, 4)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(inputs.flatten(1))).view(-1, *IMAGE)


class TinyCycleG(nn.Module):
    """CycleGAN's G (`a2b`) and F (`b2a`): with both batches, (fake_b, fake_a, cycled_a, cycled_b, same_b, same_a)."""

    def __init__(self) -> None:
        super().__init__()
        self.a2b, self.b2a = Translator(4), Translator(4)

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor | None = None) -> Any:
        fake_b = self.a2b(real_a)
        if real_b is None:
            return fake_b
        fake_a = self.b2a(real_b)
        return fake_b, fake_a, self.b2a(fake_b), self.a2b(fake_a), self.a2b(real_b), self.b2a(real_a)


class TinyCycleD(nn.Module):
    """D_A and D_B: each image judged by its domain's D (0 = A, 1 = B)."""

    def __init__(self) -> None:
        super().__init__()
        self.judge_a, self.judge_b = Critic(4), Critic(4)

    def forward(self, images: torch.Tensor, domains: torch.Tensor | None = None) -> torch.Tensor:
        if domains is None:
            return self.judge_b(images)
        return torch.where(domains.bool(), self.judge_b(images), self.judge_a(images))


def seeded(seed: int, build: Any, *args: Any) -> nn.Module:
    torch.manual_seed(seed)
    module: nn.Module = build(*args)
    return module


# --- one iteration of a scheme ----------------------------------------------------------------------------------


@dataclass
class Setup:
    scheme: str  # its name in SCHEMES
    objective: Any
    G: nn.Module
    D: nn.Module
    batch: StepBatch
    E: nn.Module | None = None


@dataclass
class Nets:
    G: nn.Module
    D: nn.Module
    E: nn.Module | None


@dataclass
class Iteration:
    start: Nets  # copies before the D step
    between: Nets  # copies after the D step, before the G step
    end: Nets  # the trained networks themselves, after the G step
    d_stats: dict[str, float]  # what the D step logged
    g_stats: dict[str, float]  # what the G step logged


def adversary(loss: str, size: int, **settings: Any) -> Adversary:
    return build_adversary(LossConfig(name=loss, **settings), build_augment("none", batch=size), 1.0)


def iterate(setup: Setup, *, cur_nimg: int = 0, keep_fakes: bool = True, d_step: int = 0) -> Iteration:
    """One D step then one G step of `setup`'s scheme, both with plain SGD at lr 1."""
    G, D, E = setup.G, setup.D, setup.E
    start = Nets(*copy.deepcopy((G, D, E)))
    g_parameters = [*G.parameters(), *(E.parameters() if E is not None else ())]
    nets = Trainee(G, D, E, torch.optim.SGD(g_parameters, lr=1.0), torch.optim.SGD(D.parameters(), lr=1.0))
    scheme, precision = SCHEMES[setup.scheme], Precision("fp32", CPU)
    d_stats, g_stats = TickStats(CPU), TickStats(CPU)
    carry = scheme.discriminator_step(nets, setup.objective, precision, d_stats, setup.batch, cur_nimg=cur_nimg,
                                      d_step=d_step, keep_fakes=keep_fakes)
    between = Nets(*copy.deepcopy((G, D, E)))
    scheme.generator_step(nets, setup.objective, precision, g_stats, carry, cur_nimg=cur_nimg)
    return Iteration(start, between, Nets(G, D, E), d_stats.means(), g_stats.means())


def assert_stepped(after: nn.Module, before: nn.Module) -> None:
    """Each parameter of `after` is `before`'s minus the gradient the hand loss left on `before`, and the hand
    loss moves something (a test of an update that is zero either way would prove nothing)."""
    parameters = list(before.named_parameters())
    missing = [name for name, p in parameters if p.grad is None]
    assert not missing, f"the hand loss does not reach {missing}"
    assert max(p.grad.abs().max().item() for _, p in parameters) > 1e-3
    torch.testing.assert_close({name: p.detach() for name, p in after.named_parameters()},
                               {name: p.detach() - p.grad for name, p in parameters})


def assert_unchanged(after: nn.Module, before: nn.Module) -> None:
    torch.testing.assert_close({name: p.detach() for name, p in after.named_parameters()},
                               {name: p.detach() for name, p in before.named_parameters()}, rtol=0, atol=0)


def uniform(rng: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=rng) * 2 - 1


# --- each scheme's tiny setup -----------------------------------------------------------------------------------


def gan_setup(loss: str = "nonsaturating", size: int = 4, rounds: int = 1, **settings: Any) -> Setup:
    rng = torch.Generator().manual_seed(0)
    batch = StepBatch(reals=uniform(rng, size, 4), labels=torch.arange(size) % 2,
                      latents=torch.randn(size, 3, generator=rng), rounds=rounds)
    return Setup("gan", GanObjective(adversary(loss, size, **settings)), seeded(1, LabelledG), seeded(2, LabelledD),
                 batch)


AAE_RECON_WEIGHT = 3.0


def aae_setup(loss: str = "nonsaturating", size: int = 4, rounds: int = 1) -> Setup:
    rng = torch.Generator().manual_seed(0)
    # D's "reals" are prior samples (the latents), its "fakes" the codes E(x) of the images (the reals).
    batch = StepBatch(reals=uniform(rng, size, 4), labels=None, latents=torch.randn(size, 2, generator=rng),
                      rounds=rounds)
    decoder = seeded(1, lambda: nn.Sequential(nn.Linear(2, 4), nn.Tanh()))
    return Setup("aae", AaeObjective(adversary(loss, size), recon_weight=AAE_RECON_WEIGHT), decoder,
                 seeded(2, Critic, 2), batch, E=seeded(3, nn.Linear, 4, 2))


PIX2PIX_ADV_WEIGHT, PIX2PIX_L1_WEIGHT = 0.5, 7.0


def paired_setup(loss: str = "nonsaturating", size: int = 4, rounds: int = 1) -> Setup:
    rng = torch.Generator().manual_seed(0)
    batch = StepBatch(reals=uniform(rng, size, *IMAGE), labels=None, latents=torch.zeros(size, 0), rounds=rounds,
                      inputs=uniform(rng, size, *IMAGE))
    objective = PairedObjective(adversary(loss, size), adv_weight=PIX2PIX_ADV_WEIGHT, l1_weight=PIX2PIX_L1_WEIGHT)
    return Setup("paired", objective, seeded(1, Translator, 4), seeded(2, Critic, 8), batch)


CYCLE_ADV_WEIGHT, CYCLE_WEIGHT, CYCLE_IDENTITY_WEIGHT = 0.7, 3.0, 0.5


def cycle_setup(loss: str = "lsgan", size: int = 4, rounds: int = 1) -> Setup:
    rng = torch.Generator().manual_seed(0)
    batch = StepBatch(reals=uniform(rng, size, *IMAGE), labels=None, latents=torch.zeros(size, 0), rounds=rounds,
                      inputs=uniform(rng, size, *IMAGE))
    # A pool of 50 is still filling after one step, so D sees this step's fakes (Zhu et al.'s pool size).
    objective = CycleObjective(adversary(loss, size), FakePool(50, IMAGE, CPU), adv_weight=CYCLE_ADV_WEIGHT,
                               cycle_weight=CYCLE_WEIGHT, identity_weight=CYCLE_IDENTITY_WEIGHT)
    return Setup("cycle", objective, seeded(1, TinyCycleG), seeded(2, TinyCycleD), batch)


SR_ADV_WEIGHT, SR_CONTENT_WEIGHT, SR_PRETRAIN_NIMG = 0.3, 2.0, 100


def sr_setup(loss: str = "nonsaturating", size: int = 4, rounds: int = 1) -> Setup:
    rng = torch.Generator().manual_seed(0)
    batch = StepBatch(reals=uniform(rng, size, *IMAGE), labels=None, latents=torch.zeros(size, 0), rounds=rounds,
                      inputs=uniform(rng, size, 1, 1, 2))  # low resolution: half the pixels
    objective = SrObjective(adversary(loss, size), PixelContentLoss(), adv_weight=SR_ADV_WEIGHT,
                            content_weight=SR_CONTENT_WEIGHT, pretrain_nimg=SR_PRETRAIN_NIMG)
    return Setup("super-resolution", objective, seeded(1, Translator, 2), seeded(2, Critic, 4), batch)


def real_verdict(critic: Any, *args: Any) -> torch.Tensor:
    """D's verdict on reals as G's loss sees it: a constant."""
    with torch.no_grad():
        return critic(*args)


# --- gan: Goodfellow et al. 2014 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["nonsaturating", "rpgan"])
def test_gan_d_step_descends_the_d_loss_on_reals_and_fakes_of_their_classes(loss):
    setup = gan_setup(loss)
    it, b = iterate(setup), setup.batch
    G0, D0 = it.start.G, it.start.D
    with torch.no_grad():
        fakes = G0(b.latents, b.labels)
    loss_d = HAND_D[loss](D0(b.reals, b.labels), D0(fakes, b.labels))
    loss_d.backward()
    assert_stepped(it.between.D, D0)
    assert_unchanged(it.between.G, G0)
    assert it.d_stats["loss_d"] == pytest.approx(loss_d.item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["nonsaturating", "rpgan"])
def test_gan_g_step_descends_the_g_loss_of_the_updated_d_and_leaves_d_alone(loss):
    setup = gan_setup(loss)
    it, b = iterate(setup), setup.batch
    G0, D1 = it.start.G, it.between.D
    loss_g = HAND_G[loss](D1(G0(b.latents, b.labels), b.labels), real_verdict(D1, b.reals, b.labels))
    loss_g.backward()
    assert_stepped(it.end.G, G0)
    assert_unchanged(it.end.D, D1)
    assert it.g_stats["loss_g"] == pytest.approx(loss_g.item(), rel=1e-6)
    assert "loss_d" not in it.g_stats and "loss_recon" not in it.g_stats


def test_rpgan_g_step_follows_softplus_of_d_real_minus_d_fake_with_d_real_held_constant():
    # R3GAN Eq. 2, G's side: L_G = E[softplus(D(x) - D(G(z)))]; D(x) carries no gradient.
    setup = gan_setup("rpgan")
    it, b = iterate(setup), setup.batch
    G0, D1 = it.start.G, it.between.D
    reals = D1(b.reals, b.labels).detach()
    fakes = D1(G0(b.latents, b.labels), b.labels)
    F.softplus(reals - fakes).mean().backward()
    assert_stepped(it.end.G, G0)
    assert_unchanged(it.end.D, D1)


def test_r3gan_d_step_adds_r1_at_the_reals_and_r2_at_the_fakes_lazily():
    # rpgan + R1 (gamma 2) + R2 (gamma 3), every 2nd D step and scaled by 2 (StyleGAN2's lazy regularization).
    setup = gan_setup("rpgan", r1_gamma=2.0, r2_gamma=3.0, r1_every=2)
    it, b = iterate(setup, d_step=4), setup.batch
    G0, D0 = it.start.G, it.start.D
    with torch.no_grad():
        fakes = G0(b.latents, b.labels)

    def squared_gradient_norm(points):
        points = points.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(D0(points, b.labels).sum(), points, create_graph=True)
        return grad.pow(2).sum(1).mean()

    loss_d = F.softplus(D0(fakes, b.labels) - D0(b.reals, b.labels)).mean()
    r1, r2 = 2.0 / 2 * squared_gradient_norm(b.reals) * 2, 3.0 / 2 * squared_gradient_norm(fakes) * 2
    (loss_d + r1 + r2).backward()
    assert_stepped(it.between.D, D0)
    assert it.d_stats["loss_d"] == pytest.approx(loss_d.item(), rel=1e-6)  # the penalties are not logged as loss_d


def test_r3gan_d_step_between_lazy_steps_is_the_loss_alone():
    setup = gan_setup("rpgan", r1_gamma=2.0, r2_gamma=3.0, r1_every=2)
    it, b = iterate(setup, d_step=3), setup.batch
    G0, D0 = it.start.G, it.start.D
    with torch.no_grad():
        fakes = G0(b.latents, b.labels)
    F.softplus(D0(fakes, b.labels) - D0(b.reals, b.labels)).mean().backward()
    assert_stepped(it.between.D, D0)


# --- aae: Makhzani et al. 2016 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["nonsaturating", "rpgan"])
def test_aae_d_step_tells_prior_samples_from_codes_and_leaves_the_autoencoder_alone(loss):
    setup = aae_setup(loss)
    it, b = iterate(setup), setup.batch
    E0, D0 = it.start.E, it.start.D
    with torch.no_grad():
        codes = E0(b.reals)
    loss_d = HAND_D[loss](D0(b.latents), D0(codes))
    loss_d.backward()
    assert_stepped(it.between.D, D0)
    assert_unchanged(it.between.E, E0)
    assert_unchanged(it.between.G, it.start.G)
    assert it.d_stats["loss_d"] == pytest.approx(loss_d.item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["nonsaturating", "rpgan"])
def test_aae_g_step_trains_encoder_and_decoder_on_adversarial_plus_weighted_reconstruction(loss):
    setup = aae_setup(loss)
    it, b = iterate(setup), setup.batch
    E0, G0, D1 = it.start.E, it.start.G, it.between.D
    codes = E0(b.reals)
    adversarial = HAND_G[loss](D1(codes), real_verdict(D1, b.latents))
    reconstruction = F.mse_loss(G0(codes), b.reals)
    (adversarial + AAE_RECON_WEIGHT * reconstruction).backward()
    assert_stepped(it.end.E, E0)
    assert_stepped(it.end.G, G0)
    assert_unchanged(it.end.D, D1)
    assert it.g_stats["loss_g"] == pytest.approx(adversarial.item(), rel=1e-6)
    assert it.g_stats["loss_recon"] == pytest.approx(reconstruction.item(), rel=1e-6)


# --- paired: pix2pix, Isola et al. 2017 ---------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["nonsaturating", "rpgan"])
def test_pix2pix_d_step_judges_targets_and_outputs_beside_their_inputs(loss):
    setup = paired_setup(loss)
    it, b = iterate(setup), setup.batch
    G0, D0 = it.start.G, it.start.D
    with torch.no_grad():
        outputs = G0(b.inputs)
    loss_d = HAND_D[loss](D0(b.reals, b.inputs), D0(outputs, b.inputs))
    loss_d.backward()
    assert_stepped(it.between.D, D0)
    assert_unchanged(it.between.G, G0)
    assert it.d_stats["loss_d"] == pytest.approx(loss_d.item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["nonsaturating", "rpgan"])
def test_pix2pix_g_step_descends_weighted_adversarial_plus_weighted_l1_to_the_target(loss):
    setup = paired_setup(loss)
    it, b = iterate(setup), setup.batch
    G0, D1 = it.start.G, it.between.D
    outputs = G0(b.inputs)
    adversarial = HAND_G[loss](D1(outputs, b.inputs), real_verdict(D1, b.reals, b.inputs))
    l1 = (outputs - b.reals).abs().mean()
    (PIX2PIX_ADV_WEIGHT * adversarial + PIX2PIX_L1_WEIGHT * l1).backward()
    assert_stepped(it.end.G, G0)
    assert_unchanged(it.end.D, D1)
    assert it.g_stats["loss_g"] == pytest.approx(adversarial.item(), rel=1e-6)
    assert it.g_stats["loss_recon"] == pytest.approx(l1.item(), rel=1e-6)


# --- cycle: CycleGAN, Zhu et al. 2017 -----------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["lsgan", "rpgan"])
def test_cyclegan_d_step_trains_each_domains_d_on_its_reals_and_fakes_at_half_weight(loss):
    setup = cycle_setup(loss)
    it, b = iterate(setup), setup.batch
    G0, D0 = it.start.G, it.start.D
    real_a, real_b = b.inputs, b.reals
    with torch.no_grad():
        fake_b, fake_a = G0.a2b(real_a), G0.b2a(real_b)
    # D_A: real A against F(b); D_B: real B against G(a); "we divide the objective by 2 while optimizing D"
    # (Zhu et al., Sec. 4).
    loss_a = HAND_D[loss](D0.judge_a(real_a), D0.judge_a(fake_a))
    loss_b = HAND_D[loss](D0.judge_b(real_b), D0.judge_b(fake_b))
    loss_d = (loss_a + loss_b) / 2
    loss_d.backward()
    assert_stepped(it.between.D, D0)
    assert_unchanged(it.between.G, G0)
    assert it.d_stats["loss_d"] == pytest.approx(loss_d.item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["lsgan", "rpgan"])
def test_cyclegan_g_step_descends_both_adversarial_terms_plus_cycle_and_identity(loss):
    setup = cycle_setup(loss)
    it, b = iterate(setup), setup.batch
    G0, D1 = it.start.G, it.between.D
    real_a, real_b = b.inputs, b.reals
    fake_b, fake_a = G0.a2b(real_a), G0.b2a(real_b)
    adversarial = (HAND_G[loss](D1.judge_a(fake_a), real_verdict(D1.judge_a, real_a))
                   + HAND_G[loss](D1.judge_b(fake_b), real_verdict(D1.judge_b, real_b)))
    cycle = (G0.b2a(fake_b) - real_a).abs().mean() + (G0.a2b(fake_a) - real_b).abs().mean()
    identity = (G0.a2b(real_b) - real_b).abs().mean() + (G0.b2a(real_a) - real_a).abs().mean()
    (CYCLE_ADV_WEIGHT * adversarial + CYCLE_WEIGHT * (cycle + CYCLE_IDENTITY_WEIGHT * identity)).backward()
    assert_stepped(it.end.G, G0)
    assert_unchanged(it.end.D, D1)
    assert it.g_stats["loss_g"] == pytest.approx(adversarial.item(), rel=1e-6)
    assert it.g_stats["loss_recon"] == pytest.approx(cycle.item(), rel=1e-6)


# --- super-resolution: SRGAN, Ledig et al. 2017 -------------------------------------------------------------------


def test_srgan_pretraining_trains_g_on_pixel_mse_alone_and_leaves_d_untouched():
    setup = sr_setup()
    it, b = iterate(setup, cur_nimg=SR_PRETRAIN_NIMG - 1), setup.batch
    G0 = it.start.G
    mse = F.mse_loss(G0(b.inputs), b.reals)
    mse.backward()
    assert_stepped(it.end.G, G0)
    assert_unchanged(it.end.D, it.start.D)
    assert it.d_stats == {}  # no D update, nothing logged for it
    assert it.g_stats == pytest.approx({"loss_recon": mse.item()}, rel=1e-6)


@pytest.mark.parametrize("loss", ["nonsaturating", "rpgan"])
def test_srgan_d_step_after_pretraining_judges_targets_against_outputs(loss):
    setup = sr_setup(loss)
    it, b = iterate(setup, cur_nimg=SR_PRETRAIN_NIMG), setup.batch
    G0, D0 = it.start.G, it.start.D
    with torch.no_grad():
        outputs = G0(b.inputs)
    loss_d = HAND_D[loss](D0(b.reals), D0(outputs))
    loss_d.backward()
    assert_stepped(it.between.D, D0)
    assert_unchanged(it.between.G, G0)
    assert it.d_stats["loss_d"] == pytest.approx(loss_d.item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["nonsaturating", "rpgan"])
def test_srgan_g_step_after_pretraining_descends_weighted_content_plus_weighted_adversarial(loss):
    setup = sr_setup(loss)
    it, b = iterate(setup, cur_nimg=SR_PRETRAIN_NIMG), setup.batch
    G0, D1 = it.start.G, it.between.D
    outputs = G0(b.inputs)
    content = F.mse_loss(outputs, b.reals)  # PixelContentLoss: SRGAN-MSE
    adversarial = HAND_G[loss](D1(outputs), real_verdict(D1, b.reals))
    (SR_CONTENT_WEIGHT * content + SR_ADV_WEIGHT * adversarial).backward()
    assert_stepped(it.end.G, G0)
    assert_unchanged(it.end.D, D1)
    assert it.g_stats["loss_g"] == pytest.approx(adversarial.item(), rel=1e-6)
    assert it.g_stats["loss_recon"] == pytest.approx(content.item(), rel=1e-6)


# --- passes: gradient accumulation --------------------------------------------------------------------------------

SETUPS = {"gan": gan_setup, "aae": aae_setup, "paired": paired_setup, "cycle": cycle_setup,
          "super-resolution": sr_setup}


@pytest.mark.parametrize("loss", ["default", "rpgan"])
@pytest.mark.parametrize("rounds", [1, 3])
@pytest.mark.parametrize("scheme", list(SETUPS))
def test_an_iteration_run_again_pass_by_pass_updates_the_networks_like_one_pass_with_kept_fakes(scheme, rounds, loss):
    # 7 samples: 3 passes of 3, 2 and 2 (uneven, so each pass's weight matters). Rounds 1 without kept fakes:
    # G runs again in the G step. The reference keeps its fakes from the D step, as the loop does.
    make = SETUPS[scheme]
    settings = {} if loss == "default" else {"loss": loss}
    cur_nimg = SR_PRETRAIN_NIMG if scheme == "super-resolution" else 0  # SRGAN's adversarial phase
    one = iterate(make(size=7, **settings), cur_nimg=cur_nimg, keep_fakes=True)
    passes = iterate(make(size=7, rounds=rounds, **settings), cur_nimg=cur_nimg, keep_fakes=False)
    for role in ("D", "G", "E"):
        a, b = getattr(one.end, role), getattr(passes.end, role)
        if a is not None:
            torch.testing.assert_close(dict(a.named_parameters()), dict(b.named_parameters()), rtol=0, atol=1e-6)
    assert one.g_stats.keys() == passes.g_stats.keys() and one.d_stats.keys() == passes.d_stats.keys()
    for name, value in {**one.g_stats, **one.d_stats}.items():
        assert {**passes.g_stats, **passes.d_stats}[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
