"""The `ganforge` command: parse flags, build configs, call one function per command. No logic of its own."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ganforge import __version__
from ganforge.errors import ConfigError, GanforgeError

# CLI flag -> path in TrainConfig. Flags left out keep the default (or, on --resume, the run's value).
TRAIN_FLAGS: dict[str, tuple[str, ...]] = {
    "data": ("data",), "model": ("model", "name"), "z_dim": ("model", "z_dim"),
    "g_width": ("model", "g_width"), "d_width": ("model", "d_width"), "d_dropout": ("model", "d_dropout"),
    "loss": ("loss", "name"), "label_smoothing": ("loss", "label_smoothing"), "label_flip": ("loss", "label_flip"),
    "kimg": ("kimg",), "batch": ("batch",), "lr_g": ("lr_g",), "lr_d": ("lr_d",), "beta1": ("beta1",),
    "beta2": ("beta2",), "d_steps": ("d_steps",), "ema_kimg": ("ema_kimg",), "seed": ("seed",),
    "tick_kimg": ("tick_kimg",), "snap": ("snap",), "keep": ("keep",), "device": ("device",), "out": ("out",),
    "grid_size": ("grid_size",),
}
# What defines the trajectory's starting point cannot change on resume; hyperparameters can.
FIXED_ON_RESUME = {"data", "model", "z_dim", "g_width", "d_width", "seed", "out"}


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GanforgeError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="ganforge")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Train GANs on a folder of images; generate, evaluate and explore what they learn."""
    ctx.obj = {"debug": debug}


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Store file to write (.gfs).")
@click.option("--resolution", help="Output size: N for NxN, or WxH. Default: the first usable image's size.")
@click.option("--crop", type=click.Choice(["center", "pad", "none"]), default="center", show_default=True,
              help="Fit other aspect ratios by centre-cropping, letterbox padding, or stretching.")
@click.option("--channels", type=click.Choice(["1", "3"]), help="1 = grey, 3 = RGB. Default: from the images.")
@click.option("--labels", type=click.Choice(["folders", "none"]), default="none", show_default=True,
              help="folders: one class per first-level subfolder. IDX label files are always used.")
@click.option("--min-size", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip images whose shorter side is below this many pixels.")
def prepare(source: Path, out: Path, resolution: str | None, crop: str, channels: str | None, labels: str,
            min_size: int) -> None:
    """Check, decode and pack SOURCE (image folder, .zip, MNIST IDX, .npz) into one training store."""
    from ganforge.data.prepare import PrepareOptions, parse_resolution
    from ganforge.data.prepare import prepare as run_prepare

    options = PrepareOptions(resolution=parse_resolution(resolution) if resolution else None, crop=crop,
                             channels=int(channels) if channels else None, labels=labels, min_size=min_size)
    report = run_prepare(source, out, options, progress=True)
    click.echo(report.summary())


@main.command()
@click.option("--data", type=click.Path(path_type=Path), help="Store from `ganforge prepare` [embedded MNIST].")
@click.option("--model", help="Model family: dcgan, mlp. [dcgan]")
@click.option("--kimg", type=float, help="Training length in thousands of real images. [100]")
@click.option("--batch", type=int, help="Minibatch size. [64]")
@click.option("--seed", type=int, help="Random seed for weights, data order and latents. [0]")
@click.option("--snap", type=int, help="Checkpoint every N ticks. [5]")
@click.option("--out", type=click.Path(path_type=Path), help="Parent folder of run folders. [runs]")
@click.option("--resume", type=click.Path(path_type=Path), help="Run folder to continue exactly where it stopped.")
@click.option("--lr-g", type=float, help="Adam learning rate of G. [2e-4]")
@click.option("--lr-d", type=float, help="Adam learning rate of D. [2e-4]")
@click.option("--beta1", type=float, help="Adam beta1. [0.5]")
@click.option("--beta2", type=float, help="Adam beta2. [0.999]")
@click.option("--d-steps", type=int, help="D updates per G update. [1]")
@click.option("--loss", help="Adversarial loss: nonsaturating, minimax. [nonsaturating]")
@click.option("--label-smoothing", type=float, help="One-sided label smoothing: real target 1-s. [0]")
@click.option("--label-flip", type=float, help="Probability of flipping each D target (label noise). [0]")
@click.option("--ema-kimg", type=float, help="Half-life of G's weight average in kimg; 0 = off. [0]")
@click.option("--z-dim", type=int, help="Latent size. [100]")
@click.option("--g-width", type=int, help="G channels at the output resolution. [64]")
@click.option("--d-width", type=int, help="D channels at the input resolution. [64]")
@click.option("--d-dropout", type=float, help="Dropout after each D activation. [0]")
@click.option("--tick-kimg", type=float, help="kimg per tick (status line, samples, log row). [4]")
@click.option("--keep", type=int, help="Checkpoints kept on disk. [3]")
@click.option("--device", help="auto, cpu, cuda, cuda:N. [auto]")
@click.option("--grid-size", type=int, help="Images in the per-tick sample grid. [64]")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and the networks' sizes, then exit.")
@click.option("--no-progress", is_flag=True, help="No progress bar (status lines only).")
def train(resume: Path | None, dry_run: bool, no_progress: bool, **flags: Any) -> None:
    """Train a GAN; with no flags, a DCGAN on the embedded MNIST sample (CPU, minutes)."""
    from ganforge.training.session import start_or_resume

    given = {name: value for name, value in flags.items() if value is not None}
    if resume is not None:
        fixed = sorted(FIXED_ON_RESUME & set(given))
        if fixed:
            raise ConfigError(f"--resume continues a run as it was set up; drop "
                              f"{', '.join('--' + f.replace('_', '-') for f in fixed)} (they cannot change mid-run)")
    overrides = {TRAIN_FLAGS[name]: str(v) if isinstance(v, Path) else v for name, v in given.items()}
    start_or_resume(overrides, resume=resume, dry_run=dry_run, progress=not no_progress, echo=click.echo)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--seeds", default=None, help="Seeds to render, e.g. 0-63 or 1,5,9. [0-63]")
@click.option("--n", "count", type=click.IntRange(1, 100_000), help="Render seeds 0..N-1 (instead of --seeds).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("grid.png"), show_default=True,
              help="A .png path for one grid, or a folder for one PNG per seed.")
@click.option("--columns", type=click.IntRange(1, 1024), help="Grid columns. [square]")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N.")
def generate(run_dir: Path, seeds: str | None, count: int | None, out: Path, columns: int | None,
             device: str) -> None:
    """Render images from a trained run (its EMA generator when it has one)."""
    from ganforge import generate as gen

    if seeds and count:
        raise ConfigError("give either --seeds or --n, not both")
    seed_list = list(range(count)) if count else gen.parse_seeds(seeds or "0-63")
    generator, config, nimg = gen.load_generator(run_dir, device)
    images = gen.render(generator, gen.seed_latents(seed_list, config.model.z_dim))
    written = gen.write_images(images, seed_list, out, run_dir, columns)
    click.echo(f"wrote {len(seed_list)} images from {run_dir} (kimg {nimg / 1000:.1f}) to "
               f"{written[0] if len(written) == 1 else out}")
