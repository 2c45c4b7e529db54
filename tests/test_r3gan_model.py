"""R3GAN's networks: any square power-of-two store, identity residual blocks at init (fix-up), the paper's widths
at the recipe's width, labels that reach G and D, and gradients that R1 and R2 can take twice."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganforge.config import ModelConfig, TrainConfig, apply_overrides
from ganforge.errors import ConfigError
from ganforge.models import MODELS, r3gan, validate
from ganforge.recipes.presets import PRESETS, resolve_overrides

TINY = {"name": "r3gan", "z_dim": 16, "g_width": 8, "d_width": 8}


def tiny(shape: tuple[int, int, int] = (3, 16, 16), **changes) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return r3gan.build(ModelConfig(**{**TINY, **changes}), shape)


@pytest.mark.parametrize("shape", [(3, 16, 16), (1, 16, 16), (3, 32, 32), (1, 32, 32), (3, 64, 64), (1, 8, 8)])
def test_generator_draws_the_store_shape_and_discriminator_gives_one_finite_logit_per_image(shape):
    G, D = tiny(shape)
    images = G(torch.randn(5, 16))
    assert images.shape == (5, *shape)
    assert 0.05 < images.std().item() < 2  # unsquashed, but on the scale of [-1, 1] images from the start
    logits = D(images)
    assert logits.shape == (5,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("shape", [(3, 48, 48), (1, 28, 28), (3, 64, 32), (3, 4, 4), (3, 2048, 2048)])
def test_shapes_r3gan_cannot_draw_are_refused_naming_sizes_that_work(shape):
    with pytest.raises(ConfigError, match=r"power-of-two side from 8 to 1024 px \(e\.g\. 32, 64 or 256\)"):
        r3gan.build(ModelConfig(**TINY), shape)


def test_every_residual_block_starts_as_the_identity_and_the_networks_still_respond_to_their_inputs():
    G, D = tiny((3, 32, 32))
    blocks = [m for net in (G, D) for m in net.modules() if isinstance(m, r3gan.ResidualBlock)]
    assert len(blocks) == 2 * 2 * 4  # two blocks per stage at 4, 8, 16 and 32 px, in G and in D
    seen: list[bool] = []
    hooks = [block.register_forward_hook(lambda m, args, out: seen.append(torch.equal(out, args[0])))
             for block in blocks]
    z = torch.randn(4, 16)
    images = G(z)
    logits = D(images)
    for hook in hooks:
        hook.remove()
    assert seen == [True] * len(blocks)
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(logits[0], logits[1])


def test_fixup_scales_the_branch_convs_by_the_number_of_blocks_to_the_minus_one_quarter():
    G, _ = tiny((3, 64, 64), g_width=32)  # 5 stages: L = 10 blocks
    block = next(m for m in G.modules() if isinstance(m, r3gan.ResidualBlock))
    expected = r3gan.LRELU_GAIN * 10 ** -0.25 / block.expand.weight[0].numel() ** 0.5
    assert block.expand.weight.std().item() == pytest.approx(expected, rel=0.05)
    assert block.project.bias is None and not block.project.weight.any()


def test_the_recipe_width_builds_the_papers_ffhq_networks():
    assert r3gan.stage_widths(96, 64) == [768, 768, 768, 768, 384]  # FFHQ-64
    assert r3gan.stage_widths(96, 256) == [768, 768, 768, 768, 384, 192, 96]  # FFHQ-256
    with torch.device("meta"):
        G, D = r3gan.build(ModelConfig(name="r3gan", z_dim=64, g_width=96, d_width=96), (3, 64, 64))
    grouped = next(m for m in G.modules() if isinstance(m, r3gan.ResidualBlock)).grouped
    assert (grouped.in_channels, grouped.groups) == (1536, 96)  # expansion 2, cardinality 96: 16 per group
    for net in (G, D):
        assert 20e6 < sum(p.numel() for p in net.parameters()) < 25e6


def test_narrow_widths_keep_a_group_count_that_divides_the_channels():
    assert [r3gan.cardinality(c) for c in (8, 24, 40, 48, 1536)] == [1, 1, 2, 3, 96]
    G, D = tiny((3, 16, 16), g_width=3, d_width=5)
    assert G(torch.randn(2, 16)).shape == (2, 3, 16, 16) and D(torch.zeros(2, 3, 16, 16)).shape == (2,)


def test_conditional_generator_and_discriminator_follow_the_labels_and_need_them():
    G, D = tiny((3, 16, 16), conditional=True, num_classes=4)
    z = torch.randn(2, 16)
    first = G(z, torch.tensor([0, 0]))
    assert not torch.allclose(first, G(z, torch.tensor([3, 3])))
    assert not torch.allclose(D(first, torch.tensor([0, 0])), D(first, torch.tensor([3, 3])))
    for call in (lambda: G(z), lambda: D(first)):
        with pytest.raises(ValueError, match="labels"):
            call()


def test_r1_and_r2_can_differentiate_the_discriminator_twice():
    _, D = tiny((3, 16, 16))
    images = torch.randn(3, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(D(images).sum(), images, create_graph=True)
    grad.square().sum().backward()
    grads = [p.grad for p in D.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_a_few_relativistic_steps_teach_d_to_rank_reals_above_fakes_and_g_to_fit_a_target():
    G, D = tiny((1, 16, 16))
    reals = torch.linspace(-1, 1, 16).expand(4, 1, 16, 16)  # a horizontal ramp, unlike G's starting blobs
    z = torch.randn(4, 16)
    fakes = G(z).detach()
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.9))

    def d_loss() -> torch.Tensor:
        return F.softplus(D(fakes) - D(reals)).mean()

    before = d_loss().item()
    for _ in range(10):
        opt_d.zero_grad()
        d_loss().backward()
        opt_d.step()
    assert d_loss().item() < 0.5 * before

    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.9))
    first = F.mse_loss(G(z), reals).item()
    for _ in range(10):
        opt_g.zero_grad()
        F.mse_loss(G(z), reals).backward()
        opt_g.step()
    assert F.mse_loss(G(z), reals).item() < 0.5 * first


def test_the_family_is_registered_with_the_papers_recipe_and_refuses_flags_it_would_ignore():
    assert MODELS["r3gan"] is r3gan.FAMILY and r3gan.FAMILY.conditional
    description, overrides = PRESETS["r3gan"]
    assert "Huang" in description
    assert resolve_overrides(None, {("model", "name"): "r3gan"}) == overrides  # --model r3gan alone: the recipe
    config = apply_overrides(TrainConfig(), {**overrides, ("model", "g_width"): 16, ("model", "d_width"): 16})
    assert validate(config) is r3gan.FAMILY
    assert (config.loss.name, config.loss.r1_gamma, config.loss.r2_gamma, config.loss.r1_every) == ("rpgan", 2, 2, 1)
    for flag in ({"spectral_norm": True}, {"mbstd": True}, {"fmap_base": 1024}):
        with pytest.raises(ConfigError, match="--model r3gan does not use"):
            validate(TrainConfig(model=ModelConfig(**TINY, **flag)))
