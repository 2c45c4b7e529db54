"""Memorisation check: generated samples that are training images are found at distance 0 and flagged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data.store import Store
from ganforge.metrics import load_extractor
from ganforge.metrics.memorization import memorization_report

from data_slices import idx_images, make_store, slice_store

TRAIN = 400


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return slice_store(tmp_path_factory.mktemp("train") / "train.gfs", "mnist", "train", 0, TRAIN)


def test_copies_of_training_images_are_at_distance_zero_and_flagged(train: Store, tmp_path: Path) -> None:
    copied = [3, 77, 150, 222, 399]
    generated = np.concatenate([idx_images("mnist", "train", 0, TRAIN)[copied], idx_images("mnist", "t10k", 0, 45)])
    heldout = slice_store(tmp_path / "heldout.gfs", "mnist", "t10k", 1000, 1200)
    summary = memorization_report(make_store(tmp_path / "gen.gfs", generated), train,
                                  load_extractor("random-conv"), tmp_path / "report", heldout=heldout,
                                  n_train=TRAIN, n_heldout=200, rows=6)
    assert summary.n_generated == 50 and summary.baseline == "held-out"
    first = summary.closest[:5]
    assert sorted(row["sample"] for row in first) == [0, 1, 2, 3, 4]
    assert sorted(row["neighbours"][0] for row in first) == copied
    assert all(row["distances"][0] == 0.0 and row["suspicious"] for row in first)
    assert summary.n_suspicious >= 5
    assert 0.5 < summary.median_ratio < 2.0  # the other 45 are ordinary unseen digits


def test_report_writes_the_pairs_and_histogram_pngs(train: Store, tmp_path: Path) -> None:
    summary = memorization_report(slice_store(tmp_path / "gen.gfs", "mnist", "t10k", 0, 20), train,
                                  load_extractor("random-conv"), tmp_path, n_train=TRAIN, n_heldout=100, rows=4,
                                  neighbours=3)
    assert summary.baseline == "train-leave-one-out" and summary.n_real_baseline == 100
    with Image.open(summary.pairs_png) as pairs:
        # 4 rows of sample + 3 neighbours; MNIST's 28 px cells are enlarged 3x to 84 px, plus a label strip
        assert pairs.height == 4 * (84 + 14 + 4) and pairs.width > 4 * 84
    with Image.open(summary.histogram_png) as histogram:
        assert histogram.size == (720, 400)
    assert set(summary.to_dict()) >= {"median_ratio", "fraction_suspicious", "suspicious_threshold"}


def test_generated_images_from_a_callable_are_the_ones_drawn(train: Store, tmp_path: Path) -> None:
    images = torch.from_numpy(idx_images("mnist", "train", 0, 16))

    def fake_batches(batch_size: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]

    summary = memorization_report(fake_batches, train, load_extractor("random-conv"), tmp_path, n_generated=16,
                                  n_train=TRAIN, n_heldout=100, batch_size=5)
    assert summary.fraction_suspicious == 1.0  # all 16 are training images
    assert [row["sample"] for row in summary.closest] == [row["neighbours"][0] for row in summary.closest]


def test_a_second_report_on_the_same_store_reads_the_train_features_from_the_cache(train: Store,
                                                                                    tmp_path: Path) -> None:
    extractor = load_extractor("random-conv")
    seen = []
    extract = extractor.extract
    extractor.extract = lambda images: (seen.append(images.shape[0]), extract(images))[1]  # type: ignore[method-assign]
    generated = slice_store(tmp_path / "gen.gfs", "mnist", "t10k", 0, 20)
    first = memorization_report(generated, train, extractor, tmp_path / "a", n_train=TRAIN, n_heldout=50,
                                cache_dir=tmp_path / "cache")
    passes_first, seen[:] = sum(seen), []
    second = memorization_report(generated, train, extractor, tmp_path / "b", n_train=TRAIN, n_heldout=50,
                                 cache_dir=tmp_path / "cache")
    assert passes_first == TRAIN + 20 and sum(seen) == 0  # the generated store is cached too: it has a fingerprint
    assert second.median_ratio == first.median_ratio


def test_features_extracted_before_are_reused_and_give_the_same_report(train: Store, tmp_path: Path) -> None:
    images = torch.from_numpy(idx_images("mnist", "train", 0, 16))

    def fake_batches(batch_size: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]

    extractor = load_extractor("random-conv")
    extract = extractor.extract
    seen: list[int] = []
    extractor.extract = lambda images: (seen.append(images.shape[0]), extract(images))[1]  # type: ignore[method-assign]
    kwargs = {"n_generated": 16, "n_train": TRAIN, "n_heldout": 100, "batch_size": 5, "use_cache": False}
    fresh = memorization_report(fake_batches, train, extractor, tmp_path / "a", **kwargs)  # type: ignore[arg-type]
    seen[:] = []
    features = extractor.extract(images)[0]
    given = memorization_report(fake_batches, train, extractor, tmp_path / "b", generated_features=features,
                                **kwargs)  # type: ignore[arg-type]
    assert sum(seen) == 16 + TRAIN  # the 16 above, then only the training images: no generated image again
    assert given.to_dict() | {"pairs_png": "", "histogram_png": ""} == fresh.to_dict() | {"pairs_png": "",
                                                                                          "histogram_png": ""}
    assert (tmp_path / "b" / "nearest_neighbours.png").is_file()  # drawn from the images, not the features
    for wrong in (features[:8], features[:, :10], features[0]):  # too few rows, another network's, not a matrix
        with pytest.raises(ValueError, match="n_generated"):
            memorization_report(fake_batches, train, extractor, tmp_path / "c", generated_features=wrong,
                                **kwargs)  # type: ignore[arg-type]
