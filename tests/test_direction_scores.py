"""Labels directions fitted to more than an image statistic: a trained detector's verdict (`--score detect:DET`,
the direction along which samples look more generated) and, for a class-conditional StyleGAN2, the class it drew
(`--score class:NAME`, the direction toward that class in W)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ganforge as gf
from cli_helpers import TRAIN, invoke, one_error
from ganforge.data.embedded import embedded_store_path
from ganforge.errors import ConfigError
from ganforge.explore.direction_search import find_directions
from ganforge.explore.directions import edited_images
from ganforge.explore.image_scores import image_scorer
from ganforge.generate import seed_latents
from ganforge.runs import load_generator

from data_slices import make_store
from explore_helpers import one_thread


@pytest.fixture(scope="module")
def gan_and_detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("direction-scores")
    with one_thread():
        result = invoke("train", "--out", root / "runs", *TRAIN[:TRAIN.index("--kimg")], "--kimg", "0.1",
                        "--tick-kimg", "0.1", "--no-progress")
        assert result.exit_code == 0, result.output
        (run,) = (root / "runs").iterdir()
        result = invoke("detect", "train", "--real", embedded_store_path(), "--fake", run, "--out", root / "det",
                        "--steps", "60", "--batch", "32", "--size", "32", "--images-per-source", "256",
                        "--tick-steps", "60")
        assert result.exit_code == 0, result.output
    return run, root / "det"


def test_a_detector_direction_makes_samples_look_more_generated(gan_and_detector: tuple[Path, Path]) -> None:
    run, detector = gan_and_detector
    generator, config, _ = load_generator(run)
    found = find_directions(generator, config, "labels", 1, score=f"detect:{detector}", samples=400)
    assert found.score == f"detect:{detector}"
    logit = image_scorer(f"detect:{detector}")
    z = seed_latents(list(range(5000, 5032)), config.model.z_dim)
    more = logit(edited_images(generator, z, [(found, {0: 2.0})]))
    less = logit(edited_images(generator, z, [(found, {0: -2.0})]))
    assert (more > less).float().mean() >= 0.8, (more - less)


def test_a_class_direction_points_from_the_other_classes_toward_the_named_one(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (40, 1, 16, 16), dtype=np.uint8)
    store = make_store(tmp_path / "labelled.gfs", images, np.arange(40) % 4, ["cat", "dog", "owl", "yak"]).path
    with one_thread():
        run = gf.train(data=str(store), model="stylegan2", cond=True, z_dim=16, fmap_base=128, fmap_max=16,
                       batch=8, kimg=0.016, tick_kimg=0.016, out=str(tmp_path / "runs"), progress=False,
                       echo=lambda _: None).path
    generator, config, _ = load_generator(run)
    found = find_directions(generator, config, "labels", 1, score="class:owl", samples=400, source=str(run))
    z = seed_latents(list(range(400)), config.model.z_dim)
    labels = torch.arange(400) % 4
    with torch.no_grad():
        w = generator.mapping(z, labels)
    along = (w - w.mean(0)) @ found.vectors[0]
    assert float(along[labels == 2].mean()) > float(along[labels != 2].mean()) + float(along.std()), along
    assert found.values[0] > 0.3  # R^2: the class is most of what a linear fit in W sees
    with pytest.raises(ConfigError, match="'bat' is not one of|no class|bat"):
        find_directions(generator, config, "labels", 1, score="class:bat", samples=100, source=str(run))


def test_a_class_score_on_an_unconditional_or_z_only_generator_is_refused(gan_and_detector: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    run, _ = gan_and_detector
    error = one_error(invoke("directions", run, "--method", "labels", "--score", "class:3", "--out", tmp_path / "a"))
    assert "needs a class-conditional stylegan2" in error
    error = one_error(invoke("directions", run, "--method", "labels", "--score", "sharpness", "--out", tmp_path / "b"))
    assert "--score 'sharpness'" in error and "detect:FOLDER" in error
    error = one_error(invoke("directions", run, "--method", "labels", "--score", f"detect:{tmp_path}",
                             "--out", tmp_path / "c"))
    assert str(tmp_path) in error
