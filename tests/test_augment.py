import json

import pytest
import torch

from ganforge.augment import AdaptiveAugment, Augment, DiffAugment, build_augment, preview_grid
from ganforge.augment.ada import GEOMETRIC_OPS, OPS
from ganforge.errors import CheckpointError, ConfigError

NAMES = ("none", "diffaugment", "ada")


def images(channels: int = 3, batch: int = 8, size: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, size, size, generator=generator) * 2 - 1


def ada(p: float, ops: tuple[str, ...] = OPS, target: float = 0.6, ada_kimg: float = 500) -> AdaptiveAugment:
    return AdaptiveAugment(batch=32, initial_p=p, ops=ops, target=target, ada_kimg=ada_kimg)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", NAMES)
def test_augment_keeps_shape_dtype_and_device_and_stays_finite(name: str, channels: int) -> None:
    torch.manual_seed(1)
    augment = build_augment(name, batch=8, initial_p=0.7)
    x = images(channels)
    y = augment(x)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_geometric_ops_keep_values_within_the_input_range(channels: int) -> None:
    torch.manual_seed(2)
    x = images(channels, batch=32)
    for y in (ada(0.7, GEOMETRIC_OPS)(x), DiffAugment("translation,cutout")(x)):
        assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", ["diffaugment", "ada"])
def test_gradients_flow_through_the_augmentation_to_the_images(name: str, channels: int) -> None:
    torch.manual_seed(3)
    x = images(channels).requires_grad_()
    weights = torch.randn(x.shape)
    (build_augment(name, batch=8, initial_p=0.7)(x) * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ada_supports_the_double_backward_of_an_r1_penalty() -> None:
    torch.manual_seed(4)
    x = images(3).requires_grad_()
    weight = torch.randn(3, 16, 16, requires_grad=True)  # a one-layer "D"
    logits = (ada(0.7)(x) * weight).sum(dim=(1, 2, 3))
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_ada_at_p_zero_is_the_identity() -> None:
    x = images(3)
    assert torch.equal(ada(0.0)(x), x)


def test_none_is_the_identity_with_probability_zero_and_diffaugment_reports_one() -> None:
    x = images(3)
    assert torch.equal(build_augment("none", batch=8)(x), x)
    assert build_augment("none", batch=8).probability == 0.0
    assert build_augment("diffaugment", batch=8).probability == 1.0


def test_ada_applies_each_op_to_about_a_p_fraction_of_the_images() -> None:
    torch.manual_seed(5)
    x = torch.zeros(4000, 1, 1, 1)
    changed = (ada(0.3, ("brightness",))(x) != 0).float().mean().item()
    assert changed == pytest.approx(0.3, abs=0.03)


def test_ada_xflip_at_p_one_mirrors_half_the_images_exactly() -> None:
    torch.manual_seed(6)
    x = images(3, batch=32)
    y = ada(1.0, ("xflip",))(x)
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(32)]
    kept = [torch.equal(y[i], x[i]) for i in range(32)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 8 <= sum(flipped) <= 24  # each image flips with probability 1/2: Binomial(32, 1/2), 16 +- 8


def test_ada_rotate90_at_p_one_gives_exact_quarter_turns_of_every_angle() -> None:
    torch.manual_seed(7)
    x = images(3, batch=32)
    y = ada(1.0, ("rotate90",))(x)
    turns = set()
    for i in range(32):
        matches = [k for k in range(4) if torch.equal(y[i], torch.rot90(x[i], k, dims=(-2, -1)))]
        assert len(matches) == 1
        turns.add(matches[0])
    assert turns == {0, 1, 2, 3}


def test_ada_integer_translation_moves_pixels_exactly() -> None:
    torch.manual_seed(8)
    x = images(1, batch=16, size=32)
    y = ada(1.0, ("xint",))(x)
    # Away from the reflected border (at most 0.125 * 32 = 4 px) every output pixel is an input pixel.
    inner, interior = y[..., 4:-4, 4:-4], x[..., 4:-4, 4:-4]
    for i in range(16):
        shifts = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if torch.equal(inner[i], x[i, :, 4 - dy : 28 - dy, 4 - dx : 28 - dx])
        ]
        assert len(shifts) == 1
    assert not torch.equal(inner, interior)


@pytest.mark.parametrize("augment", [ada(1.0, ("saturation",)), DiffAugment("saturation")], ids=["ada", "diffaugment"])
def test_saturation_leaves_grey_images_unchanged(augment: Augment) -> None:
    x = images(1)
    assert torch.equal(augment(x), x)


def test_ada_p_rises_at_the_stylegan_rate_while_real_logits_are_all_positive() -> None:
    augment = ada(0.0)  # batch 32, interval 4, ada_kimg 500: each adjustment moves p by 128 / 500_000
    for _ in range(4 * 10 - 1):
        augment.observe_real_logits(torch.full((32, 1), 3.0))
    assert augment.probability == pytest.approx(9 * 128 / 500_000)  # the 10th interval is not complete yet
    augment.observe_real_logits(torch.full((32, 1), 3.0))
    assert augment.probability == pytest.approx(10 * 128 / 500_000)


