"""Hostile `--init`, `--freeze-d` and `--freeze-g-mapping`: a missing, wrong or damaged source, a graph export, a
source whose weights changed, contradictory flags and impossible freezes are refused in one line naming the flag,
and a source run is only read, never changed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli_helpers import usage_error
from ganforge.cli import main
from ganforge.config import TrainConfig
from ganforge.errors import ConfigError
from ganforge.runs import checkpoint as ckpt
from ganforge.training.init_from import initialize

from data_slices import make_store
from run_helpers import only_run

TINY = ["--g-width", "4", "--d-width", "4", "--batch", "8", "--tick-kimg", "0.05", "--no-progress"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-init")


@pytest.fixture(scope="module")
def store(root: Path) -> Path:
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    return make_store(root / "noise.gfs", images).path


@pytest.fixture(scope="module")
def source(root: Path, store: Path) -> Path:
    """A DCGAN run with two checkpoints (0.05 and 0.1 kimg)."""
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--model", "dcgan", "--kimg", "0.1", "--snap",
                                       "1", "--out", str(root / "runs"), *TINY])
    assert result.exit_code == 0, result.output
    return only_run(root / "runs")


def _train(store: Path, out: Path, *flags: str) -> list[str]:
    return ["train", "--data", str(store), "--out", str(out), *flags, "--no-progress"]


def test_a_missing_source_a_file_and_a_run_without_checkpoints_are_refused(root: Path, store: Path,
                                                                          source: Path) -> None:
    out = root / "refused"
    assert "--init" in usage_error(_train(store, out, "--init", str(root / "nowhere")))
    assert "is not a folder" in usage_error(_train(store, out, "--init", str(store)))
    bare = root / "bare-run"
    bare.mkdir()
    shutil.copy(source / "config.json", bare / "config.json")
    assert "no checkpoint yet" in usage_error(_train(store, out, "--init", str(bare)))
    assert not out.exists()  # a refused run leaves no folder


def test_a_repo_id_not_in_the_local_cache_is_refused_without_the_network(root: Path, store: Path) -> None:
    pytest.importorskip("huggingface_hub", reason="the Hub extra (pip install 'ganforge[hub]') is not installed")
    # Looked up with local_files_only: no request is made (this machine has no network to make it on).
    assert "local cache" in usage_error(_train(store, root / "refused", "--init", "someone/no-such-model"))


def test_a_graph_export_is_refused_with_the_export_to_make(root: Path, store: Path, source: Path) -> None:
    export = root / "ts-export"
    result = CliRunner().invoke(main, ["export", str(source), "--format", "torchscript", "--out", str(export)])
    assert result.exit_code == 0, result.output
    error = usage_error(_train(store, root / "refused", "--init", str(export)))
    assert "torchscript export is a graph" in error and "--with-discriminator" in error


@pytest.mark.parametrize("flags, problem", [
    (["--model", "mlp"], "holds a dcgan GAN and this run trains --model mlp"),
    (["--preset", "dcgan-small"], "drop --preset"),
    (["--freeze-d", "9"], "--freeze-d 9: --model dcgan's D has 2 blocks"),
    (["--freeze-g-mapping"], "--freeze-g-mapping: --model dcgan's G has no mapping network"),
    (["--z-dim", "7"], "of G's weights fit"),
])
def test_contradictions_are_refused_in_one_line(root: Path, store: Path, source: Path, flags: list[str],
                                                problem: str) -> None:
    assert problem in usage_error(_train(store, root / "refused", "--init", str(source), *flags))


def test_another_resolution_is_refused_for_a_family_that_cannot_grow(root: Path, source: Path) -> None:
    images = np.random.default_rng(1).integers(0, 256, (16, 1, 32, 32), dtype=np.uint8)
    bigger = make_store(root / "noise32.gfs", images).path
    error = usage_error(_train(bigger, root / "refused", "--init", str(source)))
    assert "makes 16x16 images and this store holds 32x32" in error and "--resolution 16" in error


def test_freezing_what_a_family_does_not_declare_is_refused_without_init(root: Path, store: Path) -> None:
    assert "declares no discriminator blocks" in usage_error(_train(store, root / "refused", "--model", "aae",
                                                                   "--freeze-d", "1", *TINY))


def test_a_source_whose_weights_changed_since_the_run_started_is_refused(source: Path) -> None:
    config = TrainConfig(init=str(source), init_sha256="0" * 64)
    with pytest.raises(ConfigError, match="its weights changed since this run started"):
        initialize(config, (1, 16, 16), {})


def test_a_damaged_latest_checkpoint_of_the_source_is_passed_over_and_left_where_it_is(root: Path, store: Path,
                                                                                    source: Path) -> None:
    copy = root / "damaged-source"
    shutil.copytree(source, copy)
    latest = ckpt.latest_checkpoint(copy)
    assert latest is not None and len(ckpt.list_checkpoints(copy)) == 2
    data = bytearray(latest.read_bytes())
    data[-10] ^= 0xFF
    latest.write_bytes(bytes(data))
    before = sorted(os.listdir(copy / "checkpoints"))
    result = CliRunner().invoke(main, _train(store, root / "from-damaged", "--init", str(copy), "--kimg", "0.05",
                                             "--memorization", "off"))
    assert result.exit_code == 0, result.output
    report = next(line for line in result.output.splitlines() if line.startswith("init from"))
    assert "kimg 0.056" in report and "is damaged" in report  # the older, intact checkpoint's, and why
    assert sorted(os.listdir(copy / "checkpoints")) == before  # the source is only read


def test_an_export_with_nan_weights_is_refused(root: Path, store: Path, source: Path) -> None:
    from safetensors.torch import load_file, save_file

    export = root / "nan-export"
    result = CliRunner().invoke(main, ["export", str(source), "--out", str(export), "--with-discriminator"])
    assert result.exit_code == 0, result.output
    weights = load_file(str(export / "model.safetensors"))
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.dim() > 1)
    weights[name] = weights[name].clone().fill_(float("nan"))
    save_file(weights, str(export / "model.safetensors"))
    error = usage_error(_train(store, root / "refused", "--init", str(export)))
    assert "holds NaN or infinity" in error and name in error
