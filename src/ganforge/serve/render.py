"""What the web app draws: latents from seeds or pasted text, truncated and rendered to PNG bytes.

Everything here is deterministic in its inputs (seed, psi, t, ...), so PNGs are cached by their parameters and
served with a long Cache-Control; the page adds the checkpoint's nimg to its URLs so a new checkpoint is never
hidden by a cached image.
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import torch
from PIL import PngImagePlugin
from torch import nn

from ganforge.explore.directions import Directions, Edit, edited_images
from ganforge.explore.interpolate import lerp, slerp
from ganforge.generate import render, seed_latents
from ganforge.images import make_grid

LATENT_ABS_MAX = 10.0  # |z_i| above this has probability < 1e-22 under N(0, 1): a typo, not a latent
CACHE_ENTRIES = 512  # PNGs kept; at 28-128 px each is a few kB
MAX_OUTPUT_SIDE = 2048  # px: scale x grid size is capped so one request cannot ask for a huge image


class BadParameter(ValueError):
    """A query parameter the client must fix; the app answers 400 with {"error", "param"}."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def latent_to_text(z: torch.Tensor) -> str:
    """[z_dim] -> "0.12345679,-1.2345679,...": 9 significant digits round-trip float32 exactly."""
    return ",".join(f"{v:.9g}" for v in z.tolist())


def latent_from_text(text: str, z_dim: int, param: str = "z") -> torch.Tensor:
    """Parse `latent_to_text` output (commas and/or whitespace between numbers); errors name the problem."""
    if len(text) > z_dim * 32:
        raise BadParameter(param, f"{param} is too long for {z_dim} numbers")
    parts = [p for p in text.replace(",", " ").split() if p]
    if len(parts) != z_dim:
        raise BadParameter(param, f"{param} must hold exactly {z_dim} numbers (this generator's z_dim), got "
                                  f"{len(parts)}")
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise BadParameter(param, f"{param} holds something that is not a number ({exc})") from exc
    if not all(math.isfinite(v) and abs(v) <= LATENT_ABS_MAX for v in values):
        raise BadParameter(param, f"{param} values must be finite and within +-{LATENT_ABS_MAX:g}")
    return torch.tensor(values, dtype=torch.float32)


class Renderer:
    """A loaded generator behind a render semaphore and a PNG cache; safe to call from many threads."""

    def __init__(self, generator: nn.Module, z_dim: int, source_name: str, nimg: int, max_parallel: int = 2,
                 truncates: bool = True, space: str = "z") -> None:
        self.generator, self.z_dim, self.source_name, self.nimg = generator, z_dim, source_name, nimg
        self.truncates = truncates  # False when G normalises z (ProGAN): psi would change nothing
        self.space = space  # where psi acts: "z", or "w" inside a style-based G
        # Inference in eval mode under no_grad only reads the weights, so threads may share G; the semaphore
        # stops 200 concurrent requests from each starting a forward pass and thrashing the CPU's cores.
        self._gate = threading.BoundedSemaphore(max_parallel)
        self._cache: OrderedDict[Hashable, bytes] = OrderedDict()
        self._cache_lock = threading.Lock()

    def seed_latent(self, seed: int) -> torch.Tensor:
        return seed_latents([seed], self.z_dim)[0]

    def between(self, a: torch.Tensor, b: torch.Tensor, t: list[float], method: str) -> torch.Tensor:
        """[len(t), z_dim] latents from a to b."""
        return (slerp if method == "slerp" else lerp)(a, b, torch.tensor(t, dtype=torch.float32))

    def png(self, key: Hashable, make_latents: Callable[[], torch.Tensor], psi: float, scale: int,
            columns: int | None, text: dict[str, str], label: int | None = None,
            edits: Sequence[Edit] = ()) -> bytes:
        """PNG bytes of G(truncate(latents, psi)) as a grid, scaled by nearest neighbour; cached under `key`.

        `label` is the class index every image is drawn in for a conditional G (None for an unconditional one);
        `edits` move the latents along directions first (the sliders). The caller puts both in `key`.
        """
        if psi != 1.0 and not self.truncates:
            raise BadParameter("psi", "this generator normalises z, so truncation has no effect; use psi=1")
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        latents = make_latents()
        with self._gate:
            labels = None if label is None else torch.full((len(latents),), label, dtype=torch.long)
            images = (edited_images(self.generator, latents, edits, labels, psi) if edits else
                      render(self.generator, latents, labels=labels, psi=psi, space=self.space))
        grid = make_grid(images, columns, padding=2 if len(images) > 1 else 0)
        if max(grid.size) * scale > MAX_OUTPUT_SIDE:
            raise BadParameter("scale", f"scale {scale} would make a {grid.size[0] * scale}x{grid.size[1] * scale} "
                                        f"px image; the limit is {MAX_OUTPUT_SIDE} px a side")
        if scale > 1:
            grid = grid.resize((grid.size[0] * scale, grid.size[1] * scale), resample=0)  # 0 = nearest: crisp pixels
        info = PngImagePlugin.PngInfo()
        for name, value in {**text, "run": self.source_name, "kimg": f"{self.nimg / 1000:.1f}",
                            "Description": "Synthetic image made by a GAN (ganforge); not a photograph.",
                            "Software": "ganforge"}.items():
            info.add_text(name, value)
        buffer = io.BytesIO()
        grid.save(buffer, format="PNG", pnginfo=info)
        data = buffer.getvalue()
        with self._cache_lock:
            self._cache[key] = data
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return data


MAX_EDITS = 20  # directions moved in one request
EDIT_ABS_MAX = 10.0  # amounts in the direction's scale: +-3 is already far


def edits_from_text(text: str, directions: Directions | None) -> dict[int, float]:
    """`edit` as the page sends it, "0:1.5,3:-2" -> {0: 1.5, 3: -2.0}, every index and amount checked."""
    if directions is None:
        raise BadParameter("edit", "this server has no directions; start it with `ganforge serve RUN --directions "
                                   "DIR` (from `ganforge directions RUN --out DIR`)")
    amounts: dict[int, float] = {}
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) > MAX_EDITS:
        raise BadParameter("edit", f"edit moves at most {MAX_EDITS} directions at once")
    for part in parts:
        index, sep, amount = part.partition(":")
        try:
            i, a = int(index), float(amount)
        except ValueError:
            raise BadParameter("edit", f"edit: cannot read {part[:40]!r}; write INDEX:AMOUNT pairs, e.g. 0:1.5,3:-2") \
                from None
        if not sep or not 0 <= i < len(directions) or i in amounts:
            raise BadParameter("edit", f"edit: direction {index[:20]!r} is not one of 0-{len(directions) - 1} (each "
                                       "once)")
        if not math.isfinite(a) or abs(a) > EDIT_ABS_MAX:
            raise BadParameter("edit", f"edit: amounts must be finite and within +-{EDIT_ABS_MAX:g}")
        amounts[i] = a
    return {i: a for i, a in amounts.items() if a != 0}
