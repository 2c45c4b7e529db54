import pytest
import torch

from ganforge.config import LossConfig
from ganforge.training.objective.regularizers import (
    DriftPenalty,
    GradientPenalty,
    R1Penalty,
    WeightClipping,
    build_regularizers,
)


def linear_critic(slope: float):
    # D(x) = slope * sum(x): its gradient norm is |slope| * sqrt(numel) everywhere.
    return lambda x: slope * x.flatten(1).sum(1)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic_and_grows_quadratically():
    reals, fakes = torch.randn(8, 1, 2, 2), torch.randn(8, 1, 2, 2)
    gp = GradientPenalty(10.0, one_sided=False)
    assert gp.penalty(linear_critic(0.5), reals, fakes, torch.zeros(8), 0).item() == pytest.approx(0.0, abs=1e-6)
    # slope 1 on 4 pixels: ||grad|| = 2 -> 10 * (2 - 1)^2
    assert gp.penalty(linear_critic(1.0), reals, fakes, torch.zeros(8), 0).item() == pytest.approx(10.0)


def test_one_sided_gradient_penalty_ignores_small_gradients():
    reals, fakes = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    assert GradientPenalty(10.0, one_sided=True).penalty(linear_critic(0.1), reals, fakes, torch.zeros(4), 0) == 0
    assert GradientPenalty(10.0, one_sided=False).penalty(linear_critic(0.1), reals, fakes, torch.zeros(4), 0) > 0


def test_r1_is_lazy_and_scaled_by_its_interval():
    reals = torch.randn(4, 1, 2, 2)
    r1 = R1Penalty(gamma=2.0, every=4)
    assert r1.penalty(linear_critic(1.0), reals, reals, torch.zeros(4), d_step=3) is None
    # gamma/2 * ||grad||^2 * every = 1 * 4 * 4
    assert r1.penalty(linear_critic(1.0), reals, reals, torch.zeros(4), d_step=8).item() == pytest.approx(16.0)


def test_drift_penalty_and_weight_clipping():
    assert DriftPenalty(0.001).penalty(None, None, None, torch.tensor([10.0, -10.0]), 0).item() == pytest.approx(0.1)
    critic = torch.nn.Linear(3, 1)
    torch.nn.init.constant_(critic.weight, 5.0)
    WeightClipping(0.01).after_step(critic)
    assert critic.weight.abs().max().item() == pytest.approx(0.01)


def test_each_loss_gets_its_lipschitz_device():
    assert [type(r).__name__ for r in build_regularizers(LossConfig("wgan"))] == ["WeightClipping"]
    assert [type(r).__name__ for r in build_regularizers(LossConfig("wgan-gp", drift=0.001))] == [
        "GradientPenalty", "DriftPenalty"]
    assert build_regularizers(LossConfig()) == []
