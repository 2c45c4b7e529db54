"""Reference Inception FIDs on real data: two disjoint MNIST slices, and MNIST against Fashion-MNIST.

    python benchmarks/fid_reference.py                   # 2,000 images per set, fid kid pr
    python benchmarks/fid_reference.py --n 500 --metrics fid --resize nv-bilinear-299

Sets: A = MNIST train[:n], B = MNIST train[n:2n], C = Fashion-MNIST train[:n], read from ../shared/data (IDX).
The stores and the feature cache live in a temporary folder, so A's features are extracted once and reused
(the second evaluation reports a cache hit). Prints each stamped score and the wall time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from ganforge.data.store import Manifest, Store, content_fingerprint, write_store
from ganforge.metrics import MetricOptions, evaluate_sets
from ganforge.metrics.inception import load_inception

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def idx_images(path: Path, start: int, stop: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        _, count, rows, cols = struct.unpack(">IIII", f.read(16))
        f.read(start * rows * cols)
        return np.frombuffer(f.read((stop - start) * rows * cols), np.uint8).reshape(-1, 1, rows, cols).copy()


def store(folder: Path, name: str, images: np.ndarray) -> Store:
    labels = np.zeros(len(images), np.int64)
    n, c, h, w = images.shape
    manifest = Manifest(count=n, channels=c, height=h, width=w, label_names=[],
                        fingerprint=content_fingerprint(images, labels), source=name)
    write_store(folder / f"{name}.gfs", images, labels, manifest)
    return Store(folder / f"{name}.gfs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--metrics", default="fid,kid,pr")
    parser.add_argument("--resize", default="pil-bicubic-299", choices=("pil-bicubic-299", "nv-bilinear-299"))
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    extractor = load_inception(resize=args.resize)
    print(f"extractor {extractor.source} {extractor.file_hash[:19]} resize {extractor.resize}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mnist = args.data / "mnist" / "train-images-idx3-ubyte.gz"
        fashion = args.data / "fashion-mnist" / "train-images-idx3-ubyte.gz"
        a = store(folder, "mnist-a", idx_images(mnist, 0, args.n))
        b = store(folder, "mnist-b", idx_images(mnist, args.n, 2 * args.n))
        c = store(folder, "fashion", idx_images(fashion, 0, args.n))
        for label, fake in ((f"MNIST train[:{args.n}] vs train[{args.n}:{2 * args.n}]", b),
                            (f"MNIST train[:{args.n}] vs Fashion-MNIST train[:{args.n}]", c)):
            started = time.perf_counter()
            results = evaluate_sets(a, fake, args.metrics.split(","), n=args.n, extractor=extractor,
                                    cache_dir=folder / "cache", batch_size=args.batch_size, progress=True,
                                    options=MetricOptions())
            wall = time.perf_counter() - started
            print(f"\n{label}: wall {wall:.1f} s (real features: cache {results[0]['cache']['real']})")
            for r in results:
                print(f"  {r['metric']:4s} {json.dumps(r['scores'])}  seconds {json.dumps(r['seconds'])}")


if __name__ == "__main__":
    main()
