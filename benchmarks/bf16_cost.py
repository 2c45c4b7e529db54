"""What bf16 autocast costs or buys on this CPU: DCGAN's G and D at 64 px (batch 64), forward and backward, in
fp32 and under bf16 autocast, alternating in one process (fp32 again last, so a drifting machine shows).

    python benchmarks/bf16_cost.py

On a CPU with AVX512-BF16 or AMX bf16 is the faster choice (`ganforge train` picks it there); elsewhere PyTorch
emulates it, and `ganforge train --precision bf16` warns with the factor measured here.
"""

from __future__ import annotations

import time

import torch

from ganforge.config import TrainConfig
from ganforge.device import flush_denormals, has_fast_bf16
from ganforge.models import build_networks

BATCH, SIDE, REPEATS = 64, 64, 3


def img_per_s(generator: torch.nn.Module, discriminator: torch.nn.Module, z_dim: int, bf16: bool) -> float:
    z = torch.randn(BATCH, z_dim)

    def once() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            scores = discriminator(generator(z))
        scores.float().sum().backward()

    once()  # first calls pick kernels
    start = time.perf_counter()
    for _ in range(REPEATS):
        once()
    return BATCH * REPEATS / (time.perf_counter() - start)


def main() -> None:
    flush_denormals()
    config = TrainConfig()
    nets = build_networks(config.model, (3, SIDE, SIDE))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16: {has_fast_bf16(torch.device('cpu'))}; DCGAN G + D forward and backward, {SIDE} px, "
          f"batch {BATCH}")
    for name in ("fp32", "bf16", "fp32"):
        speed = img_per_s(nets.generator, nets.discriminator, config.model.z_dim, name == "bf16")
        print(f"{name}: {speed:.1f} img/s", flush=True)


if __name__ == "__main__":
    main()
