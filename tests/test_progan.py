"""Progressive GAN: Table 2's architecture and counts, growing with fade-in, and the growing schedule."""

import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import progan
from ganforge.models.growing import DEFAULT_BATCH_BY_RESOLUTION, FixedSchedule, GrowingSchedule, build_schedule
from ganforge.models.progan import ProganDiscriminator, ProganGenerator, layer_table
from ganforge.models.progan_layers import EqualizedConv2d, EqualizedLinear, PixelNorm, paper_count

# The paper's App. A.1 (and the original Theano config): 16 up to 128 px, then 14, 6 and 3 for memory.
PAPER_BATCH_BY_RESOLUTION = {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3}

PAPER = ModelConfig(name="progan", z_dim=512, mbstd=True)
RESOLUTIONS = [4, 8, 16, 32, 64, 128]


def paper_networks(resolution=1024):
    with torch.device("meta"):  # counts and shapes only
        return progan.build(PAPER, (3, resolution, resolution))


def small_networks(resolution=128, seed=0):
    torch.manual_seed(seed)
    return (ProganGenerator(3, resolution, z_dim=16, fmap_base=256, fmap_max=16),
            ProganDiscriminator(3, resolution, fmap_base=256, fmap_max=16))


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# Seed 000's Table 2 (issue 4), rounded as the paper prints it.
G_TABLE = ["4.2M", "2.4M"] + ["2.4M"] * 6 + ["1.2M", "590k", "295k", "148k", "74k", "37k", "18k", "9.2k", "4.6k",
                                              "2.3k", "51"]
D_TABLE = ["64", "2.3k", "4.6k", "9.2k", "18k", "37k", "74k", "148k", "295k", "590k", "1.2M"] + ["2.4M"] * 6 + [
    "2.4M", "4.2M", "513"]


def test_generator_at_1024_px_has_the_papers_23_1m_trainable_parameters():
    generator, _ = paper_networks()
    rows = generator.layer_rows()
    assert [paper_count(r.params) for r in rows if r.params] == G_TABLE
    assert sum(r.params for r in rows) == 23_071_507  # the table: the network as it runs at 1024 px
    assert trainable(generator) == 23_071_507 + 7_608  # + toRGB of 4..512 px, which growing uses
    assert paper_count(trainable(generator)) == "23.1M"
    assert rows[0].shape == (512, 1, 1) and rows[1].shape == (512, 4, 4) and rows[-1].shape == (3, 1024, 1024)
    assert [r.shape[0] for r in rows if r.name == "Conv 3x3"][-2:] == [16, 16]


def test_discriminator_at_1024_px_mirrors_the_papers_table():
    _, discriminator = paper_networks()
    rows = discriminator.layer_rows()
    assert [paper_count(r.params) for r in rows if r.params] == D_TABLE
    assert rows[1].shape == (16, 1024, 1024)  # fromRGB: 16 channels, 64 parameters
    assert [r.shape for r in rows if r.name == "Minibatch stddev"] == [(513, 4, 4)]
    assert rows[-2].shape == (512, 1, 1) and rows[-1].shape == (1, 1, 1)
    assert sum(r.params for r in rows) == 23_077_137
    assert paper_count(trainable(discriminator)) == "23.1M"


def test_paper_networks_at_128_px_and_the_summary_table():
    generator, discriminator = paper_networks(128)
    assert (trainable(generator), trainable(discriminator)) == (22_933_394, 22_941_313)
    text = progan.summary(PAPER, (3, 1024, 1024))
    assert "Generator at 1024x1024 px" in text and "Discriminator at 1024x1024 px" in text
    assert "23,071,507  23.1M" in text and "23,077,137  23.1M" in text
    assert "4,194,816   4.2M" in text and "Minibatch stddev" in text
    assert "Generator at 16x16 px" in layer_table(generator, 16)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_networks_run_at_every_resolution_they_are_set_to(resolution):
    generator, discriminator = small_networks()
    generator.set_phase(resolution, 0.5)  # fading runs both the new and the previous resolution's layers
    discriminator.set_phase(resolution, 0.5)
    images = generator(torch.randn(2, 16))
    assert images.shape == (2, 3, resolution, resolution)
    assert discriminator(images).shape == (2,)


