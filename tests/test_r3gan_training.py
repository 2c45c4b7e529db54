"""R3GAN end to end, with everything a family gets: a tiny class-conditional run on 16 px digits (RpGAN + R1 + R2
lazily, ADA, G EMA, bf16) resumes bit-identically after a SIGKILL; runs export (safetensors, ONNX when
unconditional) and load back through `gf.load_generator`; `generate`, `evaluate` and the web app use them; two
processes train as one; the `r3gan` and `r3gan-cpu` presets resolve. The digits are the package's embedded MNIST
sample, so nothing here needs ../shared."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ganforge as gf
from ganforge.cli import main
from ganforge.data.embedded import embedded_store_path
from ganforge.data.store import Store
from ganforge.runs.checkpoint import latest_checkpoint, load_checkpoint

import run_helpers
from data_slices import make_store
from explore_helpers import one_thread
from run_helpers import assert_kill_and_resume_matches, only_run, tick_history, torchrun

SIDE, COUNT, Z_DIM = 16, 128, 8
# Ticks of 16 images at batch 8: two D steps each, so R1 and R2 (every 2 D steps) run once per tick and ADA (every
# 4 D steps) adjusts p every second tick. --model r3gan starts from the paper's recipe (RpGAN, ADA, G EMA, cosine
# schedule); the flags below shrink it to CPU size and name what the tests rely on.
TINY = ["--model", "r3gan", "--g-width", "2", "--d-width", "2", "--z-dim", str(Z_DIM), "--batch", "8",
        "--loss", "rpgan", "--r1-gamma", "1", "--r2-gamma", "1", "--r1-every", "2", "--tick-kimg", "0.016",
        "--grid-size", "16", "--no-progress"]
CONDITIONAL = [*TINY, "--cond", "--augment", "ada", "--ema-kimg", "0.5", "--ema-rampup", "0.05", "--precision",
               "bf16"]
# The unconditional run, trained through the API with the recipe's ADA and EMA; the two-process run repeats it.
UNCONDITIONAL = {"model": "r3gan", "g_width": 2, "d_width": 2, "z_dim": Z_DIM, "batch": 8, "loss": "rpgan",
                 "r1_gamma": 1.0, "r2_gamma": 1.0, "r1_every": 2, "tick_kimg": 0.016, "grid_size": 16,
                 "kimg": 0.032}
UNCONDITIONAL_FLAGS = [*TINY, "--kimg", "0.032"]


def invoke(*args: str | Path) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def one_thread_ganforge(*args: str, **kwargs) -> subprocess.Popen:
    """run_helpers.ganforge on one OpenMP thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ganforge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, **kwargs)


def log_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"tick"' in line]


