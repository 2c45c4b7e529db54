"""What the hostile tests attack: a noise-to-image run with its export, an image-to-image run and a detector, each
trained in a second, once per test module (the tests damage copies, never these)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import TRAIN, invoke, tiny_pix2pix_run

from run_helpers import noise_run_and_export


@pytest.fixture(scope="module")
def noise(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(store, run, export) of a DCGAN run on noise images."""
    return noise_run_and_export(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]), TRAIN)


@pytest.fixture(scope="module")
def translator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pix2pix run of a few steps on digit pairs."""
    return tiny_pix2pix_run(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2] + "-pix2pix"))


@pytest.fixture(scope="module")
def detector(request: pytest.FixtureRequest, noise: tuple[Path, Path, Path],
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detector folder after two steps on the noise run's store and samples."""
    store, run, _ = noise
    out = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2] + "-detector") / "det"
    result = invoke("detect", "train", "--real", store, "--fake", run, "--out", out, "--steps", "2", "--batch", "4",
                    "--size", "16", "--images-per-source", "16", "--tick-steps", "1", "--snap", "1")
    assert result.exit_code == 0, result.output
    return out