@pytest.mark.parametrize("resolution", [8, 32, 128])
def test_generator_fade_in_starts_at_the_upsampled_lower_resolution_output(resolution):
    generator, _ = small_networks()
    z = torch.randn(4, 16)
    generator.set_phase(resolution // 2, 1.0)
    lower = generator(z)
    generator.set_phase(resolution, 0.0)
    assert torch.equal(generator(z), F.interpolate(lower, scale_factor=2, mode="nearest"))


def test_generator_old_torgb_has_no_influence_once_faded_in():
    generator, _ = small_networks()
    z = torch.randn(4, 16)
    generator.set_phase(32, 1.0)
    before = generator(z)
    with torch.no_grad():
        generator.to_rgb[2].weight.add_(5.0)
    after = generator(z)
    assert torch.equal(before, after)
    after.square().mean().backward()
    assert generator.to_rgb[2].weight.grad is None and generator.to_rgb[3].weight.grad is not None


def test_generator_fade_blends_both_torgbs_and_both_get_gradients():
    generator, _ = small_networks()
    z = torch.randn(4, 16)
    generator.set_phase(16, 0.25)
    blended = generator(z)
    generator.set_phase(16, 1.0)
    new = generator(z)
    generator.set_phase(16, 0.0)
    old = generator(z)
    torch.testing.assert_close(blended, 0.25 * new + 0.75 * old)
    generator.set_phase(16, 0.25)
    generator(z).square().mean().backward()
    assert generator.to_rgb[1].weight.grad.abs().sum() > 0 and generator.to_rgb[2].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("resolution", [8, 32, 128])
def test_discriminator_fade_in_starts_at_the_lower_resolution_on_pooled_images(resolution):
    _, discriminator = small_networks()
    images = torch.randn(8, 3, resolution, resolution)
    discriminator.set_phase(resolution // 2, 1.0)
    lower = discriminator(F.avg_pool2d(images, 2))
    discriminator.set_phase(resolution, 0.0)
    assert torch.equal(discriminator(images), lower)


def test_discriminator_old_fromrgb_has_no_influence_once_faded_in():
    _, discriminator = small_networks()
    images = torch.randn(8, 3, 32, 32)
    discriminator.set_phase(32, 1.0)
    before = discriminator(images)
    with torch.no_grad():
        discriminator.from_rgb[2].weight.add_(5.0)
    assert torch.equal(discriminator(images), before)


def test_discriminator_rejects_images_at_another_resolution():
    _, discriminator = small_networks()
    discriminator.set_phase(16, 1.0)
    with pytest.raises(ValueError, match="prepare_reals"):
        discriminator(torch.randn(4, 3, 128, 128))


def test_equalized_layers_draw_unit_normal_weights_and_scale_by_he_constant_at_run_time():
    torch.manual_seed(0)
    conv = EqualizedConv2d(256, 256, 3)
    assert abs(conv.weight.mean().item()) < 0.01 and abs(conv.weight.std().item() - 1) < 0.01
    assert conv.scale == pytest.approx(math.sqrt(2 / (256 * 9)))
    x = torch.randn(2, 256, 4, 4)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * math.sqrt(2 / 2304), padding=1))
    generator, discriminator = small_networks()
    layers = [m for m in [*generator.modules(), *discriminator.modules()]
              if isinstance(m, (EqualizedConv2d, EqualizedLinear))]
    linear_outputs = {*generator.to_rgb, discriminator.blocks[0].out}  # gain 1: no nonlinearity follows
    for layer in layers:
        gain = 1.0 if layer in linear_outputs else math.sqrt(2)
        assert layer.scale == pytest.approx(gain / math.sqrt(layer.fan_in))
        assert layer.bias is None or not layer.bias.any()
    # G's first layer is the paper's 4x4 conv on the padded latent: fan-in 16 * z_dim.
    assert generator.blocks[0].dense.fan_in == 16 * 16 and not generator.blocks[0].dense_bias.any()


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(4, 32, 8, 8) * (torch.rand(4, 1, 8, 8) * 10 + 0.1)
    torch.testing.assert_close(PixelNorm()(x).square().mean(dim=1), torch.ones(4, 8, 8))
    generator, _ = small_networks()
    features = generator.blocks[0](torch.randn(4, 16) * 3)  # the latent is normalised too
    torch.testing.assert_close(features.square().mean(dim=1), torch.ones(4, 4, 4))


