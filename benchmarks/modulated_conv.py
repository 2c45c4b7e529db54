"""StyleGAN2's modulated convolution in its two forms, timed on this machine (BENCHMARKS.md, StyleGAN2).

- grouped: the paper's form (Appendix B): one modulated, demodulated weight per sample, the batch folded into
  the channels, one grouped convolution (groups = B);
- shared: what ganforge's `ModulatedConv2d` runs for a batch: the styles scale the input channels, one convolution
  with the shared weight, the demodulation factors scale the output channels (the same function: convolution is
  linear).
Both run forward (sampling) and forward + backward (training) on the same inputs, one right after the other, so
their ratio holds on a busy machine better than their times. Usage:
    python benchmarks/modulated_conv.py [--batch 8] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from ganforge.models.stylegan2_layers import ModulatedConv2d


def grouped_form(conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    batch, in_ch, height, width = x.shape
    weight = conv.weight * conv.weight_gain
    modulated = weight.unsqueeze(0) * conv.affine(w).view(batch, 1, in_ch, 1, 1)
    modulated = modulated * (modulated.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    out_ch, k = modulated.shape[1], conv.kernel
    x = x.reshape(1, batch * in_ch, height, width)
    if conv.resample is not None:
        grouped = modulated.transpose(1, 2).reshape(batch * in_ch, out_ch, k, k)
        x = conv.resample.blur(F.conv_transpose2d(x, grouped, stride=2, groups=batch), pad=1, gain=4.0)
    else:
        x = F.conv2d(x, modulated.reshape(batch * out_ch, in_ch, k, k), padding=k // 2, groups=batch)
    return x.reshape(batch, out_ch, *x.shape[2:])


def milliseconds(form: Callable[[], torch.Tensor], train: bool, repeats: int) -> float:
    def call() -> None:
        if train:
            form().square().mean().backward()
        else:
            with torch.no_grad():
                form()

    call()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"batch {args.batch}, {args.threads} threads, fp32; ms per call (grouped / shared = speed-up)")
    print("| layer | sampling: grouped | shared | speed-up | training: grouped | shared | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for channels, resolution, up in [(512, 8, False), (512, 16, False), (512, 16, True), (256, 32, False),
                                     (256, 32, True), (128, 64, False)]:
        conv = ModulatedConv2d(channels, channels, 3, 512, up=up)
        x = torch.randn(args.batch, channels, resolution, resolution, requires_grad=True)
        w = torch.randn(args.batch, 512)
        torch.testing.assert_close(grouped_form(conv, x, w), conv(x, w), rtol=1e-4, atol=1e-4)
        row = []
        for train in (False, True):
            grouped = milliseconds(partial(grouped_form, conv, x, w), train, args.repeats)
            shared = milliseconds(partial(conv, x, w), train, args.repeats)
            row += [f"{grouped:.0f}", f"{shared:.0f}", f"{grouped / shared:.2f}x"]
        name = f"{channels} ch {resolution} px{' up' if up else ''}"
        print(f"| {name} | {' | '.join(row)} |", flush=True)


if __name__ == "__main__":
    main()
