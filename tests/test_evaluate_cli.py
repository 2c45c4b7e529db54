"""`ganforge evaluate` and `train --metrics` from the command line (random-conv features: fast and offline; the
Inception path is covered by test_metrics_inception.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.metrics.random_conv import RandomConvExtractor

from data_slices import mnist_store

FAST = ["--extractor", "random-conv"]


@pytest.fixture(scope="module")
def run_with_metrics(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    store = mnist_store(root / "digits.gfs", 400)
    result = CliRunner().invoke(main, ["train", "--model", "dcgan",
                                       "--data", str(store), "--out", str(root / "runs"), "--kimg", "0.6",
                                       "--batch", "32", "--tick-kimg", "0.3", "--g-width", "8", "--d-width", "8",
                                       "--metrics", "fid,kid", "--metrics-every", "1", "--metrics-n", "100",
                                       "--metrics-extractor", "random-conv", "--no-progress"])
    assert result.exit_code == 0, result.output
    return store, next((root / "runs").iterdir())


def test_training_logs_metrics_with_their_protocol_each_interval(run_with_metrics):
    _, run_dir = run_with_metrics
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert all(r["fid"] > 0 and "kid" in r for r in rows)
    stamp = rows[-1]["metrics"][0]
    assert stamp["metric"] == "fid" and stamp["n_fake"] == 100 and stamp["extractor"] == "random-conv"
    assert stamp["dataset_fingerprint"] and stamp["ganforge_version"]


def test_evaluate_run_writes_scores_figures_and_json(run_with_metrics, tmp_path):
    _, run_dir = run_with_metrics
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--metrics", "fid,kid,pr,memorization,probe",
                                       "--n", "200", "--json", str(out), *FAST])
    assert result.exit_code == 0, result.output
    scores = {r["metric"]: r for r in json.loads(out.read_text())}
    assert set(scores) == {"fid", "kid", "pr", "memorization", "probe"}
    assert scores["fid"]["scores"]["fid"] > 0 and scores["fid"]["run"] == str(run_dir)
    assert 0 <= scores["pr"]["scores"]["precision"] <= 1
    assert scores["probe"]["test_accuracy"] > 2 * scores["probe"]["chance_accuracy"]
    assert (run_dir / "evaluation" / "nearest_neighbours.png").exists()


def test_the_memorization_check_reuses_the_generated_features_fid_extracted(run_with_metrics, tmp_path,
                                                                             monkeypatch):
    # Inception on the CPU is most of an evaluation: each generated image should pass through it once.
    _, run_dir = run_with_metrics
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))  # the real features too: counted once, fresh
    seen = []
    extract = RandomConvExtractor.extract
    monkeypatch.setattr(RandomConvExtractor, "extract",
                        lambda self, images: (seen.append(images.shape[0]), extract(self, images))[1])
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--metrics", "fid,memorization", "--n", "120",
                                       "--json", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert sum(seen) == 120 + 120  # generated and real, once each (the check's training features: the cache)
    memorization = {r["metric"]: r for r in json.loads(out.read_text())}["memorization"]
    assert memorization["n_generated"] == 120 and memorization["median_ratio"] > 0


def test_real_against_fake_folder_and_against_another_store(run_with_metrics, tmp_path):
    store, run_dir = run_with_metrics
    runner = CliRunner()
    assert runner.invoke(main, ["generate", str(run_dir), "--n", "60", "--out", str(tmp_path / "fakes")]).exit_code == 0
    result = runner.invoke(main, ["evaluate", "--real", str(store), "--fake", str(tmp_path / "fakes"), "--n", "60",
                                  "--metrics", "fid,kid", *FAST])
    assert result.exit_code == 0 and "fid " in result.output and "n_fake 60" in result.output
    same = runner.invoke(main, ["evaluate", "--real", str(store), "--fake", str(store), "--n", "60", *FAST])
    assert same.exit_code == 0 and "fid 0 " in same.output  # a set against itself: exactly 0
    fashion = mnist_store(tmp_path / "fashion.gfs", 200, dataset="fashion-mnist")
    result = runner.invoke(main, ["evaluate", str(run_dir), "--data", str(fashion), "--n", "100", *FAST])
    assert result.exit_code == 0 and "fid " in result.output


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--metrics", "fid", "--real", "a.gfs"], "give a RUN folder, or --real and --fake"),
    (["evaluate", "x", "--metrics", "fidd"], "--metrics: unknown fidd"),
    (["evaluate", "--real", "a", "--fake", "b", "--metrics", "probe"], "need a RUN folder"),
])
def test_evaluate_errors_are_one_clear_line(args, message):
    result = CliRunner().invoke(main, [*args, *FAST])
    assert result.exit_code == 2 and message in result.output and len(result.output.splitlines()) == 1, result.output
