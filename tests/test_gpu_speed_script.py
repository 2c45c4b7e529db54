"""benchmarks/gpu_speed.py is prepared for the few device minutes a session may be lent: it must work the first
time it meets a GPU. Here every row runs at toy widths on the CPU, through the same commands and measurement."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from run_helpers import THREADS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_speed.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_speed", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": THREADS})


def test_the_first_tick_compiling_is_left_out_of_the_speed():
    ticks = [{"nimg": 128, "sec_per_tick": 60.0, "peak_mem_gb": 3.0},  # compiling
             {"nimg": 256, "sec_per_tick": 1.0, "peak_mem_gb": 2.0},
             {"nimg": 384, "sec_per_tick": 1.0, "peak_mem_gb": 2.5}]
    speed = load_script().measure(ticks, batch=32)
    assert speed["img_per_s"] == pytest.approx(128.0)
    assert speed["steps_per_s"] == pytest.approx(4.0)
    assert speed["sec_per_kimg"] == pytest.approx(1000 / 128)
    assert speed["first_tick_s"] == 60.0 and speed["ticks_timed"] == 2 and speed["peak_mem_gb"] == 3.0


def test_an_unknown_row_is_named(tmp_path):
    done = run_script("--out", str(tmp_path), "--device", "cpu", "--rows", "dcgan-b256,biggan")
    assert done.returncode == 2 and "--rows: biggan not among" in done.stderr


@pytest.mark.slow
def test_every_row_trains_and_is_measured_at_toy_widths(tmp_path):
    done = run_script("--out", str(tmp_path), "--device", "cpu", "--smoke", "--compile", "off", "--seconds", "1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "gpu_speed.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rows] == list(load_script().ROWS)
    for row in rows:
        assert "error" not in row, row
        assert row["batch"] == 4 and row["img_per_s"] > 0 and row["ticks_timed"] >= 2 and not row["compile"]
    table = (tmp_path / "gpu_speed.md").read_text()
    assert all(f"| {r['row']} | {r['resolution']} | off | 4 |" in table for r in rows)
    with tarfile.open(tmp_path / "logs.tar.gz") as logs:
        assert sorted(logs.getnames()) == sorted(f"{r['row']}.out" for r in rows)
