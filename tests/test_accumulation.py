"""--batch-gpu: a step over the batch run as several passes (gradient accumulation) trains like one pass, resumes
exactly, works for the GAN (fixed and growing) and AAE schemes, and `auto` measures the memory of a pass without
disturbing the run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ganforge.config import ModelConfig
from ganforge.models import build_networks
from ganforge.runs.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.training.batch_fit import MemoryFit, fit_batch, rounds_for, trial_pass
from ganforge.training.precision import Precision
from ganforge.training.step_parts import passes

from data_slices import digits16_store
from run_helpers import assert_kill_and_resume_matches, ganforge, only_run, run_to_end

# ProGAN without minibatch-stddev has no layer that mixes samples, so four passes of 8 compute one pass of 32.
PROGAN = ["--model", "progan", "--no-mbstd", "--loss", "nonsaturating", "--drift", "0", "--phase-kimg", "0.2",
          "--kimg", "0.48", "--batch", "32", "--tick-kimg", "0.16", "--fmap-base", "256", "--fmap-max", "32",
          "--z-dim", "32", "--no-progress"]
DCGAN = ["--model", "dcgan",
         "--kimg", "0.32", "--batch", "32", "--tick-kimg", "0.064", "--snap", "1", "--no-progress", "--d-dropout",
         "0.2", "--label-flip", "0.05"]


@pytest.fixture(scope="module")
def digits16(tmp_path_factory) -> Path:
    return digits16_store(tmp_path_factory.mktemp("accumulation"))


def test_passes_split_the_batch_into_weighted_parts():
    images, labels = torch.arange(10.0), None
    parts = list(passes(3, images, labels))
    assert [last for last, _, _ in parts] == [False, False, True]
    assert [chunk[0].tolist() for _, _, chunk in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert all(chunk[1] is None for _, _, chunk in parts)
    assert sum(weight for _, weight, _ in parts) == pytest.approx(1.0)
    # The weighted means of the parts are the mean of the whole: what makes accumulated gradients exact.
    assert sum(w * chunk[0].mean() for _, w, chunk in parts) == pytest.approx(images.mean().item())


@pytest.mark.parametrize(("share", "batch_gpu", "smallest", "rounds"), [
    (64, 0, 1, 1), (64, 16, 1, 4), (64, 48, 1, 2), (8, 64, 1, 1), (64, 24, 1, 4), (30, 8, 1, 5), (29, 8, 1, 4),
    (3, 2, 2, 1), (30, 1, 2, 15), (5, 2, 2, 2)])
def test_rounds_cover_the_share_in_equal_passes_where_they_can(share, batch_gpu, smallest, rounds):
    # 64 at most 24 at a time: 4 passes of 16 rather than 22 + 21 + 21; 29 (prime) cannot split evenly; with
    # BatchNorm (smallest 2) 3 images stay one pass rather than 2 + 1, and 5 become 3 + 2.
    assert rounds_for(share, batch_gpu, smallest) == rounds


@pytest.mark.slow
def test_four_passes_of_eight_train_like_one_pass_of_thirty_two(digits16, tmp_path):
    run_to_end("train", "--data", str(digits16), "--out", str(tmp_path / "one"), *PROGAN)
    run_to_end("train", "--data", str(digits16), "--out", str(tmp_path / "four"), "--batch-gpu", "8", *PROGAN)
    one, _ = load_checkpoint(latest_checkpoint(only_run(tmp_path / "one")))
    four, _ = load_checkpoint(latest_checkpoint(only_run(tmp_path / "four")))
    # Equal up to summation order; Adam's 1/sqrt(v) lets a near-zero gradient move its weight by up to lr (1e-3)
    # differently, hence 5e-3 after 15 steps. Counting only the last pass's gradient fails this; a uniform
    # rescaling of all passes would not (Adam is invariant to it), which is why weights are unit-tested above.
    for name in one:
        if name.startswith(("G.", "D.")):
            torch.testing.assert_close(one[name], four[name], rtol=0, atol=5e-3, msg=name)


@pytest.mark.slow
def test_a_killed_run_with_several_passes_resumes_bit_identically(tmp_path):
    # DCGAN with BatchNorm, dropout and label flips: every random draw of every pass is on the resume path.
    assert_kill_and_resume_matches([*DCGAN, "--batch-gpu", "12"], tmp_path,
                                   accept=lambda checkpoints: len(checkpoints) >= 1)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "aae", "progan"])
def test_mlp_aae_and_progan_train_in_uneven_passes(digits16, tmp_path, model):
    extra = ["--fmap-base", "256", "--fmap-max", "32", "--phase-kimg", "0.05"] if model == "progan" else []
    out = run_to_end("train", "--data", str(digits16), "--out", str(tmp_path), "--model", model, "--kimg", "0.15",
                     "--batch", "29", "--batch-gpu", "8", "--tick-kimg", "0.15", "--no-progress", *extra)
    assert "tick 1" in out
    row = next(json.loads(line) for line in (only_run(tmp_path) / "log.jsonl").read_text().splitlines()
               if '"tick"' in line)
    assert all(math.isfinite(row[key]) for key in ("loss_d", "loss_g"))


@pytest.mark.slow
def test_auto_picks_a_size_logs_it_and_keeps_the_global_batch(tmp_path):
    out = run_to_end("train", "--model", "dcgan",
                     "--out", str(tmp_path), "--batch-gpu", "auto", "--kimg", "0.128", "--batch", "32",
                     "--tick-kimg", "0.064", "--no-progress")
    assert "--batch-gpu auto at 28 px" in out and "MiB per image" in out
    rows = [json.loads(line) for line in (only_run(tmp_path) / "log.jsonl").read_text().splitlines()]
    (event,) = [r for r in rows if r.get("event") == "batch-gpu"]
    assert event["share"] == 32 and 1 <= event["per_pass"] <= 32
    assert event["rounds"] * event["per_pass"] >= 32
    assert [r["nimg"] for r in rows if "tick" in r] == [64, 128]


def test_fit_batch_leaves_the_networks_and_random_streams_untouched():
    networks = build_networks(ModelConfig(name="dcgan", z_dim=16, g_width=8, d_width=8), (1, 28, 28))
    G, D = networks.generator, networks.discriminator
    before = {k: v.clone() for net in (G, D) for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    trial = trial_pass(G, D, None, lambda b: torch.zeros(b, 1, 28, 28), 16, 0, Precision("fp32", torch.device("cpu")))
    batch, how = fit_batch(trial, (G, D), torch.device("cpu"), limit=48)
    assert batch == 48 and "MiB per image" in how  # tiny networks: the whole share fits in this machine's RAM
    after = {k: v for net in (G, D) for k, v in net.state_dict().items()}
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics included
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for net in (G, D) for p in net.parameters())
    assert G.training and D.training


def test_memory_fit_takes_the_largest_batch_within_the_budget():
    fit = MemoryFit(fixed_bytes=100, bytes_per_image=10, budget_bytes=1_000)
    assert fit.largest_batch(limit=256) == 90
    assert fit.largest_batch(limit=64) == 64
    assert MemoryFit(fixed_bytes=2_000, bytes_per_image=10, budget_bytes=1_000).largest_batch(64) == 1


@pytest.mark.parametrize("value", ["-3", "many", "1.5"])
def test_a_bad_batch_gpu_is_refused_by_name(tmp_path, value):
    proc = ganforge("train", "--model", "dcgan", "--out", str(tmp_path), "--batch-gpu", value)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--batch-gpu" in out and "auto" in out


def test_passes_of_one_image_are_refused_for_batchnorm_models(tmp_path):
    proc = ganforge("train", "--out", str(tmp_path), "--model", "mlp", "--batch", "30", "--batch-gpu", "1")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--batch-gpu 1" in out and "BatchNorm" in out and "Traceback" not in out
