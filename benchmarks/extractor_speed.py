"""CPU throughput of the feature extractors: images per second through Inception-v3 (FID weights) and random-conv,
and (with --lite) Projected GAN's frozen EfficientNet-Lite feature networks, forward + backward to the input.

    python benchmarks/extractor_speed.py                 # 500 images, batch 50, both extractors
    python benchmarks/extractor_speed.py --n 200 --size 28 --channels 1
    python benchmarks/extractor_speed.py --extractors "" --lite lite0,lite1,lite2 --batch-size 16   # 64 px
    python benchmarks/extractor_speed.py --extractors "" --layouts --n 100   # channels-last against not

Inputs are random uint8 images (the cost of Inception does not depend on the pixels: everything is resized to
299x299 first). One warm-up batch is run and not timed (TorchScript's profiling executor optimises on the first
calls). Prints one line per extractor. --lite times what G's step pays for D's feature network (`--model projected
--features NAME`): the four taps of the BatchNorm-folded network (frozen_features.py), their sum backpropagated to
the images, in fp32, one warm-up pass not timed. --layouts times Inception on channels-last input (its default on
the CPU) and on contiguous input, alternating, two rounds, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ganforge.errors import ConfigError
from ganforge.metrics.features import extract_features, load_extractor
from ganforge.models.efficientnet_lite import VARIANTS, load_pretrained
from ganforge.models.frozen_features import FrozenFeatures


def measure(name: str, images: torch.Tensor, batch_size: int, device: str) -> None:
    try:
        extractor = load_extractor(name, device=device)
    except ConfigError as exc:
        print(f"{name:12s} skipped: {exc}")
        return
    extract_features(extractor, [images[:batch_size]])  # warm-up, not timed
    started = time.perf_counter()
    features = extract_features(extractor, images.split(batch_size))
    seconds = time.perf_counter() - started
    print(f"{name:12s} {len(images) / seconds:8.1f} img/s  ({len(images)} images {tuple(images.shape[1:])}, "
          f"batch {batch_size}, {seconds:.1f} s, {features.features.shape[1]}-d, resize {extractor.resize}, "
          f"{extractor.file_hash[:19]})")


def measure_layouts(images: torch.Tensor, batch_size: int, device: str) -> None:
    """Inception's img/s on channels-last and on contiguous input, alternating in this process, and the ratio."""
    extractor = load_extractor("inception", device=device)
    extract_features(extractor, [images[:batch_size]])  # warm-up, not timed
    best = {}
    for _ in range(2):
        for layout in (torch.channels_last, torch.contiguous_format):
            extractor.memory_format = layout  # type: ignore[attr-defined]
            started = time.perf_counter()
            extract_features(extractor, images.split(batch_size))
            best[layout] = max(best.get(layout, 0.0), len(images) / (time.perf_counter() - started))
    last, contiguous = best[torch.channels_last], best[torch.contiguous_format]
    print(f"inception    channels-last {last:.2f} img/s, contiguous {contiguous:.2f} img/s: {last / contiguous:.2f}x "
          f"(best of 2, alternating, {len(images)} images, batch {batch_size})")


def measure_lite(name: str, images: torch.Tensor, batch_size: int, device: str) -> None:
    """Forward + backward to the input through the frozen EfficientNet-Lite `name`, per batch and per image."""
    try:
        network = FrozenFeatures(load_pretrained(VARIANTS[name])).to(device)
    except ConfigError as exc:
        print(f"{name:12s} skipped: {exc}")
        return
    batches = [(b.to(device).float() / 127.5 - 1).requires_grad_() for b in images.split(batch_size)]
    sum(t.sum() for t in network(batches[0])).backward()  # warm-up, not timed
    started = time.perf_counter()
    for batch in batches:
        sum(t.sum() for t in network(batch)).backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    print(f"{name:12s} {1000 * seconds / len(batches):8.1f} ms/batch forward+backward  ({len(images) / seconds:.1f} "
          f"img/s, {len(images)} images {tuple(images.shape[1:])}, batch {batch_size}, "
          f"taps {network.variant.feature_channels})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="images per extractor")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--size", type=int, default=64, help="input height = width")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--extractors", default="inception,random-conv")
    parser.add_argument("--layouts", action="store_true", help="Inception on channels-last against contiguous input")
    parser.add_argument("--lite", default="", help="EfficientNet-Lite feature networks to time, e.g. lite0,lite1,lite2")
    args = parser.parse_args()
    lite = [name for name in args.lite.split(",") if name]
    if unknown := sorted(set(lite) - set(VARIANTS)):
        parser.error(f"--lite takes {', '.join(VARIANTS)}, not {', '.join(unknown)}")
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.n, args.channels, args.size, args.size), generator=generator,
                           dtype=torch.uint8)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"device {args.device}")
    for name in filter(None, args.extractors.split(",")):
        measure(name, images, args.batch_size, args.device)
    if args.layouts:
        measure_layouts(images, args.batch_size, args.device)
    for name in lite:
        measure_lite(name, images, args.batch_size, args.device)


if __name__ == "__main__":
    main()
