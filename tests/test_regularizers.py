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


def weighted_critic(w: torch.Tensor):
    # D(x) = <w, x>: its gradient is w at every input.
    return lambda x: x.flatten(1) @ w


def test_r2_is_gamma_half_the_squared_critic_gradient_scaled_by_its_interval():
    from ganforge.training.objective.regularizers import R2Penalty

    w = torch.tensor([1.0, -2.0, 0.5, 3.0])  # ||w||^2 = 14.25
    reals, fakes = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    r2 = R2Penalty(gamma=2.0, every=4)
    assert r2.penalty(weighted_critic(w), reals, fakes, torch.zeros(4), d_step=8).item() == pytest.approx(
        2.0 / 2 * 14.25 * 4)


def test_r2_penalises_the_gradient_at_the_fakes_and_r1_at_the_reals():
    from ganforge.training.objective.regularizers import R2Penalty

    # D(x) = ||x||^2 / 2 has gradient x: flat (zero) at the reals, steep at the fakes.
    def critic(x):
        return 0.5 * x.flatten(1).pow(2).sum(1)

    reals, fakes = torch.zeros(3, 1, 2, 2), torch.full((3, 1, 2, 2), 2.0)  # ||grad||^2 at a fake: 4 * 4 = 16
    r2 = R2Penalty(gamma=1.0, every=1).penalty(critic, reals, fakes, torch.zeros(3), d_step=0)
    r1 = R1Penalty(gamma=1.0, every=1).penalty(critic, reals, fakes, torch.zeros(3), d_step=0)
    assert r2.item() == pytest.approx(0.5 * 16)
    assert r1.item() == 0.0


def test_r2_is_lazy_on_its_interval():
    from ganforge.training.objective.regularizers import R2Penalty

    reals = fakes = torch.randn(4, 1, 2, 2)
    r2 = R2Penalty(gamma=2.0, every=4)
    assert [r2.penalty(linear_critic(1.0), reals, fakes, torch.zeros(4), d_step=s) is None for s in range(6)] == [
        False, True, True, True, False, True]


def test_r2_trains_the_critic_weights():
    from ganforge.training.objective.regularizers import R2Penalty

    critic = torch.nn.Linear(4, 1, bias=False)
    fakes = torch.randn(5, 1, 2, 2)
    R2Penalty(gamma=3.0, every=2).penalty(lambda x: critic(x.flatten(1)).squeeze(1), fakes, fakes, torch.zeros(5),
                                          d_step=0).backward()
    # d/dw of gamma/2 * ||w||^2 * every = gamma * every * w
    torch.testing.assert_close(critic.weight.grad, 3.0 * 2 * critic.weight.detach())


def test_r2_gamma_adds_r2_on_r1s_interval_beside_r1():
    from ganforge.training.objective.regularizers import R2Penalty

    only_r2 = build_regularizers(LossConfig(r2_gamma=0.5, r1_every=8))
    assert [type(r).__name__ for r in only_r2] == ["R2Penalty"]
    assert isinstance(only_r2[0], R2Penalty) and (only_r2[0].gamma, only_r2[0].every) == (0.5, 8)
    both = build_regularizers(LossConfig("rpgan", r1_gamma=1.0, r2_gamma=1.0))
    assert [type(r).__name__ for r in both] == ["R1Penalty", "R2Penalty"]
