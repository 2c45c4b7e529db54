"""evaluate_sets: real data through the random-conv extractor, stamps, the feature cache, and every source kind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data.store import Store
from ganforge.errors import ConfigError, DataError
from ganforge.metrics import FolderSource, GeneratorSource, MetricOptions, evaluate_sets, load_extractor
from ganforge.metrics.protocol import REQUIRED_KEYS
from ganforge.metrics.sources import SourceLike

from data_slices import idx_images, make_store, slice_store
from metrics_helpers import tiny_inception_file

N = 500
FAST = MetricOptions(kid_subsets=10)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Store]:
    folder = tmp_path_factory.mktemp("stores")
    return {"train": slice_store(folder / "train.gfs", "mnist", "train", 0, N),
            "test": slice_store(folder / "test.gfs", "mnist", "t10k", 0, N),
            "fashion": slice_store(folder / "fashion.gfs", "fashion-mnist", "train", 0, N)}


def run(real: SourceLike, fake: SourceLike, metrics: list[str], cache: Path, n: int = N) -> dict[str, dict]:
    results = evaluate_sets(real, fake, metrics, n=n, extractor=load_extractor("random-conv"), cache_dir=cache,
                            batch_size=100, progress=False, options=FAST)
    return {r["metric"]: r for r in results}


def test_mnist_test_scores_far_closer_to_mnist_train_than_fashion_does(
        stores: dict[str, Store], tmp_path: Path) -> None:
    same = run(stores["train"], stores["test"], ["fid", "kid", "pr"], tmp_path)
    other = run(stores["train"], stores["fashion"], ["fid", "kid", "pr"], tmp_path)
    assert same["fid"]["scores"]["fid"] * 5 < other["fid"]["scores"]["fid"]
    assert same["kid"]["scores"]["kid"] * 5 < other["kid"]["scores"]["kid"]
    assert same["pr"]["scores"]["precision"] > 0.6 > other["pr"]["scores"]["precision"]
    assert same["pr"]["scores"]["recall"] > 0.6 > other["pr"]["scores"]["recall"]


def test_every_result_carries_the_protocol_stamp(stores: dict[str, Store], tmp_path: Path) -> None:
    results = run(stores["train"], stores["test"], ["fid", "kid", "pr"], tmp_path)
    for metric, stamp in results.items():
        assert all(key in stamp for key in REQUIRED_KEYS), metric
        assert stamp["n_real"] == stamp["n_fake"] == N
        assert stamp["extractor"] == "random-conv" and stamp["extractor_hash"].startswith("sha256:")
        assert stamp["resize"] == "torch-bilinear-aa-32"
        assert stamp["dataset_fingerprint"] == stores["train"].manifest.fingerprint
        assert stamp["ganforge_version"]
    # N < 1000: every subset would be the whole set, so KID is one estimate, without a std, and says so.
    options = results["kid"]["options"]
    assert {k: options[k] for k in ("subsets", "subset_size", "seed")} == {"subsets": 1, "subset_size": N, "seed": 0}
    assert f"{N} images per set, fewer than the subset size 1000" in options["warning"]
    assert "kid_std" not in results["kid"]["scores"]


def test_second_evaluation_hits_the_real_feature_cache(stores: dict[str, Store], tmp_path: Path) -> None:
    first = run(stores["train"], stores["test"], ["fid"], tmp_path)["fid"]
    second = run(stores["train"], stores["test"], ["fid"], tmp_path)["fid"]
    assert first["cache"]["real"] == "miss" and second["cache"]["real"] == "hit"
    assert second["scores"] == first["scores"]
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 2  # real and fake, nothing pickled
    other_n = run(stores["train"], stores["test"], ["fid"], tmp_path, n=400)["fid"]
    assert other_n["cache"]["real"] == "miss"  # n is part of the key


def test_folder_source_reads_the_same_pixels_as_the_store(stores: dict[str, Store], tmp_path: Path) -> None:
    folder = tmp_path / "pngs"
    folder.mkdir()
    images = idx_images("mnist", "t10k", 0, 60)
    for i, image in enumerate(images):
        Image.fromarray(image[0]).save(folder / f"{i:04d}.png")
    source = FolderSource(folder)
    assert torch.equal(torch.cat(list(source.batches(25, 60))), torch.from_numpy(images))
    result = run(make_store(tmp_path / "same.gfs", images), folder, ["fid"], tmp_path / "cache", n=60)["fid"]
    assert result["scores"]["fid"] < 1e-6  # identical pixels, identical features


def test_folder_images_follow_the_first_images_channels_and_size(tmp_path: Path) -> None:
    Image.fromarray(np.full((28, 28), 7, np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((56, 40, 3), 200, np.uint8)).save(tmp_path / "b.jpg")
    (batch,) = FolderSource(tmp_path).batches(8, 8)
    assert batch.dtype == torch.uint8 and batch.shape == (2, 1, 28, 28)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .png/.jpg"):
        FolderSource(tmp_path / "empty")


def endless_mnist(batch_size: int) -> Iterator[torch.Tensor]:
    images = torch.from_numpy(idx_images("mnist", "t10k", 0, N))
    while True:
        for start in range(0, N, batch_size):
            yield images[start : start + batch_size]


def test_generator_source_stops_at_n_and_is_never_cached(stores: dict[str, Store], tmp_path: Path) -> None:
    result = run(stores["train"], endless_mnist, ["fid"], tmp_path, n=230)["fid"]
    assert result["n_fake"] == 230 and result["cache"]["fake"] == "off"
    direct = run(stores["train"], stores["test"], ["fid"], tmp_path, n=230)["fid"]
    assert result["scores"]["fid"] == pytest.approx(direct["scores"]["fid"], rel=1e-5)


def test_generator_that_yields_floats_is_told_to_convert(stores: dict[str, Store], tmp_path: Path) -> None:
    def floats(batch_size: int) -> Iterator[torch.Tensor]:
        while True:
            yield torch.rand(batch_size, 1, 28, 28) * 2 - 1

    with pytest.raises(DataError, match="to_uint8"):
        run(stores["train"], GeneratorSource(floats), ["fid"], tmp_path, n=50)


def test_unknown_metric_lists_the_valid_ones(stores: dict[str, Store], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'fld'.*fid, kid, is, pr"):
        run(stores["train"], stores["test"], ["fid", "fld"], tmp_path)


def test_inception_score_without_logits_fails_before_extracting(stores: dict[str, Store], tmp_path: Path) -> None:
    def never(batch_size: int) -> Iterator[torch.Tensor]:
        raise AssertionError("extraction started before the metric check")
        yield torch.zeros(0)

    with pytest.raises(ConfigError, match="class logits"):
        run(stores["train"], never, ["is"], tmp_path)


def test_inception_score_runs_on_an_extractor_with_logits(stores: dict[str, Store], tmp_path: Path) -> None:
    # an NVIDIA-shaped TorchScript file (features + 1008-way head), tiny, so IS runs end to end
    extractor = load_extractor("inception", path=tiny_inception_file(tmp_path / "tiny.pt"))
    (result,) = evaluate_sets(stores["train"], stores["test"], ["is"], n=100, extractor=extractor,
                              cache_dir=tmp_path, progress=False)
    assert result["scores"]["is"] >= 1.0 and result["scores"]["is_std"] >= 0
    assert result["n_real"] is None and result["dataset_fingerprint"] is None and result["n_fake"] == 100
    assert result["options"]["splits"] == 10 and "100 images: the Inception Score's protocol uses 50,000" in \
        result["options"]["warning"]


def _noise_store(path: Path, count: int = 200) -> Path:
    images = np.random.default_rng(3).integers(0, 256, (count, 1, 16, 16), dtype=np.uint8)
    return make_store(path, images).path


def _flip_last_pixel(store: Path, count: int = 200) -> None:
    raw = bytearray(store.read_bytes())
    raw[-8 * count - 1] ^= 0xFF  # the last pixel byte, before the int64 labels: the header is untouched
    store.write_bytes(bytes(raw))


def test_a_store_edited_after_its_features_were_cached_is_refused_not_scored_from_the_cache(tmp_path: Path) -> None:
    store, fake = _noise_store(tmp_path / "real.gfs"), _noise_store(tmp_path / "fake.gfs")
    assert run(str(store), str(fake), ["fid"], tmp_path / "cache", n=200)["fid"]["cache"]["real"] == "miss"
    assert run(str(store), str(fake), ["fid"], tmp_path / "cache", n=200)["fid"]["cache"]["real"] == "hit"
    _flip_last_pixel(store)
    with pytest.raises(DataError, match=f"{store}: its pixels or labels changed after it was prepared"):
        run(str(store), str(fake), ["fid"], tmp_path / "cache", n=200)


def test_a_store_too_large_to_hash_misses_the_cache_once_edited_in_place(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Store, "verify_content", lambda self, limit_bytes=None: False)  # as above the size limit
    store, fake = _noise_store(tmp_path / "real.gfs"), _noise_store(tmp_path / "fake.gfs")
    first = run(str(store), str(fake), ["fid"], tmp_path / "cache", n=200)["fid"]
    assert run(str(store), str(fake), ["fid"], tmp_path / "cache", n=200)["fid"]["cache"]["real"] == "hit"
    before = store.stat().st_mtime_ns
    _flip_last_pixel(store)
    os.utime(store, ns=(before + 10**9, before + 10**9))  # a coarse clock must not hide the edit
    edited = run(str(store), str(fake), ["fid"], tmp_path / "cache", n=200)["fid"]
    assert edited["cache"]["real"] == "miss" and edited["scores"] != first["scores"]
    assert edited["dataset_fingerprint"] == first["dataset_fingerprint"]  # the stamp still names the content hash
