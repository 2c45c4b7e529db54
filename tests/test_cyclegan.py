"""CycleGAN: its networks, the cycle and identity losses, the history pool, training, exact resume, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from ganforge.cli import main
from ganforge.config import ModelConfig
from ganforge.models import build_networks
from ganforge.models.cyclegan import CycleGenerators
from ganforge.training.objective.fake_pool import FakePool
from ganforge.training.schemes.cycle import cycle_terms

from data_slices import digit_pairs_store, digits_fashion_store
from run_helpers import assert_kill_and_resume_matches, only_run

TINY = ["--model", "cyclegan", "--g-width", "4", "--d-width", "4", "--batch", "4", "--tick-kimg", "0.016",
        "--seed", "9", "--pool-size", "6", "--no-progress"]


def test_cycle_and_identity_losses_of_identity_generators_are_zero() -> None:
    real_a, real_b = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3, 16, 16) * 2 - 1
    outputs = CycleGenerators(nn.Identity(), nn.Identity())(real_a, real_b)
    cycle, identity = cycle_terms(outputs, real_a, real_b)
    assert cycle.item() == 0 and identity.item() == 0
    flipped = CycleGenerators(nn.Identity(), nn.Identity())(real_a, -real_b)  # F(b) != b: no longer zero
    assert cycle_terms(flipped, real_a, real_b)[0].item() > 0


def test_generators_keep_the_shape_with_the_papers_block_counts() -> None:
    for side, blocks in ((256, 9), (128, 6), (16, 6)):
        with torch.device("meta"):
            nets = build_networks(ModelConfig(name="cyclegan", input_shape=(3, side, side)), (3, side, side))
        assert sum(1 for m in nets.generator.a2b.modules() if type(m).__name__ == "ResidualBlock") == blocks
    nets = build_networks(ModelConfig(name="cyclegan", g_width=4, d_width=4, input_shape=(1, 16, 16)), (1, 16, 16))
    images = torch.rand(2, 1, 16, 16)
    assert nets.generator(images).shape == images.shape
    assert nets.generator.b2a(images).shape == images.shape
    logits = nets.discriminator(torch.cat([images, images]), torch.tensor([0, 0, 1, 1]))
    assert torch.equal(logits[:2], nets.discriminator.judge_a(images))  # each image judged by its domain's D
    assert torch.equal(logits[2:], nets.discriminator.judge_b(images))


def test_the_pool_fills_then_swaps_about_half_and_its_state_round_trips() -> None:
    torch.manual_seed(0)
    pool = FakePool(4, (1, 2, 2), torch.device("cpu"))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first, 0), first) and pool.filled == [4, 0]  # filling: every fake goes through
    later = (100 + torch.arange(400.0)).view(400, 1, 1, 1).expand(400, 1, 2, 2)  # each fake told apart
    shown = pool.query(later, 0)[:, 0, 0, 0]
    swapped = (shown != later[:, 0, 0, 0]).sum().item()
    assert 150 <= swapped <= 250  # each fake is swapped with probability 1/2: Binomial(400, 1/2), 200 +- 50
    from_first = (shown < 4).sum().item()
    assert 0 < from_first <= 4  # the four first stored come back at most once each: a swap replaces them
    tensors, meta = pool.state_dict()
    copy = FakePool(4, (1, 2, 2), torch.device("cpu"))
    copy.load_state_dict({k: v.clone() for k, v in tensors.items()}, meta)
    torch.manual_seed(1)
    expected = pool.query(later[:8], 0)
    torch.manual_seed(1)
    assert torch.equal(copy.query(later[:8], 0), expected)


def test_the_pool_over_a_batch_is_the_pool_fake_by_fake() -> None:
    # The pool queries a batch at once on the device; it must show and keep exactly what taking the fakes one by
    # one does (Shrivastava et al.'s loop), also when several fakes of a batch draw the same slot.
    def one_by_one(stored: list, filled: int, fakes: torch.Tensor, coins: list, slots: list) -> tuple[list, list]:
        shown = []
        for i, image in enumerate(fakes):
            if filled < len(stored):
                stored[filled], filled = image, filled + 1
                shown.append(image)
            elif coins[i] > 0.5:
                shown.append(stored[slots[i]])
                stored[slots[i]] = image
            else:
                shown.append(image)
        return shown, stored

    pool = FakePool(3, (1, 1, 1), torch.device("cpu"))
    reference: list = [torch.zeros(1, 1, 1)] * 3
    for query in range(6):
        fakes = (10 * query + torch.arange(1.0, 9.0)).view(8, 1, 1, 1)  # 8 fakes into 3 slots: repeats certain
        torch.manual_seed(query)
        coins, slots = torch.rand(8).tolist(), torch.randint(3, (8,)).tolist()  # the draws query makes
        expected, reference = one_by_one(reference, min(3, 8 * query), fakes, coins, slots)
        torch.manual_seed(query)
        assert torch.equal(pool.query(fakes, 1), torch.stack(expected)), query
        assert torch.equal(pool.images[1], torch.stack(reference)), query
    assert pool.filled == [0, 3] and torch.equal(pool.images[0], torch.zeros(3, 1, 1, 1))


def test_cyclegan_trains_a_few_steps_with_a_decaying_learning_rate(tmp_path: Path) -> None:
    store = digits_fashion_store(tmp_path)
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "runs"), "--kimg",
                                       "0.048", "--lr-decay", "0.5", *TINY])
    assert result.exit_code == 0, result.output
    ticks = [json.loads(line) for line in (only_run(tmp_path / "runs") / "log.jsonl").read_text().splitlines()]
    assert len(ticks) == 3 and all(np.isfinite([t["loss_d"], t["loss_g"], t["loss_recon"]]).all() for t in ticks)
    rates = [t["lr_g"] for t in ticks]
    assert rates[0] == pytest.approx(2e-4) and rates[0] > rates[1] > rates[2] > 0  # constant, then falling to 0


@pytest.mark.slow
def test_cyclegan_resumes_bit_identically_with_its_pool(tmp_path: Path) -> None:
    store = digits_fashion_store(tmp_path)
    args = ["--data", str(store), "--kimg", "0.096", "--snap", "1", "--lr-decay", "0.5", *TINY]
    assert_kill_and_resume_matches(args, tmp_path)


def test_cyclegan_refuses_other_families_settings_and_mismatched_domains(tmp_path: Path) -> None:
    runner = CliRunner()
    store = digits_fashion_store(tmp_path)
    result = runner.invoke(main, ["train", "--data", str(store), *TINY, "--l1-weight", "50"])
    assert result.exit_code != 0 and "--model cyclegan does not use --l1-weight" in result.output
    result = runner.invoke(main, ["train", "--data", str(store), "--model", "pix2pix", "--cycle-weight", "5"])
    assert result.exit_code != 0 and "--model pix2pix does not use --cycle-weight" in result.output
    pairs = digit_pairs_store(tmp_path)  # grey inputs, RGB targets: no identity mapping between them
    result = runner.invoke(main, ["train", "--data", str(pairs), *TINY])
    assert result.exit_code != 0 and "translates between domains of one image shape" in result.output
