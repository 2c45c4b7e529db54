"""Latent walks (the DCGAN paper's Section 6.1 test against memorisation): smooth paths between seeds' latents.

A walk through keypoints z_0 .. z_k renders `frames` images per transition. Lerp moves on the straight
chord; slerp (Shoemake 1985) moves on the great circle, which keeps ||z|| near sqrt(z_dim), where almost all
of a Gaussian prior's mass lies (White 2016, "Sampling Generative Networks"), so mid-frames look as typical
as the ends. Out: an animated GIF (Pillow), an MP4 (imageio-ffmpeg, optional), or a PNG grid with one row
per transition.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganforge.errors import ConfigError
from ganforge.explore.classes import class_label, class_labels
from ganforge.generate import (
    check_grid_size,
    check_psi,
    check_truncation,
    render,
    render_styles,
    seed_latents,
    truncation_space,
)
from ganforge.images import MARK_VALUE, make_grid, save_png, to_pil
from ganforge.models.stylegan2 import StyleGAN2Generator
from ganforge.runs import load_generator
from ganforge.runs.output_guard import check_output_file, ganforge_animation, ganforge_png
from ganforge.whole_files import written_whole

METHODS = ("lerp", "slerp")
MAX_FRAMES = 2000  # all transitions together: a longer walk is minutes of video and a huge GIF
MAX_GRID_COLUMNS = 64
MAX_ANIMATION_BYTES = 1 << 30  # the enlarged frames, held together until written (Pillow copies them again)
DRAW_BATCH = 64  # frames per pass of G


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """[z_dim], [z_dim], t [F] -> [F, z_dim] on the straight line from a to b."""
    return a[None] + t[:, None] * (b - a)[None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """[z_dim], [z_dim], t [F] -> [F, z_dim] on the arc from a to b (norms interpolated linearly)."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega.sin()) < 1e-6:  # (anti)parallel: the arc is undefined or the chord; either way, lerp
        return lerp(a, b, t)
    weights_a = torch.sin((1 - t) * omega) / omega.sin()
    weights_b = torch.sin(t * omega) / omega.sin()
    return weights_a[:, None] * a[None] + weights_b[:, None] * b[None]


def walk(keypoints: torch.Tensor, frames: int, method: str = "slerp", *, include_end: bool = True) -> torch.Tensor:
    """[K, z_dim] keypoints -> latents [(K-1) * frames (+1 if include_end), z_dim], `frames` per transition."""
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is not an interpolation; choose lerp or slerp")
    step = lerp if method == "lerp" else slerp
    t = torch.arange(frames, dtype=torch.float32) / frames
    parts = [step(keypoints[i], keypoints[i + 1], t) for i in range(len(keypoints) - 1)]
    if include_end:
        parts.append(keypoints[-1:])
    return torch.cat(parts)