@pytest.fixture(scope="module", autouse=True)
def single_thread() -> Iterator[None]:
    """Networks of 0.03M parameters on 16 px gain nothing from a second thread, and on a busy 2-core machine
    they lose several times their time waiting for it (training, export checks, feature extraction)."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def digits16(tmp_path_factory) -> Path:
    """The first 128 embedded MNIST digits with their labels, padded to 32 px and box-downsampled to 16 px."""
    source = Store(embedded_store_path())
    images = np.pad(source.images[:COUNT], ((0, 0), (0, 0), (2, 2), (2, 2)))
    images = images.reshape(COUNT, 1, SIDE, 2, SIDE, 2).mean((3, 5)).round().astype(np.uint8)
    path = tmp_path_factory.mktemp("r3gan-data") / "digits16.gfs"
    return make_store(path, images, source.labels[:COUNT], source.manifest.label_names).path


@pytest.fixture(scope="module")
def conditional_run(digits16, tmp_path_factory) -> Path:
    """Four ticks (64 images) of the conditional recipe, trained in-process (about 4 s)."""
    root = tmp_path_factory.mktemp("r3gan-cond")
    invoke("train", "--data", digits16, "--out", root, "--kimg", "0.064", "--snap", "2", *CONDITIONAL)
    return only_run(root)


@pytest.fixture(scope="module")
def unconditional_run(digits16, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("r3gan-uncond")
    run = gf.train(data=str(digits16), out=str(root), progress=False, echo=lambda line: None, **UNCONDITIONAL)
    return run.path


def test_the_conditional_recipe_trains_with_rpgan_r1_r2_ada_ema_and_bf16(conditional_run):
    config = json.loads((conditional_run / "config.json").read_text())["train"]
    loss = config["loss"]
    assert (loss["name"], loss["r1_gamma"], loss["r2_gamma"], loss["r1_every"]) == ("rpgan", 1.0, 1.0, 2)
    assert config["model"]["name"] == "r3gan" and config["model"]["conditional"]
    assert (config["augment"]["name"], config["precision"], config["ema_kimg"]) == ("ada", "bf16", 0.5)
    rows = log_rows(conditional_run)
    assert [r["nimg"] for r in rows] == [16, 32, 48, 64]
    assert all(math.isfinite(r[k]) and abs(r[k]) < 1e3 for r in rows for k in ("loss_d", "loss_g"))
    # ADA's p, logged every tick, moves by batch * 4 / (--ada-kimg * 1000) = 6.4e-5 per 4 D steps: twice at most here.
    assert all(0 <= r["augment_p"] <= 2 * 6.4e-5 + 1e-12 for r in rows)
    tensors, _ = load_checkpoint(latest_checkpoint(conditional_run))
    assert any(name.startswith("G_ema.") for name in tensors)
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


@pytest.mark.slow
def test_a_sigkilled_conditional_run_resumes_bit_identically(digits16, tmp_path, monkeypatch):
    # run_helpers.ganforge starts each run on two OpenMP threads; on a busy 2-core machine these 0.03M-parameter
    # networks then spend most of their time waiting for a core (measured: 12-37 s a run against 4 s on one thread).
    monkeypatch.setattr(run_helpers, "ganforge", one_thread_ganforge)
    # Killed once the first checkpoint (16 images, 2 D steps) is written: the resumed run carries on R1/R2's lazy
    # phase, ADA's p and sign count, the EMA, the cosine schedule's position and the bf16 run's RNG streams.
    seen: list[list[str]] = []

    def first_checkpoint(checkpoints: list[Path]) -> bool:
        seen.append([path.name for path in checkpoints])
        return bool(checkpoints)

    args = ["--data", str(digits16), "--kimg", "0.064", "--snap", "1", *CONDITIONAL]
    assert_kill_and_resume_matches(args, tmp_path, first_checkpoint)
    assert seen[-1] == ["ckpt-0000000016.safetensors"]  # killed with three of its four ticks to go


def test_safetensors_export_samples_what_the_conditional_run_samples(conditional_run, tmp_path):
    out = tmp_path / "export"
    assert "exported G_ema" in invoke("export", conditional_run, "--format", "safetensors", "--out", out)
    from_run, exported = gf.load_generator(conditional_run), gf.load_generator(out)
    images = from_run.sample(10, seed=0)
    assert images.dtype == torch.uint8 and images.shape == (10, 1, SIDE, SIDE)
    assert torch.equal(exported.sample(10, seed=0), images)
    assert torch.equal(exported.sample(10, seed=0, labels=3), from_run.sample(10, seed=0, labels=3))
    assert not torch.equal(from_run.sample(10, seed=0, labels=3), from_run.sample(10, seed=0, labels=4))


def test_onnx_export_refuses_the_conditional_run_in_one_line(conditional_run, tmp_path):
    result = CliRunner().invoke(main, ["export", str(conditional_run), "--format", "onnx", "--out",
                                       str(tmp_path / "onnx")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--format onnx traces G(z) only, and this run is class-conditional; use --format safetensors" in (
        result.output)
    assert not (tmp_path / "onnx").exists()


def test_onnx_export_of_an_api_trained_run_samples_what_the_run_samples(unconditional_run, tmp_path):
    pytest.importorskip("onnxruntime", reason="--format onnx checks its graph with onnxruntime (ganforge[onnx])")
    out = tmp_path / "onnx"
    assert "exported G_ema" in invoke("export", unconditional_run, "--format", "onnx", "--out", out)
    assert (out / "generator.onnx").exists()
    images = gf.load_generator(unconditional_run).sample(8, seed=0)
    exported = gf.load_generator(out).sample(8, seed=0)
    assert images.dtype == exported.dtype == torch.uint8 and exported.shape == images.shape == (8, 1, SIDE, SIDE)
    # ONNX Runtime sums in its own order (float gaps ~1e-7): a pixel at a rounding boundary may move by one level.
    difference = (exported.int() - images.int()).abs()
    assert difference.max() <= 1 and (difference == 0).float().mean() > 0.99


def test_generate_writes_a_grid_of_seeds_by_classes(conditional_run, tmp_path):
    output = invoke("generate", conditional_run, "--seeds", "0-3", "--out", tmp_path / "grid.png")
    assert "wrote 4 images" in output
    grid = Image.open(tmp_path / "grid.png")
    # Rows are the four seeds, columns the ten classes: 16 px cells with 2 px borders.
    assert grid.size == (10 * (SIDE + 2) + 2, 4 * (SIDE + 2) + 2)
    assert grid.text["seeds"] == "0,1,2,3" and np.asarray(grid).std() > 0


def test_evaluate_scores_a_finite_fid_from_the_cli_and_the_api(conditional_run, digits16, tmp_path):
    scores = tmp_path / "scores.json"
    output = invoke("evaluate", conditional_run, "--metrics", "fid", "--extractor", "random-conv", "--n", "16",
                    "--json", scores, "--out", tmp_path / "figures")
    assert any(line.startswith("fid ") for line in output.splitlines()), output
    (record,) = json.loads(scores.read_text())
    assert record["n_fake"] == record["n_real"] == 16 and record["extractor"] == "random-conv"
    assert math.isfinite(record["scores"]["fid"]) and record["scores"]["fid"] > 0
    api = gf.evaluate(real=str(digits16), fake=gf.load_generator(conditional_run), metrics=["fid"], n=16,
                      extractor="random-conv")
    assert math.isfinite(api["fid"]) and api["fid"] > 0


def test_the_web_app_serves_a_class_of_the_conditional_run(conditional_run):
    try:
        from serve_helpers import local_client

        client = local_client(conditional_run)
    except (ImportError, RuntimeError) as exc:  # starlette's TestClient raises RuntimeError without httpx2/httpx
        pytest.skip(f"needs the serve extra and httpx2 (pip install 'ganforge[serve]' httpx2): {exc}")
    info = client.get("/api/info").json()
    assert info["classes"] == [str(digit) for digit in range(10)] and info["image_shape"] == [1, SIDE, SIDE]
    response = client.get("/api/image.png", params={"seed": 5, "class": "7"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (SIDE, SIDE) and image.text["class"] == "7"
    expected = gf.load_generator(conditional_run).sample(1, seed=5, labels=7)[0, 0].numpy()
    assert np.array_equal(np.asarray(image), expected)


@pytest.mark.slow
def test_two_processes_log_the_losses_of_one(unconditional_run, digits16, tmp_path):
    # R3GAN has no layer that mixes samples (no normalization, no minibatch stddev) and RpGAN pairs each real with
    # the fake at its own index, so two half batches compute the global batch's losses.
    proc = torchrun("train", "--data", str(digits16), "--out", str(tmp_path), *UNCONDITIONAL_FLAGS)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert out.count("run folder") == 1 and sum(line.startswith("tick ") for line in out.splitlines()) == 2
    one, two = tick_history(unconditional_run), tick_history(only_run(tmp_path))
    assert [row[:2] for row in two] == [row[:2] for row in one] == [(1, 16), (2, 32)]
    for a, b in zip(one, two, strict=True):
        assert b[2:4] == pytest.approx(a[2:4], rel=1e-5, abs=1e-6)


def dry_run(*args: str) -> dict[str, str]:
    """`ganforge train ARGS --dry-run` as {flag: value}."""
    output = invoke("train", *args, "--dry-run")
    return {line.split()[0]: line.split()[1] for line in output.splitlines() if line.startswith("--")}


def test_the_r3gan_presets_resolve_to_the_papers_recipe_and_its_cpu_size(digits16, tmp_path):
    cpu = dry_run("--preset", "r3gan-cpu", "--data", str(digits16), "--out", str(tmp_path))
    assert (cpu["--model"], cpu["--loss"], cpu["--r1-gamma"], cpu["--r2-gamma"]) == ("r3gan", "rpgan", "2", "2")
    assert (cpu["--g-width"], cpu["--d-width"], cpu["--batch"], cpu["--r1-every"]) == ("8", "8", "16", "4")
    assert cpu["--augment"] == "ada"
    paper = dry_run("--preset", "r3gan", "--data", str(digits16), "--out", str(tmp_path))
    assert (paper["--g-width"], paper["--batch"], paper["--r1-every"], paper["--loss"]) == ("96", "256", "1", "rpgan")
    assert dry_run("--model", "r3gan", "--data", str(digits16), "--out", str(tmp_path)) == paper  # its recipe
    changed = dry_run("--preset", "r3gan-cpu", "--r2-gamma", "0.5", "--data", str(digits16), "--out", str(tmp_path))
    assert (changed["--r2-gamma"], changed["--r1-gamma"]) == ("0.5", "2")  # flags override the preset
    assert not any(tmp_path.iterdir())  # a dry run starts no run


def test_a_store_r3gan_cannot_draw_is_refused_with_the_sizes_that_work(tmp_path):
    store = make_store(tmp_path / "digits28.gfs", np.zeros((8, 1, 28, 28), np.uint8)).path
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "runs"), *TINY])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "r3gan cannot draw 28x28 px" in result.output and "power-of-two side from 8" in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
