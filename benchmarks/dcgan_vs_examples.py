"""ganforge's DCGAN against the PyTorch examples' DCGAN (github.com/pytorch/examples, dcgan/main.py), end to end:
each trains one epoch over the same folder of JPEG faces at 64 px, batch 64, as a user would run it, and the
wall time of each whole command is taken, start-up included. The peer runs unmodified, with its own JPEG loader
(torchvision's ImageFolder, two worker processes by default); ganforge trains from a store prepared once from
that folder, whose preparation is timed and reported apart (a store is made once and trained on many times).

torchvision's PyPI wheel is built against CUDA torch: beside the CPU build its compiled operators (nms,
roi_align: detection ops the DCGAN example never calls) do not load, and `import torchvision` fails registering
their fake implementations. When that happens the peer runs with two empty stand-ins for those registration
modules (a `sitecustomize.py` on its PYTHONPATH, said in the output); the datasets, transforms and image saving
the example uses are plain Python and PIL, untouched.

    python -m venv peer && peer/bin/pip install torch==2.13.0 torchvision==0.28.0   # the peer's own needs
    python benchmarks/dcgan_vs_examples.py --peer examples/dcgan/main.py --peer-python peer/bin/python

The pairs alternate which side runs first, so a machine that speeds up or slows down over the minutes costs
both sides alike; the ratio reported is the median of the pairs' ratios (issue 28's target: >= 2.5).
ganforge runs with the flags a CPU user of this machine would pass (`--precision bf16 --channels-last` where the
CPU computes bf16, which ganforge measured faster there, BENCHMARKS.md; none where it would emulate bf16),
`--kimg` equal to one epoch, and otherwise its DCGAN defaults:
it also writes its sample grid, checkpoint and log as the peer writes its grid and weights.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from ganforge.device import speed_flags

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FACES = SHARED / "anime-faces" / "anime_faces_20k_64_jpg.tar.gz"
GANFORGE_FLAGS = ["--model", "dcgan", "--batch", "64", *speed_flags(torch.device("cpu")), "--no-progress"]


def extract_faces(archive: Path, count: int, folder: Path) -> int:
    """The first `count` JPEGs of `archive` into folder/faces/ (ImageFolder wants one subfolder per class)."""
    target = folder / "faces"
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    with tarfile.open(archive) as tar:
        for member in tar:
            if written == count:
                break
            if member.isfile() and member.name.lower().endswith((".jpg", ".jpeg")):
                source = tar.extractfile(member)
                assert source is not None
                (target / f"{written:06d}.jpg").write_bytes(source.read())
                written += 1
    return written


STAND_INS = """import sys, types
for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(name, types.ModuleType(name))
"""


def peer_environment(python: str, work: Path) -> dict[str, str]:
    """The peer's environment: this one, plus the stand-ins when its torchvision cannot import without them."""
    env = dict(os.environ)
    probe = subprocess.run([python, "-c", "import torchvision"], capture_output=True, text=True, check=False)
    if probe.returncode == 0:
        return env
    if "operator torchvision::" not in probe.stderr:
        sys.exit(f"--peer-python {python} cannot import torchvision:\n{probe.stderr.strip()[-2000:]}")
    shim = work / "peer-shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(STAND_INS)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), env.get("PYTHONPATH")]))
    print("the peer's torchvision is a CUDA build whose detection operators do not load here: it runs with "
          f"stand-ins for their registrations ({shim / 'sitecustomize.py'})")
    return env


def timed(command: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Seconds the whole command took; its output goes to `log`, and a failure ends the benchmark showing it."""
    start = time.perf_counter()
    with log.open("w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}); its output is in {log}:\n"
                 + "\n".join(log.read_text().splitlines()[-20:]))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", type=Path, required=True, help="pytorch/examples' dcgan/main.py, unmodified")
    parser.add_argument("--peer-python", default=sys.executable, help="a Python with torch and torchvision")
    parser.add_argument("--images", type=int, default=5120, help="one epoch: this many faces (a multiple of 64)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--archive", type=Path, default=FACES, help="a .tar.gz of 64 px JPEGs")
    parser.add_argument("--work", type=Path, help="keep the folder, store and runs here (default: temporary)")
    args = parser.parse_args()
    if not args.peer.is_file():
        sys.exit(f"--peer {args.peer}: no such file; clone github.com/pytorch/examples and pass its dcgan/main.py")
    if not args.archive.is_file():
        sys.exit(f"--archive {args.archive}: no such file (the anime faces of ../shared/data, or any 64 px JPEGs)")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        folder = work / "jpg"
        env = peer_environment(args.peer_python, work)
        count = extract_faces(args.archive, args.images, folder)
        store = work / "faces.gfs"
        store.unlink(missing_ok=True)
        prepare_s = timed([sys.executable, "-m", "ganforge", "prepare", str(folder), "--out", str(store),
                           "--resolution", "64"], work / "prepare.log")
        print(f"{count} JPEGs at 64 px; `ganforge prepare` made the store in {prepare_s:.1f} s "
              "(once, not in the pairs)")
        print("| pair | examples s | ganforge s | ratio | ganforge + prepare ratio |\n|---|---:|---:|---:|---:|")
        ratios, with_prepare = [], []
        for pair in range(args.pairs):
            peer = [args.peer_python, str(args.peer), "--dataset", "folder", "--dataroot", str(folder), "--niter",
                    "1", "--outf", str(work / f"examples-{pair}"), "--manualSeed", str(pair + 1)]
            ours = [sys.executable, "-m", "ganforge", "train", "--data", str(store), "--kimg", f"{count / 1000:g}",
                    "--seed", str(pair + 1), "--out", str(work / f"ganforge-{pair}"), *GANFORGE_FLAGS]
            sides = [("examples", peer), ("ganforge", ours)]
            seconds = {name: timed(command, work / f"{name}-{pair}.log", env if name == "examples" else None)
                       for name, command in (sides if pair % 2 == 0 else sides[::-1])}
            ratios.append(seconds["examples"] / seconds["ganforge"])
            with_prepare.append(seconds["examples"] / (seconds["ganforge"] + prepare_s))
            print(f"| {pair + 1} | {seconds['examples']:.1f} | {seconds['ganforge']:.1f} | {ratios[-1]:.2f} | "
                  f"{with_prepare[-1]:.2f} |", flush=True)
        print(f"median ratio {statistics.median(ratios):.2f} (with the store's preparation charged to every run: "
              f"{statistics.median(with_prepare):.2f})")


if __name__ == "__main__":
    main()