def interpolate(source: Path, seeds: list[int], out: Path, *, frames: int = 60, method: str = "slerp",
                psi: float = 1.0, loop: bool = False, fps: int = 30, scale: int | None = None,
                device: str = "cpu", class_name: str | None = None) -> int:
    """What `ganforge interpolate` does; returns the number of images rendered. A conditional run walks z with
    its class fixed to `class_name`."""
    check_psi(psi)
    if len(seeds) < 2:
        raise ConfigError("--seeds needs at least two seeds to walk between, e.g. --seeds 3,17,42")
    if frames < 1:
        raise ConfigError("--frames must be at least 1")
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4", ".png"):
        raise ConfigError(f"--out {out}: write .gif (animation), .mp4 (video) or .png (grid of rows)")
    check_output_file(out, "--out", ganforge_png if suffix == ".png" else ganforge_animation)
    keys = seeds + [seeds[0]] if loop else seeds
    transitions = len(keys) - 1
    if suffix == ".png" and frames > MAX_GRID_COLUMNS:
        raise ConfigError(f"--frames {frames} is too wide for a grid row; use at most {MAX_GRID_COLUMNS} with .png")
    if transitions * frames > MAX_FRAMES:
        raise ConfigError(f"{transitions} transitions x --frames {frames} is over {MAX_FRAMES} frames; "
                          "use fewer seeds or frames")
    generator, config, nimg = load_generator(source, device)
    check_truncation(config, psi)
    label = class_label(source, config, class_name)
    space = truncation_space(config)
    keypoints = seed_latents(keys, config.model.z_dim)
    # An ONNX/TorchScript export has no mapping to walk: it walks z, with psi applied inside the graph.
    style = generator if space == "w" and isinstance(generator, StyleGAN2Generator) else None
    in_w = style is not None
    if style is not None:  # a style-based G walks its W, on straight lines (what its synthesis reads)
        method = "lerp"
        where = next(style.parameters()).device
        with torch.no_grad():
            keypoints = style.mapping(keypoints.to(where), class_labels(label, len(keypoints), where), psi).cpu()
    text = {"run": str(source), "seeds": ",".join(map(str, keys)), "method": method + (" in W" if in_w else ""),
            "psi": f"{psi:g}", "frames": str(frames), "kimg": f"{nimg / 1000:.1f}"}

    def draw(latents: torch.Tensor) -> torch.Tensor:
        if style is not None:
            return render_styles(style, latents.unsqueeze(1).expand(-1, style.num_ws, -1))
        return render(generator, latents, labels=class_labels(label, len(latents)), psi=psi, space=space)

    if class_name is not None:
        text["class"] = class_name
    if suffix == ".png":
        # One row per transition, both ends included, as in the DCGAN paper's Figure 4.
        columns = max(frames, 2)
        cells = torch.cat([walk(keypoints[i : i + 2], columns - 1, method) for i in range(transitions)])
        first = draw(cells[:1])  # its size bounds the grid before the rest is drawn
        factor = scale or 1  # the grid's cells enlarged only when asked, as the animations' frames are
        _check_memory(len(cells), first.shape[2], first.shape[3], factor)
        check_grid_size(len(cells), first.shape[2] * factor, first.shape[3] * factor, columns)
        images = torch.cat([first, draw(cells[1:])])  # render batches its input
        if factor > 1:
            images = images.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
            text["scale"] = str(factor)
        save_png(make_grid(images, columns=columns), out, text)
        return len(images)
    # A looping animation must not show its first frame twice in a row, so it leaves the end out.
    latents = walk(keypoints, frames, method, include_end=not loop)
    first = draw(latents[:1])
    factor = scale or max(1, 256 // max(first.shape[2], first.shape[3]))
    _check_memory(len(latents), first.shape[2], first.shape[3], factor)
    images = torch.cat([first, *(draw(chunk) for chunk in latents[1:].split(DRAW_BATCH))])
    pictures = _upscale(images, factor)
    if suffix == ".gif":
        write_gif(pictures, out, fps)
    else:
        write_mp4(pictures, out, fps)
    return len(images)


def _check_memory(count: int, height: int, width: int, factor: int) -> None:
    needed = count * height * width * factor * factor * 3  # the enlarged RGB frames
    if needed > MAX_ANIMATION_BYTES:
        raise ConfigError(f"{count} frames of {width * factor}x{height * factor} px would take {needed / 2**30:.1f} "
                          f"GiB of memory (at most {MAX_ANIMATION_BYTES / 2**30:g}); use fewer --frames or a "
                          "smaller --scale")


def _upscale(images: torch.Tensor, factor: int) -> list[np.ndarray]:
    """uint8 [N, C, H, W] -> HWC RGB frames, enlarged `factor` times by nearest neighbour."""
    frames = images.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
    if frames.shape[1] == 1:
        frames = frames.expand(-1, 3, -1, -1)  # grey -> RGB: video codecs and GIF palettes expect colour
    return list(frames.permute(0, 2, 3, 1).contiguous().numpy())


def write_gif(frames: list[np.ndarray], out: Path, fps: int) -> None:
    pictures = [to_pil(frame) for frame in frames]
    # GIF delays are whole hundredths of a second; `loop=0` repeats forever.
    with written_whole(out) as temporary:
        pictures[0].save(temporary, save_all=True, append_images=pictures[1:], duration=max(20, round(1000 / fps)),
                         loop=0, optimize=False, comment=MARK_VALUE.encode())  # the mark a later --out may replace


def write_mp4(frames: list[np.ndarray], out: Path, fps: int) -> None:
    try:
        import imageio_ffmpeg  # optional extra: ganforge[video]
    except ImportError as exc:
        raise ConfigError(f"--out {out}: MP4 needs imageio-ffmpeg (pip install 'ganforge[video]'); or write a .gif"
                          ) from exc
    height, width = frames[0].shape[:2]
    # H.264 in yuv420p wants even sizes; pad with black rather than resample.
    pad_h, pad_w = height % 2, width % 2
    with written_whole(out) as temporary:
        writer = imageio_ffmpeg.write_frames(str(temporary), (width + pad_w, height + pad_h), fps=fps,
                                             codec="libx264", pix_fmt_out="yuv420p", macro_block_size=1, quality=8,
                                             output_params=["-metadata", f"comment={MARK_VALUE}"])  # output_guard
        writer.send(None)  # the generator protocol: prime it before sending frames
        for frame in frames:
            writer.send(np.ascontiguousarray(np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)))))
        writer.close()

