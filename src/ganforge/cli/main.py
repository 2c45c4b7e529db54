"""The `ganforge` command: parse flags, build configs, call one function per command. No logic of its own."""

from __future__ import annotations

import errno
import io
import os
import sys
from pathlib import Path
from typing import Any

import click

from ganforge.cli.detect import detect
from ganforge.cli.explore import register as register_explore_commands
from ganforge.cli.options import PathParam, SectionedCommand, given_settings, options_of
from ganforge.config import TrainConfig
from ganforge.config.registry import setting_info
from ganforge.data.pairing import PairOptions
from ganforge.errors import ConfigError, GanforgeError, PartlyWritten, TrainingInterrupted
from ganforge.regular_files import NotARegularFile
from ganforge.terminal_text import terminal_safe
from ganforge.version import __version__

setting_options = options_of(TrainConfig)  # the `train` command's options


class _Group(click.Group):
    """Errors a user can act on end the command with one line and a non-zero exit (`--debug`: the traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            line, code = _one_line(exc)
            if line is None:
                raise
            interrupted = isinstance(exc, TrainingInterrupted)
            # torchrun's ranks stop together, and read the same flags, so they meet the same ConfigError: rank 0
            # says it once. Other errors (a file one rank could not read) may be a rank's own: each says its own.
            said_by_rank_0 = interrupted or isinstance(exc, ConfigError)
            if not (said_by_rank_0 and os.environ.get("RANK", "0") != "0"):
                click.secho(terminal_safe(line), fg="yellow" if interrupted else "red", err=True)
            sys.exit(code)


def _one_line(exc: Exception) -> tuple[str | None, int]:
    """The message and exit code for an error the user can fix; (None, 1) for a bug, whose traceback is shown."""
    if isinstance(exc, TrainingInterrupted):
        return str(exc), exc.exit_code
    if isinstance(exc, PartlyWritten):  # the cause's own line (a hint for a full disk, say), then what was written
        line, code = _one_line(exc.cause)
        return (None, 1) if line is None else (f"{line} {exc.note}", code)
    if isinstance(exc, GanforgeError):
        return f"error: {exc}", exc.exit_code
    if isinstance(exc, NotARegularFile):  # a FIFO, device or folder where a reader or writer expected a file
        return f"error: {exc.filename}: {exc.strerror}; move it away, ganforge reads and writes only files there", 1
    if isinstance(exc, OSError) and exc.errno in _OS_HINTS:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"error: {where}{exc.strerror}; {_OS_HINTS[exc.errno]}", 1
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)):
        return "error: out of memory; use a smaller --batch (or --batch-gpu N), smaller networks or fewer images", 1
    return None, 1


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space, then run the command again (a run resumes from its last "
                  "checkpoint)",
    errno.EDQUOT: "the disk quota is used up: free space, then run the command again",
    errno.EROFS: "that file system is read-only: choose a writable folder",
    errno.EACCES: "permission denied: choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted: choose a folder you can write to",
    errno.ENOENT: "no such file or folder: check the path",
    errno.ENOTDIR: "a part of that path is a file, not a folder: choose another path",
    errno.EISDIR: "that path is a folder, not a file: name a file",
    errno.EEXIST: "it already exists: choose another path",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter one",
    errno.EIO: "the disk reported an input/output error: check the disk",
    errno.EFBIG: "the file would pass a size limit (the file system's, or `ulimit -f`): write it elsewhere, or "
                 "make it smaller",
}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="ganforge")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Train GANs on a folder of images; generate, evaluate and explore what they learn."""
    ctx.obj = {"debug": debug}
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \xff, never a traceback
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


@main.command()
@click.argument("source", required=False, type=PathParam(path_type=Path))
@click.option("--out", "out", type=PathParam(path_type=Path), required=True, help="Store file to write (.gfs).")
@click.option("--a", "folder_a", type=PathParam(path_type=Path),
              help="With --pairs by-name or --unpaired: the folder (or archive) of inputs, domain A.")
@click.option("--b", "folder_b", type=PathParam(path_type=Path),
              help="With --pairs by-name or --unpaired: the folder (or archive) of targets, domain B.")
@options_of(PairOptions)
@click.option("--resolution", help="Output size: N for NxN, or WxH. Default: the first usable image's size.")
@click.option("--crop", type=click.Choice(["center", "pad", "none"]), default="center", show_default=True,
              help="Fit other aspect ratios by centre-cropping, letterbox padding, or stretching.")
@click.option("--channels", type=click.Choice(["1", "3"]), help="1 = grey, 3 = RGB. Default: from the images.")
@click.option("--labels", type=click.Choice(["folders", "none"]), default="none", show_default=True,
              help="folders: one class per first-level subfolder. IDX label files are always used.")
