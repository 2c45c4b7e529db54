"""torchrun + DDP (gloo, CPU) for the image-to-image schemes: two processes compute what one computes with the
same global batch where the scheme has no per-rank randomness (the losses of every tick agree), and a killed
two-process pix2pix run (whose dropout draws from each rank's own stream) resumes to exactly the weights of an
uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_slices import digit_pairs_store, digits_fashion_store, digits_sr_store
from run_helpers import (
    assert_killed_two_process_run_resumes_identically,
    only_run,
    run_to_end,
    torchrun,
)

SMALL = ["--g-width", "4", "--d-width", "4", "--batch", "8", "--tick-kimg", "0.016", "--snap", "1", "--no-progress"]
# CycleGAN with its history pool off: the pool draws from each rank's stream, so with it the two runs are two
# equally valid samplings, not one computation. Instance norm mixes nothing across the batch.
CYCLEGAN = ["--model", "cyclegan", "--pool-size", "0", "--kimg", "0.048", "--seed", "2", *SMALL]
# SRGAN's SRResNet and D use BatchNorm: --sync-bn makes the statistics those of the global batch. Pixel content
# loss keeps the test free of the Lite0 extra; --pretrain 0.5 covers both phases.
SRGAN = ["--model", "srgan", "--content-loss", "mse", "--kimg", "0.064", "--seed", "3", "--sync-bn", *SMALL]


@pytest.mark.slow
@pytest.mark.parametrize("scheme, make_store, args", [("cyclegan", digits_fashion_store, CYCLEGAN),
                                                       ("srgan", digits_sr_store, SRGAN)])
def test_two_processes_match_one_with_the_same_global_batch(scheme, make_store, args, tmp_path) -> None:
    store = make_store(tmp_path)
    run_to_end("train", "--data", str(store), "--out", str(tmp_path / "one"), *args)
    proc = torchrun("train", "--data", str(store), "--out", str(tmp_path / "two"), *args)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    one, two = (tick_losses(only_run(tmp_path / name)) for name in ("one", "two"))
    assert len(one) == len(two) >= 3
    # The losses each tick logs are those of one process to float noise, and stay so: the first two ticks (four
    # steps, each after updates that used the global batch's gradients) to 1e-5, later ones to 1e-3. Weights are
    # not compared: Adam turns the rounding noise of gradients that are zero in exact arithmetic (a bias before
    # instance norm) into steps of up to lr, as large as a tick's real updates here. Without the all-reduce each
    # rank would step on its half batch, and the losses would part from the second step on.
    np.testing.assert_allclose(one[:2], two[:2], rtol=1e-5)
    np.testing.assert_allclose(one, two, rtol=1e-3)


def tick_losses(run_dir: Path) -> np.ndarray:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    # SRGAN's pre-training ticks log no D or G loss: 0 there.
    return np.array([[row.get(name, 0.0) for name in ("loss_d", "loss_g", "loss_recon")] for row in rows
                     if "tick" in row])


@pytest.mark.slow
def test_killed_two_process_pix2pix_resumes_bit_identically(tmp_path) -> None:
    store = digit_pairs_store(tmp_path)
    args = ["--data", str(store), "--model", "pix2pix", "--kimg", "0.064", "--seed", "4", *SMALL]
    assert_killed_two_process_run_resumes_identically(args, tmp_path)
