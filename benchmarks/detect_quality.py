"""How well `ganforge detect` tells real images from generated ones, and how easily it is fooled: for a dataset,
a detector per backbone trained on reals against one generator's fakes, then evaluated on held-out reals against
that generator (in distribution) and another one (cross-generator), clean and after JPEG quality 75, and attacked
with FGSM and PGD at eps 1/255 to 8/255. Prints Markdown tables for BENCHMARKS.md. Usage:
    python benchmarks/detect_quality.py --real anime.gfs --train-fake RUN_A --other-fake RUN_B [RUN_C ...] --out det
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def ganforge(*args: str | Path) -> str:
    done = subprocess.run([sys.executable, "-m", "ganforge", *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"ganforge {' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, required=True, help="store of real images")
    parser.add_argument("--train-fake", type=Path, required=True, help="run or export the detector trains on")
    parser.add_argument("--other-fake", type=Path, nargs="+", required=True, help="runs or exports it never sees")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--n", type=int, default=1000, help="images per set in evaluation and attacks")
    parser.add_argument("--backbones", default="cnn,lite0")
    args = parser.parse_args()
    for backbone in args.backbones.split(","):
        det = args.out / f"det-{backbone}"
        started = time.perf_counter()
        ganforge("detect", "train", "--real", args.real, "--fake", args.train_fake, "--out", det, "--backbone",
                 backbone, "--steps", args.steps)
        minutes = (time.perf_counter() - started) / 60
        print(f"\n### {backbone}: trained {args.steps} steps in {minutes:.1f} min on {args.train_fake.name}\n")
        print(ganforge("detect", "eval", det, "--real", args.real, "--fake", args.train_fake, *args.other_fake,
                       "--n", args.n))
        for attack in ("fgsm", "pgd"):
            print(ganforge("detect", "attack", det, "--real", args.real, "--fake", args.train_fake, "--attack",
                           attack, "--eps", "1/255,2/255,4/255,8/255", "--n", args.n))


if __name__ == "__main__":
    main()
