"""Where tensors run: the one home of device names and the CPU float mode every command shares."""

from __future__ import annotations

import torch

from ganforge.errors import ConfigError

# Measured on an AVX2-only AMD EPYC (2 cores; BENCHMARKS.md, "On a CPU without bf16"): DCGAN's G and D at 64 px,
# forward and backward, 2.6 img/s under bf16 autocast against 44 in fp32.
BF16_EMULATION_COST = "DCGAN at 64 px: 17x slower than fp32 on an AVX2 CPU"


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when a GPU is visible, else cpu; "cpu", "cuda", "cuda:N" as torch reads them."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is visible to torch; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: torch sees {torch.cuda.device_count()} GPU(s), cuda:0 to "
                          f"cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: this torch has no Apple GPU (MPS) to use; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {name!r} is not a device ganforge runs on; use auto, cpu, cuda or cuda:N")
    return device


def flush_denormals() -> None:
    """Treat denormal floats as zero on the CPU.

    Denormals (tiny gradients and Adam moments) run ~20x slower on x86 CPUs: measured 2,400 vs 100-400 img/s on a
    small DCGAN. GPUs already flush them, and flushing costs no quality. Call it before any torch op creates the
    CPU thread pool, whose threads inherit the setting.
    """
    torch.set_flush_denormal(True)


def has_fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast speeds training up here: CUDA GPUs with bf16 units (Ampere and later), and CPUs with
    AVX512-BF16 (measured 1.6-2x on this project's EPYC). Elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private, so read defensively
    return bool(probe()) if probe is not None else False


def speed_flags(device: torch.device) -> list[str]:
    """The `ganforge train` flags that measured faster on `device` for every family: bf16 and channels-last where
    it computes bf16 natively, none where it would emulate bf16 (there channels-last alone gained nothing: DCGAN
    26.8 against 26.2 img/s, Projected GAN 17.4 against 17.2). For scripts that run `ganforge train`."""
    return ["--precision", "bf16", "--channels-last"] if has_fast_bf16(device) else []


def slow_precision_note(precision: str, device: torch.device) -> str | None:
    """A warning line for --precision bf16 where the device would emulate it: on a CPU without AVX512-BF16 or AMX
    (most laptops and AVX2 servers) a bf16 run trains many times slower than fp32, and nothing else says why."""
    if precision != "bf16" or has_fast_bf16(device):
        return None
    where = "this CPU has no bf16 arithmetic (AVX512-BF16 or AMX)" if device.type == "cpu" else \
        f"{device} has no native bf16 arithmetic"
    return (f"warning: --precision bf16, but {where}, so PyTorch emulates it ({BF16_EMULATION_COST}). "
            "Drop --precision bf16 (fp32 is the default), or pass --precision fp32 to a resumed run.")
