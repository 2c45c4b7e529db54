"""The tick's logged means: each D step's loss, D(x), D(G(z)) and accuracies, and the other losses, whatever
the number of steps between reductions, the shapes of the logits, or a checkpoint taken in the middle."""

from __future__ import annotations

import pytest
import torch

from ganforge.training import stats as tick_stats
from ganforge.training.stats import TickStats

CPU = torch.device("cpu")


def expected_means(steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """The means written out step by step, the way a reader of the log understands them."""
    rows = [(loss.item(), torch.sigmoid(real).mean().item(), torch.sigmoid(fake).mean().item(),
             (real > 0).float().mean().item(), (fake < 0).float().mean().item(), loss_g.item())
            for loss, real, fake, loss_g in steps]
    names = ("loss_d", "d_real", "d_fake", "acc_real", "acc_fake", "loss_g")
    return {name: sum(row[i] for row in rows) / len(rows) for i, name in enumerate(names)}


def random_steps(count: int, sizes: list[int]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(count)
    return [(torch.rand((), generator=generator), torch.randn(sizes[i % len(sizes)], generator=generator),
             torch.randn(sizes[i % len(sizes)], generator=generator), torch.rand((), generator=generator))
            for i in range(count)]


@pytest.mark.parametrize("count, sizes", [(1, [8]), (150, [8]), (70, [8, 5]), (3, [4, 900])])
def test_the_means_are_the_steps_means_across_reductions_and_shapes(count: int, sizes: list[int]) -> None:
    # 150 steps cross two reductions; 70 steps of two batch sizes (a ProGAN phase change) take the per-step path.
    steps = random_steps(count, sizes)
    stats = TickStats(CPU)
    for loss, real, fake, loss_g in steps:
        stats.add_discriminator(loss, real, fake)
        stats.add_generator(loss_g)
    assert stats.means() == pytest.approx(expected_means(steps), rel=1e-6, abs=1e-9)


def test_a_checkpoint_mid_tick_holds_every_step_so_far_and_resumes_to_the_same_means(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tick_stats, "FLUSH_STEPS", 4)
    steps = random_steps(10, [6])
    stats, resumed = TickStats(CPU), TickStats(CPU)
    for index, (loss, real, fake, loss_g) in enumerate(steps):
        stats.add_discriminator(loss, real, fake)
        stats.add_generator(loss_g)
        if index == 5:  # between reductions: the saved sums must include the steps not yet reduced
            resumed.load_state_dict(*stats.state_dict())
        elif index > 5:
            resumed.add_discriminator(loss, real, fake)
            resumed.add_generator(loss_g)
    assert resumed.means() == stats.means() == pytest.approx(expected_means(steps), rel=1e-6)


def test_a_patch_discriminators_many_logits_are_reduced_before_they_pile_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tick_stats, "FLUSH_ELEMENTS", 1000)
    stats = TickStats(CPU)
    for loss, real, fake, _ in random_steps(5, [400]):
        stats.add_discriminator(loss, real, fake)
        assert stats._held_elements < 1000
    assert stats.counts["loss_d"] == 5


def test_reset_forgets_what_was_filed() -> None:
    stats = TickStats(CPU)
    loss, real, fake, loss_g = random_steps(1, [4])[0]
    stats.add_discriminator(loss, real, fake)
    stats.add_generator(loss_g)
    stats.reset()
    assert stats.means() == {}
