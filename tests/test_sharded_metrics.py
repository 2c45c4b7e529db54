"""Metrics during multi-process training: each rank makes and extracts its own seeds (seed s on rank s % W),
rank 0 gathers the features back in seed order, and the scores are the ones a single process logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ganforge.metrics import GeneratorSource
from ganforge.metrics.generated import generator_batches, seed_order, shard_seeds

from data_slices import digits16_store, mnist_store
from run_helpers import TORCHRUN_TWO, only_run

# ProGAN without minibatch-stddev: no layer mixes samples, so a generated image does not depend on which other
# images share its batch (nor, then, on which rank made it). Tiny widths, 16 px, two ticks of one step each.
ARGS = ["--model", "progan", "--no-mbstd", "--loss", "nonsaturating", "--drift", "0", "--phase-kimg", "0.2",
        "--kimg", "0.064", "--batch", "32", "--tick-kimg", "0.032", "--snap", "1", "--fmap-base", "256",
        "--fmap-max", "32", "--z-dim", "32", "--no-progress", "--metrics", "fid", "--metrics-extractor",
        "random-conv", "--metrics-n", "64", "--metrics-every", "1"]


class ClassShiftGenerator(nn.Module):
    """A real, tiny conditional G: z [B, 4] and labels [B] -> images [B, 1, 4, 4] in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 16)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(z) + labels[:, None]).view(-1, 1, 4, 4)


def test_seed_shards_are_disjoint_and_seed_order_puts_them_back() -> None:
    for n in (2, 5, 64, 65):
        for world_size in (1, 2, 3, 4):
            shares = [shard_seeds(n, rank, world_size) for rank in range(world_size)]
            assert sorted(s for share in shares for s in share) == list(range(n))
            rows = [torch.tensor(list(share)).view(-1, 1).repeat(1, 3) for share in shares]  # [N_rank, 3]
            assert torch.equal(seed_order(rows), torch.arange(n).view(-1, 1).repeat(1, 3)), (n, world_size)


def test_seed_order_rejects_shares_that_are_not_the_seed_shards() -> None:
    with pytest.raises(RuntimeError):
        seed_order([torch.zeros(2, 3), torch.zeros(3, 3)])  # 5 seeds over 2 ranks are 3 + 2, not 2 + 3


def test_sharded_generator_batches_reorder_to_the_single_process_images() -> None:
    generator, n = ClassShiftGenerator(), 11

    def images(rank: int, world_size: int) -> torch.Tensor:
        batches = generator_batches(generator, 4, 3, (4, 4), torch.device("cpu"), rank=rank, world_size=world_size)
        source = GeneratorSource(batches)
        count = len(shard_seeds(n, rank, world_size))
        return torch.cat(list(source.batches(2, count)))

    single = images(0, 1)
    for world_size in (2, 3):
        assert torch.equal(seed_order([images(rank, world_size) for rank in range(world_size)]), single)


def ganforge_train(launcher: list[str], store: Path, out: Path, cache: Path, args: list[str] = ARGS) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANFORGE_CACHE": str(cache)}
    proc = subprocess.run([*launcher, "-m", "ganforge", "train", "--data", str(store), "--out", str(out), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def logged_ticks(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (only_run(out) / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if "tick" in r]


@pytest.fixture(scope="module")
def digits16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return digits16_store(tmp_path_factory.mktemp("sharded"))


@pytest.mark.slow
def test_two_process_metrics_match_one_process_and_log_one_row_per_tick(digits16: Path, tmp_path: Path) -> None:
    ganforge_train([sys.executable], digits16, tmp_path / "single", tmp_path / "cache-single")
    ganforge_train(TORCHRUN_TWO, digits16, tmp_path / "ddp", tmp_path / "cache-ddp")
    single, ddp = logged_ticks(tmp_path / "single"), logged_ticks(tmp_path / "ddp")
    assert [r["tick"] for r in ddp] == [r["tick"] for r in single] == [1, 2]  # rank 0's rows alone
    for one, two in zip(single, ddp, strict=True):
        (stamp,) = two["metrics"]
        assert stamp["shards"] == 2 and one["metrics"][0]["shards"] == 1
        assert stamp["n_fake"] == stamp["n_real"] == 64
        # Equal up to float noise, not necessarily bit-equal: the two runs' G differ by summation order (DDP
        # averages gradients across ranks; ~1e-6 relative after two Adam steps), and each rank runs G and the
        # extractor on batches of other sizes. On this machine they come out bit-equal. A second rank repeating
        # the first one's seeds instead of making its own moves this FID by ~2% (FID ignores order: the unit
        # tests above check that), and a lost share would show in n_fake.
        assert two["fid"] == pytest.approx(one["fid"], rel=1e-3)


def test_real_features_are_extracted_once_and_cached_where_evaluate_finds_them(tmp_path: Path) -> None:
    from ganforge.data.store import Store
    from ganforge.metrics import load_extractor
    from ganforge.metrics.evaluate import features_of
    from ganforge.metrics.sources import StoreSource
    from ganforge.training.distributed import Distributed
    from ganforge.training.metrics_hook import sharded_real_features

    source = StoreSource(Store(mnist_store(tmp_path / "m.gfs", 40)))
    extractor = load_extractor("random-conv")
    first, how = sharded_real_features(source, extractor, 30, Distributed(), tmp_path / "cache")
    assert how == "miss" and first is not None and len(first) == 30
    again, how = sharded_real_features(source, extractor, 30, Distributed(), tmp_path / "cache")
    assert how == "hit" and again is not None and torch.equal(again.features, first.features)
    # The same cache entry `ganforge evaluate` reads: the first 30 images, in order.
    reference, status = features_of(source, extractor, 30, 50, tmp_path / "cache", False, "real")
    assert status == "hit" and torch.equal(reference.features, first.features)
    uncached, _ = features_of(source, extractor, 30, 50, None, False, "real")
    torch.testing.assert_close(uncached.features, first.features)



@pytest.mark.slow
def test_sharded_metrics_of_a_batchnorm_generator_score_rank_zeros_network(digits16: Path, tmp_path: Path) -> None:
    # DCGAN without --sync-bn: each rank's BatchNorm running statistics are its own, so unless every rank
    # generates with rank 0's, the images mix slightly different networks. The logged FID must be the one
    # `ganforge evaluate` gives rank 0's checkpoint (the same 64 seeds, the same extractor).
    args = ["--kimg", "0.32", "--batch", "32", "--tick-kimg", "0.32", "--no-progress", "--metrics", "fid",
            "--metrics-extractor", "random-conv", "--metrics-n", "64", "--metrics-every", "1"]
    ganforge_train(TORCHRUN_TWO, digits16, tmp_path / "ddp", tmp_path / "cache", args)
    (tick,) = logged_ticks(tmp_path / "ddp")
    env = {**os.environ, "GANFORGE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "ganforge", "evaluate", str(only_run(tmp_path / "ddp")), "--metrics",
                           "fid", "--extractor", "random-conv", "--n", "64", "--json", str(tmp_path / "fid.json")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout
    (evaluated,) = json.loads((tmp_path / "fid.json").read_text())
    # Measured: equal to 1e-15 here; with each rank's own statistics they were 8e-5 apart after these 10 steps.
    assert tick["fid"] == pytest.approx(evaluated["scores"]["fid"], rel=1e-6)
