"""Load check of `ganforge serve`: 200 concurrent image requests against a real server on 127.0.0.1.

Starts `python -m ganforge serve RUN` in a subprocess on a free port (so client and server do not share a GIL),
waits for it, fires all requests at once from a thread pool (distinct seeds, so every request renders; then the
same requests again, served from the PNG cache), stops the server, and prints errors and latency percentiles.
With no --run it first trains a default-width DCGAN for 0.1 kimg on the embedded MNIST sample (the weights do
not matter for speed, only the architecture). Every wait is bounded; the script always stops its server.
    python benchmarks/serve_load.py [--run RUN] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REQUEST_TIMEOUT_S = 120.0
START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tiny_run(parent: Path) -> Path:
    subprocess.run([sys.executable, "-m", "ganforge", "train", "--kimg", "0.1", "--tick-kimg", "0.1", "--batch", "32",
                    "--no-progress", "--out", str(parent)], check=True, stdout=subprocess.DEVNULL, timeout=600)
    (run_dir,) = parent.iterdir()
    return run_dir


def wait_until_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode} before answering")
        try:
            urllib.request.urlopen(url + "/api/info", timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"no answer from {url} within {START_TIMEOUT_S:.0f} s")


def fire(url: str, seeds: list[int]) -> tuple[list[float], list[str], float]:
    """All requests released together; (latencies of the successes in s, error messages, wall time in s)."""
    start = threading.Barrier(len(seeds))

    def one(seed: int) -> float | str:
        start.wait()
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{url}/api/image.png?seed={seed}&psi=0.8", timeout=REQUEST_TIMEOUT_S) as r:
                body = r.read()
            if r.status != 200 or not body.startswith(b"\x89PNG"):
                return f"seed {seed}: HTTP {r.status}, {len(body)} bytes"
        except (OSError, urllib.error.HTTPError) as exc:
            return f"seed {seed}: {exc}"
        return time.perf_counter() - began

    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(seeds)) as pool:
        results = list(pool.map(one, seeds))
    wall = time.perf_counter() - wall
    return [r for r in results if isinstance(r, float)], [r for r in results if isinstance(r, str)], wall


def report(label: str, latencies: list[float], errors: list[str], wall: float) -> None:
    ms = sorted(1000 * v for v in latencies)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))] if ms else float("nan")
    print(f"{label}: {len(latencies)} ok, {len(errors)} errors; p50 {statistics.median(ms) if ms else float('nan'):.0f}"
          f" ms, p99 {p99:.0f} ms, max {ms[-1] if ms else float('nan'):.0f} ms; {len(latencies) / wall:.0f} req/s "
          f"over {wall:.1f} s")
    for error in errors[:5]:
        print(f"  {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="run or exported folder to serve [a fresh default-width DCGAN]")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run or tiny_run(Path(tmp) / "runs")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "ganforge", "serve", str(run_dir), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        try:
            wait_until_up(url, server)
            seeds = list(range(1000, 1000 + args.requests))
            cold = fire(url, seeds)
            warm = fire(url, seeds)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        print(f"served {run_dir.name} on {url}; {args.requests} concurrent GET /api/image.png, distinct seeds")
        report("rendered", *cold)
        report("cached  ", *warm)
        return 1 if cold[1] or warm[1] else 0


if __name__ == "__main__":
    sys.exit(main())