def test_build_rejects_resolutions_progan_cannot_grow_to():
    for shape in [(3, 96, 96), (3, 2048, 2048), (3, 2, 2)]:
        with pytest.raises(ConfigError, match="power-of-two"):
            progan.build(PAPER, shape)
    with pytest.raises(ConfigError, match="square"):
        progan.build(PAPER, (3, 64, 128))
    generator, _ = small_networks(8)
    with pytest.raises(ConfigError):
        generator.set_phase(16, 1.0)
    with pytest.raises(ConfigError):
        generator.set_phase(8, 1.5)
    with pytest.raises(ConfigError, match="power-of-two"):
        GrowingSchedule(96)


def test_schedule_phases_follow_the_original_lod_schedule():
    schedule = GrowingSchedule(128)  # 600 kimg fade-in and 600 kimg stabilisation per doubling
    cases = {  # cur_nimg: (index, resolution, alpha, fading, lod, batch)
        0: (0, 4, 1.0, False, 5.0, 128),
        599_999: (0, 4, 1.0, False, 5.0, 128),
        600_000: (1, 8, 0.0, True, 5.0, 128),
        900_000: (1, 8, 0.5, True, 4.5, 128),
        1_200_000: (2, 8, 1.0, False, 4.0, 128),
        2_250_000: (3, 16, 0.75, True, 3.25, 128),
        3_600_000: (6, 32, 1.0, False, 2.0, 64),
        4_200_000: (7, 64, 0.0, True, 2.0, 32),
        5_400_000: (9, 128, 0.0, True, 1.0, 16),
        6_000_000: (10, 128, 1.0, False, 0.0, 16),
        50_000_000: (10, 128, 1.0, False, 0.0, 16),
    }
    for nimg, (index, resolution, alpha, fading, lod, batch) in cases.items():
        phase = schedule.phase_at(nimg)
        assert (phase.index, phase.resolution, phase.fading, phase.batch) == (index, resolution, fading, batch), nimg
        assert phase.alpha == pytest.approx(alpha) and phase.lod == pytest.approx(lod), nimg
    assert GrowingSchedule.log_fields(schedule.phase_at(900_000)) == {"lod": 4.5, "resolution": 8, "alpha": 0.5,
                                                                       "minibatch": 128}


def test_schedule_lengths_batches_and_phase_starts_are_configurable():
    schedule = GrowingSchedule(32, fade_kimg=1, stable_kimg=2, batch_by_resolution=PAPER_BATCH_BY_RESOLUTION,
                               max_batch=8)
    starts = [0, 2000, 3000, 5000, 6000, 8000, 9000]  # 4x4 for 2 kimg, then fade-ins of 1 and stabilisations of 2
    assert len(starts) == schedule.num_phases
    for index, start in enumerate(starts):
        assert schedule.phase_at(start).index == index
        assert start == 0 or schedule.phase_at(start - 1).index == index - 1
    assert schedule.phase_at(0).batch == 8  # the paper's 16, capped
    assert GrowingSchedule(1024, batch_by_resolution=PAPER_BATCH_BY_RESOLUTION).phase_at(10**9).batch == 3
    assert DEFAULT_BATCH_BY_RESOLUTION[1024] == 4 and DEFAULT_BATCH_BY_RESOLUTION[4] == 128
    no_fade = GrowingSchedule(16, fade_kimg=0, stable_kimg=1)
    assert [no_fade.phase_at(n).resolution for n in (999, 1000, 1999, 2000)] == [4, 8, 8, 16]
    assert not any(no_fade.phase_at(n).fading for n in range(0, 3000, 250))
    with pytest.raises(ConfigError, match="lack"):
        GrowingSchedule(64, batch_by_resolution={4: 16, 8: 16})