def test_ada_p_falls_when_real_logits_are_all_negative_and_never_leaves_zero_to_one() -> None:
    augment = ada(0.001)
    for _ in range(4):
        augment.observe_real_logits(torch.full((32,), -1.0))
    assert augment.probability == pytest.approx(0.001 - 128 / 500_000)
    for _ in range(4 * 4):
        augment.observe_real_logits(torch.full((32,), -1.0))
    assert augment.probability == 0.0
    near_one = ada(0.9999, ada_kimg=0.001)
    for _ in range(4):
        near_one.observe_real_logits(torch.ones(32))
    assert 0.9999 < near_one.probability < 1.0


def test_ada_p_holds_still_when_the_heuristic_equals_the_target() -> None:
    augment = ada(0.2, target=0.5)
    for _ in range(4):
        augment.observe_real_logits(torch.tensor([1.0, 1.0, 1.0, -1.0]))  # r_t = 0.5
    assert augment.probability == 0.2


def test_ada_under_torchrun_adapts_p_from_every_ranks_logits() -> None:
    # Rank 0 sees all-positive logits, rank 1 all-negative (stood in for by the all-reduce): globally r_t = 0,
    # below the target, so p must fall, although rank 0 alone would raise it.
    other_rank = torch.full((16,), -1.0)
    ranked = AdaptiveAugment(batch=32, initial_p=0.5, sum_over_ranks=lambda signs: signs + other_rank.sign().sum(),
                             world_size=2)
    alone = AdaptiveAugment(batch=32, initial_p=0.5)
    for augment in (ranked, alone):
        for _ in range(4):
            augment.observe_real_logits(torch.full((16,), 2.0))
    assert ranked.probability == pytest.approx(0.5 - 128 / 500_000)
    assert alone.probability == pytest.approx(0.5 + 128 / 500_000)
    assert ranked.state_dict()["sign_sum"] == 0 and ranked.state_dict()["steps"] == 0


def test_ada_state_round_trips_through_json_mid_interval_and_resumes_identically() -> None:
    first = ada(0.3)
    logits = torch.linspace(-1, 2, 32)
    for _ in range(6):  # 1.5 intervals: half an interval's signs are pending
        first.observe_real_logits(logits)
    state = json.loads(json.dumps(first.state_dict()))
    assert state["steps"] == 2 and state["sign_sum"] != 0.0
    second = ada(0.0)
    second.load_state_dict(state)
    x = images(3)
    torch.manual_seed(9)
    expected = first(x)
    torch.manual_seed(9)
    assert torch.equal(second(x), expected)
    for augment in (first, second):
        for _ in range(2):
            augment.observe_real_logits(logits)
    assert second.probability == first.probability != 0.3
    assert second.state_dict() == first.state_dict()


def test_loading_another_augmentations_state_is_a_checkpoint_error() -> None:
    with pytest.raises(CheckpointError, match="--augment none"):
        build_augment("none", batch=8).load_state_dict(ada(0.1).state_dict())


def test_diffaugment_translation_shifts_by_up_to_an_eighth_with_zero_fill() -> None:
    torch.manual_seed(10)
    x = images(3, batch=16) * 0.5 + 0.5  # strictly positive, so the zero fill is visible
    y = DiffAugment("translation")(x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))  # 16 px: shifts of at most 2
    moved = 0
    for i in range(16):
        shifts = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(y[i], padded[i, :, 2 - dy : 18 - dy, 2 - dx : 18 - dx])
        ]
        assert len(shifts) == 1
        moved += shifts[0] != (0, 0)
    assert moved > 8


def test_diffaugment_cutout_zeroes_one_rectangle_of_at_most_half_each_side() -> None:
    torch.manual_seed(11)
    x = images(3, batch=16) * 0.5 + 0.5
    y = DiffAugment("cutout")(x)
    for i in range(16):
        cut = (y[i] == 0).all(dim=0)
        rows, cols = cut.any(dim=1).nonzero().flatten(), cut.any(dim=0).nonzero().flatten()
        assert 4 <= len(rows) <= 8 and 4 <= len(cols) <= 8  # the rectangle's centre lies inside the image
        assert cut.sum() == len(rows) * len(cols)  # one solid rectangle
        assert torch.equal(y[i][:, ~cut], x[i][:, ~cut])


def test_unknown_augmentation_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="--augment.*none, diffaugment, ada"):
        build_augment("adda", batch=8)


def test_unknown_diffaugment_policy_op_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="color, brightness"):
        build_augment("diffaugment", batch=8, policy="color,rotation")


def test_preview_grid_puts_each_real_before_its_augmented_copies() -> None:
    torch.manual_seed(12)
    reals = (torch.rand(3, 3, 16, 16) * 255).to(torch.uint8)
    grid = preview_grid(reals, build_augment("diffaugment", batch=3), copies=4)
    assert grid.shape == (3 * 5, 3, 16, 16) and grid.dtype == torch.uint8
    assert all(torch.equal(grid[5 * i], reals[i]) for i in range(3))
    assert not torch.equal(grid[1], reals[0])


def test_ada_on_non_square_images_keeps_the_shape_and_turns_only_by_half_circles() -> None:
    torch.manual_seed(13)
    x = torch.rand(16, 3, 8, 12)
    y = ada(1.0, ("rotate90",))(x)
    assert y.shape == x.shape
    assert all(torch.equal(y[i], x[i]) or torch.equal(y[i], torch.rot90(x[i], 2, dims=(-2, -1))) for i in range(16))
    assert ada(0.7)(x).shape == x.shape
