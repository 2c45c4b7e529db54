"""`ganforge evaluate` on image-to-image runs: PSNR/SSIM on the held-out pairs (with SR's bicubic baseline), FID of
CycleGAN's translations against the target domain, and the refusals that keep the scores honest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.data.store import Store

from data_slices import digit_pairs_store, digits16_store, digits_fashion_store, digits_sr_store, make_pair_store
from run_helpers import only_run

TINY = ["--g-width", "4", "--d-width", "4", "--batch", "4", "--kimg", "0.016", "--tick-kimg", "0.016", "--seed", "3",
        "--no-progress"]


def _train(root: Path, store: Path, model: str, *flags: str) -> Path:
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(root / model), "--model", model,
                                       *TINY, *flags])
    assert result.exit_code == 0, result.output
    return only_run(root / model)


def test_paired_runs_score_psnr_and_ssim_on_the_held_out_pairs_by_default(tmp_path: Path) -> None:
    run = _train(tmp_path, digit_pairs_store(tmp_path, val_count=5), "pix2pix")
    result = CliRunner().invoke(main, ["evaluate", str(run), "--json", str(tmp_path / "scores.json")])
    assert result.exit_code == 0, result.output
    records = {r["metric"]: r for r in json.loads((tmp_path / "scores.json").read_text())}
    assert set(records) == {"psnr", "ssim"}
    assert records["psnr"]["n_pairs"] == 5 and records["psnr"]["split"] == "rows 59-63 of 64 (held out)"
    assert 0 < records["psnr"]["scores"]["psnr"] < 60 and -1 <= records["ssim"]["scores"]["ssim"] <= 1
    assert records["ssim"]["options"]["ssim_window"] == "gaussian 11x11 sigma 1.5"


def test_super_resolution_reports_the_bicubic_baseline_beside_the_model(tmp_path: Path) -> None:
    run = _train(tmp_path, digits_sr_store(tmp_path), "srgan", "--content-loss", "mse")
    result = CliRunner().invoke(main, ["evaluate", str(run), "--metrics", "psnr,ssim"])
    assert result.exit_code == 0, result.output
    assert "psnr_bicubic" in result.output and "ssim_bicubic" in result.output


def test_cyclegan_is_scored_by_fid_of_its_translations_against_the_target_domain(tmp_path: Path) -> None:
    run = _train(tmp_path, digits_fashion_store(tmp_path), "cyclegan", "--pool-size", "4")
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(run), "--extractor", "random-conv", "--json",
                                  str(tmp_path / "fid.json")])
    assert result.exit_code == 0, result.output
    (record,) = json.loads((tmp_path / "fid.json").read_text())
    assert record["metric"] == "fid" and record["n_fake"] == 4 and record["n_real"] == 48
    assert record["scores"]["fid"] > 0 and "targets (B)" in record["real_source"]
    result = runner.invoke(main, ["evaluate", str(run), "--metrics", "ssim"])
    assert result.exit_code != 0 and "holds unpaired domains; score --metrics fid" in result.output


def test_scores_on_training_pairs_are_refused_and_a_test_store_is_used_whole(tmp_path: Path) -> None:
    store = digit_pairs_store(tmp_path, val_count=0)
    run = _train(tmp_path, store, "pix2pix")
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(run)])
    assert result.exit_code != 0 and "holds no held-out inputs" in result.output
    pairs = Store(store)
    assert pairs.targets is not None
    test_store = make_pair_store(tmp_path / "test.gfs", pairs.images[:6].copy(), pairs.targets[:6].copy()).path
    result = runner.invoke(main, ["evaluate", str(run), "--data", str(test_store), "--metrics", "psnr"])
    assert result.exit_code == 0 and "6 pairs: rows 0-5 of 6" in result.output, result.output
    other = _train(tmp_path, digits_fashion_store(tmp_path), "cyclegan")  # unpaired 16 px grey domains
    result = runner.invoke(main, ["evaluate", str(other), "--data", str(test_store), "--metrics", "fid",
                                  "--extractor", "random-conv"])
    assert result.exit_code != 0 and "does not hold the run's pairs" in result.output


@pytest.mark.parametrize("metrics", ["psnr", "ssim,fid"])
def test_noise_runs_have_no_targets_for_psnr_or_ssim(tmp_path: Path, metrics: str) -> None:
    store = digits16_store(tmp_path)
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "r"), "--model",
                                       "dcgan", *TINY])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["evaluate", str(only_run(tmp_path / "r")), "--metrics", metrics,
                                       "--extractor", "random-conv"])
    assert result.exit_code != 0 and "is a noise-to-image run, which has no targets" in result.output
