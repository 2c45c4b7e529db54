"""The README demo's first impression, measured: train `ganforge train` (embedded MNIST digits) as a new user
would, then let a small MNIST classifier, trained here on 20,000 real digits, read 1,000 generated samples.

Reports the wall-clock time, the fraction of samples read with confidence >= 0.9 and how often each digit is
drawn; DEMO_KEEP=folder keeps the run to look at. Usage (extra arguments go to `ganforge train`):
    python benchmarks/demo_quality.py                      # the demo exactly as README runs it
    python benchmarks/demo_quality.py --kimg 50 --seed 1   # a variant
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ganforge.generate import render, seed_latents
from ganforge.runs import load_generator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from data_slices import idx_images, idx_labels  # noqa: E402
from digit_judge import accuracy, judge_digits, train_judge  # noqa: E402

SAMPLES = 1000


def main(train_args: list[str]) -> None:
    judge = train_judge(idx_images("mnist", "train", 0, 20_000), idx_labels("mnist", "train", 0, 20_000))
    judge_accuracy = accuracy(judge, idx_images("mnist", "t10k", 0, 2000), idx_labels("mnist", "t10k", 0, 2000))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = os.environ.get("DEMO_KEEP", tmp)  # DEMO_KEEP=folder keeps the run to look at
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ganforge", "train", "--out", tmp, "--no-progress", *train_args],
                       check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        (run,) = Path(tmp).iterdir()
        generator, config, nimg = load_generator(run)
        # A conditional run draws its classes in turn, as `ganforge evaluate` and the sample grid do.
        labels = torch.arange(SAMPLES) % config.model.num_classes if config.model.conditional else None
        images = render(generator, seed_latents(list(range(SAMPLES)), config.model.z_dim), labels=labels)
    verdict = judge_digits(judge, images)
    print(f"ganforge train {' '.join(train_args)}: {nimg / 1000:.0f} kimg in {seconds / 60:.1f} min; "
          f"{verdict.describe()}; judge accuracy on real test digits {judge_accuracy:.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