def test_the_phase_index_changes_at_each_fade_in_and_stabilisation_start():
    # The loop resets Adam's moments whenever the phase index changes, as the original does at each lod change.
    schedule = GrowingSchedule(16, fade_kimg=1, stable_kimg=1)
    phases = [(n, schedule.phase_at(n)) for n in range(0, 6000, 100)]
    changes = [n for (_, prev), (n, cur) in zip(phases, phases[1:], strict=False) if prev.index != cur.index]
    assert changes == [1000, 2000, 3000, 4000]


def test_build_schedule_grows_only_for_growing_families():
    assert isinstance(build_schedule(False, 64, 32, 600, 600), FixedSchedule)
    fixed = build_schedule(False, 64, 32, 600, 600).phase_at(10**6)
    assert (fixed.resolution, fixed.alpha, fixed.batch) == (64, 1.0, 32)
    growing = build_schedule(True, 64, 32, 1, 1)
    assert growing.phase_at(0).resolution == 4 and growing.phase_at(0).batch == 32  # 128 at 4 px, capped


def test_prepare_reals_downsamples_and_blends_like_the_generator():
    schedule = GrowingSchedule(32, fade_kimg=1, stable_kimg=1)
    images = torch.randn(4, 3, 32, 32)
    for nimg in range(0, 8000, 500):
        phase = schedule.phase_at(nimg)
        assert schedule.prepare_reals(images, phase).shape == (4, 3, phase.resolution, phase.resolution)
    stable_8 = schedule.phase_at(2500)
    torch.testing.assert_close(schedule.prepare_reals(images, stable_8), F.avg_pool2d(images, 4))
    start_16 = schedule.phase_at(3000)  # alpha 0: exactly the 8 px reals, nearest-upsampled
    assert start_16.fading and start_16.alpha == 0.0
    torch.testing.assert_close(schedule.prepare_reals(images, start_16),
                               F.interpolate(F.avg_pool2d(images, 4), scale_factor=2, mode="nearest"))
    mid_16 = schedule.phase_at(3250)
    sharp, blurred = F.avg_pool2d(images, 2), F.interpolate(F.avg_pool2d(images, 4), scale_factor=2)
    torch.testing.assert_close(schedule.prepare_reals(images, mid_16), 0.25 * sharp + 0.75 * blurred)
    with pytest.raises(ValueError):
        schedule.prepare_reals(torch.randn(4, 3, 16, 16), mid_16)


def test_apply_sets_every_network_and_one_fading_step_trains():
    generator, discriminator = small_networks(32)
    ema = progan.ProganGenerator(3, 32, z_dim=16, fmap_base=256, fmap_max=16)
    schedule = GrowingSchedule(32, fade_kimg=1, stable_kimg=1)
    phase = schedule.phase_at(3500)
    schedule.apply(generator, discriminator, phase, ema)
    assert all((n.resolution, n.alpha) == (16, 0.5) for n in (generator, discriminator, ema))
    reals = schedule.prepare_reals(torch.rand(4, 3, 32, 32) * 2 - 1, phase)
    loss = discriminator(generator(torch.randn(4, 16))).mean() - discriminator(reals).mean()
    loss.backward()
    assert all(p.grad is not None for p in discriminator.from_rgb[1:3].parameters())
    with pytest.raises(ConfigError, match="cannot grow"):
        schedule.apply(torch.nn.Linear(2, 2), discriminator, phase)