@click.option("--min-size", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip images whose shorter side is below this many pixels.")
@click.option("--force", is_flag=True, help="Replace an existing --out file that is not a store (a store is always "
              "replaced; a file inside SOURCE never is).")
def prepare(source: Path | None, out: Path, folder_a: Path | None, folder_b: Path | None, resolution: str | None,
            crop: str, channels: str | None, labels: str, min_size: int, force: bool, **pairing: Any) -> None:
    """Check, decode and pack SOURCE (image folder, .zip, MNIST IDX, .npz) into one training store; with
    --pairs, --unpaired or --make-pairs, into a store of input/target pairs for image-to-image translation."""
    from ganforge.api import prepare as run_prepare

    run_prepare(source, out, resolution=resolution or None, crop=crop, channels=int(channels) if channels else None,
                labels=labels, min_size=min_size, force=force, echo=click.echo, a=folder_a, b=folder_b,
                **{"__".join(path): value for path, value in given_settings(pairing).items()})


@main.command(cls=SectionedCommand)
@click.option("--preset", help="A named recipe (see --list-presets); other flags override its settings.")
@click.option("--list-presets", is_flag=True, help="List the presets and exit.")
@click.option("--resume", type=PathParam(path_type=Path), help="Run folder to continue exactly where it stopped.")
@click.option("--config", "config_file", type=PathParam(path_type=Path),
              help="Settings from a JSON, TOML or YAML file (a run's config.json reruns it); flags override it.")
@setting_options
@click.option("--phase-kimg", type=float, help="progan: kimg of each fade-in and each stabilisation phase. "
              f"[{setting_info(('fade_kimg',)).default_text}]")
@click.option("--summary", is_flag=True, help="Print the networks' layer tables and parameter counts, then exit.")
@click.option("--resolution", type=int, help="With --summary and no --data: the square image size. [store's]")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and the networks' sizes, then exit.")
@click.option("--no-progress", is_flag=True, help="No progress bar (status lines only).")
def train(resume: Path | None, config_file: Path | None, dry_run: bool, no_progress: bool, preset: str | None,
          list_presets: bool, summary: bool, resolution: int | None, phase_kimg: float | None, **params: Any) -> None:
    """Train a GAN. Without --model or --preset, the recipe measured best for the store is chosen and named in
    the first line; with no flags at all, a class-conditional DCGAN on the embedded MNIST digits (about 2.5
    minutes on 2 CPU cores)."""
    from ganforge.recipes.presets import describe_presets
    from ganforge.training import RunRequest, model_summary, train_from_paths

    if list_presets:
        click.echo(describe_presets())
        return
    given = given_settings(params)
    if resolution is not None and (not summary or ("data",) in given):
        raise ConfigError("--resolution is the image size of a --summary without --data; a store's images have "
                          "their own size (prepare it at another with `ganforge prepare --resolution N`)")
    if config_file is not None:
        from ganforge.config.file import settings_from_file

        if resume is not None:
            raise ConfigError("--config starts a new run from a file; --resume continues one: give one of them")
        given = {**settings_from_file(config_file), **given}
    request = RunRequest(given, preset=preset, phase_kimg=phase_kimg, resume=resume,
                         choose_recipe=preset is None)
    if summary:
        click.echo(model_summary(request, resolution))
        return
    train_from_paths(request, dry_run=dry_run, progress=not no_progress, echo=click.echo)


@main.command()
@click.argument("path", type=PathParam(path_type=Path))
def doctor(path: Path) -> None:
    """Check a store, a run folder or an exported folder as the commands open them; one line per finding.
    Exit 0 when all is well, 1 when something is wrong. Reads only."""
    from ganforge.doctor import diagnose

    findings = diagnose(path)
    for finding in findings:
        click.echo(terminal_safe(str(finding)))  # a file name's newline must not split or fake a finding
    if not all(f.ok for f in findings):
        sys.exit(1)


@main.command()
@click.argument("run_dir", required=False, type=PathParam(path_type=Path))
@click.option("--metrics", "metrics_text",
              help="Comma-separated: fid, kid, is, pr; with a run also memorization, probe; with a paired "
              "image-to-image run psnr, ssim. [fid; psnr,ssim for a paired image-to-image run]")
@click.option("--n", type=click.IntRange(2, 1_000_000), default=10_000, show_default=True,
              help="Images per set (generated, and real from the store).")
@click.option("--data", type=PathParam(path_type=Path), help="Real images: a store other than the run's own.")
@click.option("--real", type=PathParam(path_type=Path), help="Without a run: the real set (store or image folder).")
@click.option("--fake", type=PathParam(path_type=Path), help="Without a run: the generated set (store or folder).")
@click.option("--json", "json_path", type=PathParam(path_type=Path), help="Write every score with its protocol.")
@click.option("--extractor", type=click.Choice(["inception", "random-conv"]), default="inception", show_default=True,
              help="Feature network; random-conv is a fast offline stand-in, not comparable with published FIDs.")
@click.option("--inception", "inception_path", type=PathParam(path_type=Path),
              help="TorchScript Inception weights (NVIDIA's inception-2015-12-05.pt or fid-helper's default_1.pt).")
@click.option("--download-inception", is_flag=True,
              help="If no weights are installed, download NVIDIA's inception-2015-12-05.pt into the cache dir.")
@click.option("--batch", type=click.IntRange(1, 1024), default=50, show_default=True,
              help="Images per forward pass of G and of the feature network.")
@click.option("--out", "out_dir", type=PathParam(path_type=Path), help="Folder for figures. [RUN/evaluation]")
@click.option("--device", default="auto", show_default=True, help="auto (cuda when available), cpu, cuda, cuda:N.")
def evaluate(run_dir: Path | None, metrics_text: str | None, n: int, data: Path | None, real: Path | None,
             fake: Path | None, json_path: Path | None, extractor: str, inception_path: Path | None,
             download_inception: bool, batch: int, out_dir: Path | None, device: str) -> None:
    """Score a run's generator against its data (or --real vs --fake): FID, KID, IS, precision/recall."""
    from ganforge.api import evaluate as evaluate_images
    from ganforge.device import resolve_device
    from ganforge.evaluation import generator as evaluation
    from ganforge.metrics import load_extractor
    from ganforge.metrics.evaluate import DIAGNOSTICS, FIDELITY, parse_metrics

    if (run_dir is None) == (real is None or fake is None) or (run_dir is not None and (real or fake)):
        raise ConfigError("give a RUN folder, or --real and --fake (each a store or an image folder), not both")
    metrics = parse_metrics(metrics_text or evaluation.default_metrics_text(run_dir))
    evaluation.check_outputs(run_dir, metrics, json_path, out_dir, [p for p in (data, real, fake) if p])
    torch_device = resolve_device(device)
    features = None if set(metrics) <= set(FIDELITY) else load_extractor(
        extractor, inception_path if extractor == "inception" else None, torch_device,
        allow_download=download_inception)
    if run_dir is not None:
        results = evaluation.evaluate_run(run_dir, metrics, n=n, data=data, extractor=features, batch_size=batch,
                                          device=torch_device, out_dir=out_dir or run_dir / "evaluation")
    else:
        if set(metrics) & {*DIAGNOSTICS, *FIDELITY}:
            raise ConfigError("memorization, probe, psnr and ssim need a RUN folder (its networks, or its pairs)")
        assert real is not None and fake is not None and features is not None
        results = evaluate_images(real, fake, metrics, n=n, extractor=features, batch_size=batch, progress=True).records
    for result in results:
        click.echo(evaluation.describe(result))
    if json_path is not None:
        evaluation.write_json(results, json_path)
        click.echo(f"wrote {json_path}")


@main.command()
@click.option("--model", default="dcgan", show_default=True, help="Model family to time (as train's --model).")
@click.option("--resolution", type=click.IntRange(4, 1024), default=64, show_default=True,
              help="Side of the synthetic square RGB images trained on.")
@click.option("--batch", type=click.IntRange(1, 4096), default=64, show_default=True, help="Images per step.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="As train's --precision.")
@click.option("--channels-last", is_flag=True, help="NHWC layout for ganforge's loop.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile ganforge's G and D (the warm-up tick "
              "pays for compiling).")
@click.option("--kimg", type=click.FloatRange(0.1, 10_000),
              help="Length of ganforge's timed run (4 ticks; the first is warm-up). [2 on the CPU, 100 on a GPU]")
@click.option("--device", default="auto", show_default=True, help="auto (cuda when available), cpu, cuda, cuda:N.")
def bench(model: str, resolution: int, batch: int, precision: str, channels_last: bool, compile_: bool,
          kimg: float | None, device: str) -> None:
    """Train img/s of ganforge's loop vs a textbook eager loop on the same networks, and the device's peak."""
    from ganforge.bench import default_kimg, run_bench
    from ganforge.device import resolve_device, slow_precision_note

    options = "".join(f" {name}" for name, on in (("channels_last", channels_last), ("compile", compile_)) if on)
    click.echo(f"{model} {resolution}px batch {batch} {precision}{options}")
    slow = slow_precision_note(precision, resolve_device(device))
    if slow:
        click.echo(slow)
    kimg = kimg if kimg is not None else default_kimg(device)
    click.echo(run_bench(model, resolution, batch, precision, channels_last, kimg, device, compile_=compile_).report())


@main.command("preview-augment")
@click.argument("store", type=PathParam(path_type=Path))
@click.option("--augment", "name", type=click.Choice(["ada", "diffaugment"]), default="ada", show_default=True,
              help="The augmentation to preview (as train's --augment).")
@click.option("--p", "probability", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="ADA probability to preview (ADA adapts it during training).")
@click.option("--n", "count", type=click.IntRange(1, 64), default=8, show_default=True, help="Real images (rows).")
@click.option("--copies", type=click.IntRange(1, 16), default=7, show_default=True, help="Augmented copies per row.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the augmentations drawn.")
@click.option("--out", type=PathParam(path_type=Path), default=Path("augment.png"), show_default=True,
              help="The PNG to write: each real image (first column) beside its augmented copies.")
def preview_augment(store: Path, name: str, probability: float, count: int, copies: int, seed: int,
                    out: Path) -> None:
    """Write a grid of reals from STORE, each followed by augmented copies: what D sees with --augment."""
    import numpy as np
    import torch

    from ganforge.augment import build_augment, preview_grid
    from ganforge.data.store import Store
    from ganforge.images import make_grid, save_png
    from ganforge.runs.output_guard import check_output_file, ganforge_png

    check_output_file(out, "--out", ganforge_png, inputs=[store])
    data = Store(store)
    torch.manual_seed(seed)
    augment = build_augment(name, batch=count, initial_p=probability)
    rows = preview_grid(data.uint8_batch(np.arange(min(count, len(data)))), augment, copies)
    save_png(make_grid(rows, 1 + copies), out, {"augment": name, "p": str(probability)})
    click.echo(f"wrote {out}: {min(count, len(data))} reals (first column) with {copies} {name} copies each")


@main.command()
@click.argument("run_dir", type=PathParam(path_type=Path))
@click.option("--seeds", default=None, help="Seeds to render, e.g. 0-63 or 1,5,9. [0-63, or as many as --grid]")
@click.option("--n", "count", type=click.IntRange(1, 100_000), help="Render seeds 0..N-1 (instead of --seeds).")
@click.option("--grid", "grid_text", help="ROWSxCOLUMNS, e.g. 4x8: one grid of that shape (seeds 0.. by default).")
@click.option("--truncation", "psi", type=float, default=1.0, show_default=True,
              help="psi: pull each latent toward the mean latent; 1 = none, 0.7 = fewer odd images, less variety.")
@click.option("--out", type=PathParam(path_type=Path), default=Path("grid.png"), show_default=True,
              help="A .png path for one grid, or a folder for one PNG per seed.")
@click.option("--columns", type=click.IntRange(1, 1024), help="Grid columns. [square]")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N.")
@click.option("--class", "class_name",
              help="Conditional runs: render this class (label name or index). Without it: one column per class.")
@click.option("--edit", "edit_texts", multiple=True, metavar="DIR:INDEX=AMOUNT",
              help="Move every latent along direction INDEX of a `ganforge directions` folder by AMOUNT of its scale "
                   "(e.g. dirs:0=2); repeat to combine.")
def generate(run_dir: Path, seeds: str | None, count: int | None, grid_text: str | None, psi: float, out: Path,
             columns: int | None, device: str, class_name: str | None, edit_texts: tuple[str, ...]) -> None:
    """Render images from a trained run or an exported folder (the EMA generator when there is one)."""
    from ganforge import generate as gen

    if seeds and count:
        raise ConfigError("give either --seeds or --n, not both")
    if grid_text and columns:
        raise ConfigError("give either --grid or --columns, not both (--grid sets the columns)")
    grid = gen.parse_grid(grid_text) if grid_text else None
    default_count = grid[0] * grid[1] if grid else 64
    seed_list = list(range(count or default_count)) if seeds is None else gen.parse_seeds(seeds)
    draw = None
    if edit_texts:
        from ganforge.explore.directions import edit_drawer, parse_edits

        draw = edit_drawer(parse_edits(edit_texts))
    written, nimg = gen.generate_images(run_dir, seed_list, out, psi=psi, columns=columns, grid=grid, device=device,
                                        class_name=class_name, draw=draw, edit=" ".join(edit_texts))
    click.echo(f"wrote {len(seed_list)} images from {run_dir} (kimg {nimg / 1000:.1f}, psi {psi:g}) to "
               f"{written[0] if len(written) == 1 else out}")


register_explore_commands(main)  # interpolate, arithmetic, mix, project, export, push, serve
main.add_command(detect)  # detect train / score / eval / attack
