"""Rebuild src/ganforge/embedded/mnist10k.gfs.gz: the first 10,000 MNIST training digits with labels.

MNIST is CC BY-SA 3.0 (Y. LeCun, C. Cortes, C. Burges). Usage:
    python scripts/make_embedded_mnist.py ../shared/data/mnist
"""

import gzip
import shutil
import sys
from pathlib import Path

import numpy as np

from ganforge.data.store import Manifest, content_fingerprint, write_store

COUNT = 10_000


def read_idx(path: Path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main(mnist_dir: Path) -> None:
    images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")[:COUNT, None]
    labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")[:COUNT].astype(np.int64)
    manifest = Manifest(COUNT, 1, 28, 28, [str(d) for d in range(10)], content_fingerprint(images, labels),
                        source="MNIST train[:10000] (CC BY-SA 3.0, LeCun, Cortes, Burges)", skipped=[])
    out = Path(__file__).resolve().parents[1] / "src/ganforge/embedded/mnist10k.gfs"
    write_store(out, images, labels, manifest)
    with open(out, "rb") as src, gzip.GzipFile(str(out) + ".gz", "wb", compresslevel=9, mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    out.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
