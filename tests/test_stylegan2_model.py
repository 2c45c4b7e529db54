"""StyleGAN2's networks: (de)modulation keeps unit variance, style mixing and truncation in W do what the papers
say, shapes are refused in one line, and the parameter counts match the architecture as published."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.stylegan2 import mix_styles, networks
from ganforge.models.stylegan2_layers import ModulatedConv2d

TINY = ModelConfig(name="stylegan2", z_dim=32, fmap_base=256, fmap_max=32)


def tiny(shape: tuple[int, int, int] = (3, 16, 16), **changes) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    config = ModelConfig(**{**TINY.__dict__, **changes})
    return networks(config, shape)


@pytest.mark.parametrize("seed", range(6))
def test_demodulation_gives_unit_output_variance_for_unit_input_whatever_the_style(seed: int) -> None:
    torch.manual_seed(seed)
    conv = ModulatedConv2d(64, 48, 3, w_dim=16)
    with torch.no_grad():  # styles spread over orders of magnitude: the scale must not reach the output
        conv.affine.weight.mul_(torch.rand(()) * 20)
        conv.affine.bias.add_(torch.randn(64) * 5)
        conv.weight.mul_(torch.rand(48, 64, 1, 1) * 4)
        x, w = torch.randn(16, 64, 34, 34), torch.randn(16, 16) * 3
        y = conv(x, w)[:, :, 1:-1, 1:-1]  # interior: the zero padding lowers the border's variance
    variance = y.var(dim=(2, 3))  # per sample and output map
    assert variance.mean().item() == pytest.approx(1.0, abs=0.05)
    assert (variance - 1).abs().max().item() < 0.35


def test_a_batch_and_its_samples_one_by_one_and_the_traced_export_agree() -> None:
    """A batch modulates the activations, one sample its weight, an export traces the batch form: one function."""
    torch.manual_seed(0)
    for up in (False, True):
        conv = ModulatedConv2d(8, 6, 3, w_dim=5, up=up)
        x, w = torch.randn(3, 8, 8, 8), torch.randn(3, 5)
        one_by_one = torch.cat([conv(x[i:i + 1], w[i:i + 1]) for i in range(3)])
        torch.testing.assert_close(conv(x, w), one_by_one, rtol=1e-5, atol=1e-5)
        traced = torch.jit.trace(conv, (x[:1], w[:1]))
        torch.testing.assert_close(traced(x, w), one_by_one, rtol=1e-5, atol=1e-5)


def test_style_mixing_with_the_same_w_twice_is_no_mixing() -> None:
    generator, _ = tiny()
    generator.eval()
    ws = generator.styles(torch.randn(4, 32))
    for cutoff in range(generator.num_ws + 1):
        layers = torch.arange(generator.num_ws) >= cutoff
        torch.testing.assert_close(generator.synthesis(mix_styles(ws, ws, layers)), generator.synthesis(ws),
                                   rtol=0, atol=0)
    other = generator.styles(torch.randn(4, 32))
    mixed = mix_styles(ws, other, torch.arange(generator.num_ws) >= 2)
    assert torch.equal(mixed[:, :2], ws[:, :2]) and torch.equal(mixed[:, 2:], other[:, 2:])


def test_truncation_psi_1_is_the_identity_and_psi_0_gives_the_w_average_image_for_every_seed() -> None:
    generator, _ = tiny()
    generator.train()
    generator(torch.randn(16, 32))  # one training call moves w_avg off zero
    generator.eval()
    assert generator.w_avg.abs().sum() > 0
    z = torch.randn(5, 32)
    assert torch.equal(generator(z, psi=1.0), generator(z))
    average = generator.synthesis(generator.w_avg.view(1, 1, -1).expand(1, generator.num_ws, -1))
    at_zero = generator(z, psi=0.0)
    torch.testing.assert_close(at_zero, average.expand_as(at_zero), rtol=0, atol=1e-5)  # float noise only
    half = generator.mapping(z, psi=0.5)
    torch.testing.assert_close(half, generator.w_avg + 0.5 * (generator.mapping(z) - generator.w_avg))


def test_training_mode_tracks_w_avg_mixes_styles_and_draws_noise_evaluation_does_not() -> None:
    generator, _ = tiny()
    z = torch.randn(4, 32)
    generator.eval()
    first = generator(z)
    assert torch.equal(first, generator(z)) and generator.w_avg.abs().sum() == 0  # fixed noise, no tracking
    generator.train()
    generator(z)
    assert generator.w_avg.abs().sum() > 0
    for layer in generator.synthesis.convs:
        layer.noise_strength.data.fill_(1.0)
    assert not torch.equal(generator(z), generator(z))


def test_conditional_networks_take_labels_through_an_embedding() -> None:
    generator, discriminator = tiny(conditional=True, num_classes=3)
    labels = torch.tensor([0, 1, 2, 1])
    images = generator(torch.randn(4, 32), labels)
    assert images.shape == (4, 3, 16, 16) and discriminator(images, labels).shape == (4,)
    generator.eval()
    z = torch.randn(1, 32).expand(2, -1)
    two = generator(z, torch.tensor([0, 2]))
    assert not torch.equal(two[0], two[1])


@pytest.mark.parametrize("shape, message", [((3, 16, 32), "stylegan2 needs square images"),
                                            ((3, 24, 24), "power-of-two resolution from 4 to 1024"),
                                            ((3, 2048, 2048), "power-of-two resolution from 4 to 1024")])
def test_non_square_and_non_power_of_two_stores_are_refused(shape, message) -> None:
    with pytest.raises(ConfigError, match=message):
        networks(TINY, shape)


def paper_counts(resolution: int, fmap_base: int, fmap_max: int = 512, z_dim: int = 512, rgb: int = 3
                 ) -> tuple[int, int]:
    """G's and D's trainable parameters from the paper's layer list (StyleGAN2 Fig. 2 (d), Fig. 7 (b), (c)),
    written out here without the model code."""
    w = z_dim
    levels = [4 * 2**i for i in range(resolution.bit_length() - 2)]  # 4, 8, ..., resolution
    ch = {r: min(fmap_max, fmap_base // r) for r in levels}
    dense = lambda fan_in, fan_out: fan_in * fan_out + fan_out  # noqa: E731 (weight and bias)
    modconv = lambda cin, cout, k: dense(w, cin) + cout * cin * k * k + cout + 1  # noqa: E731 (A, conv, B, noise)
    to_rgb = lambda cin: dense(w, cin) + rgb * cin + rgb  # noqa: E731
    g = 8 * dense(w, w) + ch[4] * 16 + modconv(ch[4], ch[4], 3) + to_rgb(ch[4])
    for r in levels[1:]:
        g += modconv(ch[r // 2], ch[r], 3) + modconv(ch[r], ch[r], 3) + to_rgb(ch[r])
    d = dense(rgb, ch[resolution])  # fromRGB 1x1
    for r in levels[1:]:
        cin, cout = ch[r], ch[r // 2]
        d += dense(cin * 9, cin) + dense(cin * 9, cout) + cin * cout  # two 3x3 convs, 1x1 skip without bias
    d += dense((ch[4] + 1) * 9, ch[4]) + dense(ch[4] * 16, ch[4]) + dense(ch[4], 1)  # mbstd conv, fc, output
    return g, d


def counted(config: ModelConfig, shape: tuple[int, int, int]) -> tuple[int, int]:
    with torch.device("meta"):
        generator, discriminator = networks(config, shape)
    return tuple(sum(p.numel() for p in net.parameters() if p.requires_grad) for net in (generator, discriminator))


def test_parameter_counts_match_the_published_architecture() -> None:
    config_f = ModelConfig(name="stylegan2", z_dim=512, fmap_base=32768, fmap_max=512)
    g, d = paper_counts(1024, 32768)
    assert counted(config_f, (3, 1024, 1024)) == (g, d)
    assert (round(g / 1e6), round(d / 1e6)) == (30, 29)  # Sec. 4.2: config F, "30M" and "29M" at 1024 px
    config_e = ModelConfig(name="stylegan2", z_dim=512, fmap_base=16384, fmap_max=512)
    assert tuple(round(n / 1e6) for n in counted(config_e, (3, 1024, 1024))) == (25, 24)  # config E
    for resolution in (4, 16, 256):
        assert counted(TINY, (1, resolution, resolution)) == paper_counts(resolution, 256, 32, 32, rgb=1)


def test_summary_prints_the_layer_tables_with_the_papers_totals() -> None:
    result = CliRunner().invoke(main, ["train", "--model", "stylegan2", "--resolution", "1024", "--summary"])
    assert result.exit_code == 0, result.output
    assert "Generator at 1024x1024 px (18 ws)" in result.output and "ModConv 3x3 up" in result.output
    assert "30,370,060    30.4M" in result.output and "29,012,513    29.0M" in result.output
