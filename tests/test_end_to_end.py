"""The issue's user story on real data: prepare a folder of car photos salted with broken files, train, get
killed with SIGKILL, resume, and end bit-identical to an uninterrupted run; then generate a grid."""

from __future__ import annotations

import signal
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from ganforge.data.store import Store
from ganforge.runs.checkpoint import latest_checkpoint

from data_slices import SHARED_DATA, shared_file
from run_helpers import assert_identical, ganforge, only_run, run_to_end, tick_history, wait_for_checkpoint

CARS = SHARED_DATA / "stanford-cars" / "stanford_cars_train_128_pad_jpg.tar.gz"
TRAIN = ["--model", "dcgan",
         "--kimg", "0.6", "--batch", "16", "--tick-kimg", "0.1", "--snap", "1", "--g-width", "8", "--d-width", "8",
         "--seed", "1", "--no-progress"]


def car_folder_with_broken_files(root: Path, count: int = 150) -> Path:
    folder = root / "cars"
    with tarfile.open(shared_file(CARS)) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".jpg")][:count]
        tar.extractall(folder, members=members, filter="data")
    photo = next(folder.rglob("*.jpg"))
    (folder / "truncated.jpg").write_bytes(photo.read_bytes()[:600])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "._car.jpg").write_bytes(b"\0\5\26\7 AppleDouble")
    return folder


@pytest.mark.slow
def test_prepare_train_kill_resume_generate_on_real_cars(tmp_path):
    folder = car_folder_with_broken_files(tmp_path)
    summary = run_to_end("prepare", str(folder), "--out", str(tmp_path / "cars.gfs"), "--resolution", "32",
                         "--crop", "pad")
    assert "kept 150 of" in summary and "corrupt or truncated" in summary and "junk file 2" in summary
    store = Store(tmp_path / "cars.gfs")
    assert store.manifest.shape == (3, 32, 32) and len(store.manifest.skipped) >= 5

    run_to_end("train", "--data", str(tmp_path / "cars.gfs"), "--out", str(tmp_path / "a"), *TRAIN)
    reference = only_run(tmp_path / "a")

    proc = ganforge("train", "--data", str(tmp_path / "cars.gfs"), "--out", str(tmp_path / "b"), *TRAIN)
    wait_for_checkpoint(proc, tmp_path / "b")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = only_run(tmp_path / "b")
    assert "resumed from" in run_to_end("train", "--resume", str(killed))
    assert_identical(latest_checkpoint(reference), latest_checkpoint(killed))
    assert tick_history(killed) == tick_history(reference)

    run_to_end("generate", str(killed), "--seeds", "0-15", "--out", str(tmp_path / "grid.png"))
    assert Image.open(tmp_path / "grid.png").size == (4 * 34 + 2, 4 * 34 + 2)
