import dataclasses
import math

import pytest
import torch

from ganforge.config import LossConfig
from ganforge.errors import ConfigError
from ganforge.training.objective.losses import LOSSES, build_loss

LOGITS = torch.tensor([2.0, -1.0, 0.5])


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_discriminator_loss_is_binary_cross_entropy_on_logits():
    loss = build_loss(LossConfig("nonsaturating"))
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    expected = -math.log(sigmoid(2.0)) - math.log(1 - sigmoid(-1.0))
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_nonsaturating_generator_maximises_log_d_of_fakes():
    loss = build_loss(LossConfig("nonsaturating"))
    expected = sum(-math.log(sigmoid(v)) for v in LOGITS.tolist()) / 3
    assert loss.generator_loss(LOGITS).item() == pytest.approx(expected, rel=1e-6)


def test_minimax_generator_minimises_log_one_minus_d_of_fakes():
    loss = build_loss(LossConfig("minimax"))
    expected = sum(math.log(1 - sigmoid(v)) for v in LOGITS.tolist()) / 3
    assert loss.generator_loss(LOGITS).item() == pytest.approx(expected, rel=1e-6)


def test_minimax_gradient_vanishes_where_nonsaturating_does_not():
    # Goodfellow et al.'s motivation: when D confidently rejects fakes, log(1 - D) saturates.
    logits = torch.tensor([-8.0], requires_grad=True)
    build_loss(LossConfig("minimax")).generator_loss(logits).backward()
    saturating = abs(logits.grad.item())
    logits.grad = None
    build_loss(LossConfig("nonsaturating")).generator_loss(logits).backward()
    assert saturating < 1e-3 < abs(logits.grad.item())


def test_one_sided_label_smoothing_lowers_only_the_real_target():
    smooth = build_loss(LossConfig(label_smoothing=0.1))
    real, fake = torch.tensor([0.0]), torch.tensor([-30.0])
    expected = -(0.9 * math.log(0.5) + 0.1 * math.log(0.5))
    assert smooth.discriminator_loss(real, fake).item() == pytest.approx(expected, abs=1e-6)


def test_label_flips_happen_at_the_requested_rate():
    torch.manual_seed(0)
    noisy = build_loss(LossConfig(label_flip=0.25))
    real = torch.full((20000,), 30.0)  # confident "real": a flipped target costs ~30, a kept one ~0
    per_sample = noisy.discriminator_loss(real, torch.full((20000,), -30.0)) / 2
    assert per_sample.item() / 30 == pytest.approx(0.25, abs=0.02)


def test_unknown_loss_is_refused_when_the_config_is_built_naming_the_known_ones():
    # Refused before anything is written (`--loss wgangp` used to create a run folder first).
    with pytest.raises(ConfigError,
                       match="--loss must be nonsaturating, minimax, wgan, wgan-gp, hinge, lsgan or rpgan"):
        LossConfig(name="wgan-typo")


def test_every_loss_the_config_accepts_is_built():
    choices = {f.name: f for f in dataclasses.fields(LossConfig)}["name"].metadata["choices"]
    assert set(choices) == set(LOSSES)


def test_wasserstein_critic_and_generator_losses():
    loss = build_loss(LossConfig("wgan"))
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 0.0])
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(-0.5 - 2.0)
    assert loss.generator_loss(fake).item() == pytest.approx(0.5)


def test_hinge_loss_ignores_confident_correct_outputs():
    loss = build_loss(LossConfig("hinge"))
    assert loss.discriminator_loss(torch.tensor([2.0]), torch.tensor([-3.0])).item() == 0.0
    assert loss.discriminator_loss(torch.tensor([0.5]), torch.tensor([0.0])).item() == pytest.approx(0.5 + 1.0)
    assert loss.generator_loss(torch.tensor([0.25, 0.75])).item() == pytest.approx(-0.5)


def test_least_squares_losses_match_mao_et_al():
    loss = build_loss(LossConfig("lsgan"))
    assert loss.discriminator_loss(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(1.0)
    assert loss.generator_loss(torch.tensor([0.0, 2.0])).item() == pytest.approx(0.5)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_rpgan_discriminator_loss_judges_each_fake_beside_its_real():
    # Jolicoeur-Martineau 2019 / R3GAN Eq. 2: D minimises E[softplus(D(G(z)) - D(x))], row by row.
    loss = build_loss(LossConfig("rpgan"))
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.5, 0.5, 3.0])
    expected = (softplus(0.5 - 2.0) + softplus(0.5 + 1.0) + softplus(3.0 - 0.5)) / 3
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    # Pairing matters: the same logits in another order give another loss (a non-relativistic loss would not care).
    assert loss.discriminator_loss(real, fake.flip(0)).item() != pytest.approx(expected, rel=1e-3)


def test_rpgan_generator_loss_is_softplus_of_real_minus_fake():
    loss = build_loss(LossConfig("rpgan"))
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.5, 0.5, 3.0])
    expected = (softplus(2.0 - 0.5) + softplus(-1.0 - 0.5) + softplus(0.5 - 3.0)) / 3
    assert loss.generator_loss(fake, real).item() == pytest.approx(expected, rel=1e-6)


def test_rpgan_generator_loss_trains_only_through_the_fake_logits():
    loss = build_loss(LossConfig("rpgan"))
    real = torch.tensor([2.0, -1.0], requires_grad=True)
    fake = torch.tensor([0.5, 0.5], requires_grad=True)
    loss.generator_loss(fake, real).backward()
    assert real.grad is None  # D's verdict on the reals is a constant in G's loss
    # d/df mean softplus(r - f) = -sigmoid(r - f) / n
    expected = [-sigmoid(2.0 - 0.5) / 2, -sigmoid(-1.0 - 0.5) / 2]
    assert fake.grad.tolist() == pytest.approx(expected, rel=1e-6)


def test_rpgan_generator_loss_without_real_logits_is_refused():
    with pytest.raises(ValueError, match="real_logits"):
        build_loss(LossConfig("rpgan")).generator_loss(torch.tensor([0.5]))


def test_only_rpgan_makes_the_g_step_judge_reals_beside_fakes():
    from ganforge.training.objective.losses import pairs_reals

    assert {name for name in LOSSES if pairs_reals(build_loss(LossConfig(name)))} == {"rpgan"}
