"""`ganforge detect`: train a real-vs-generated detector, score images with it, evaluate it per generator, and
attack it. `ganforge detect DET IMAGES...` (no subcommand) scores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ganforge.cli.options import PathParam, given_settings, options_of
from ganforge.detect.config import DetectConfig
from ganforge.errors import ConfigError
from ganforge.terminal_text import terminal_safe


class _ScoreByDefault(click.Group):
    """`detect DET IMAGES...` means `detect score DET IMAGES...`: a first word that is no subcommand is a DET."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["score", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ScoreByDefault)
def detect() -> None:
    """Detect generated images: train, score (the default: DET IMAGES...), eval, attack."""


@detect.command()
@click.option("--out", type=PathParam(path_type=Path), required=True, help="Detector folder to write (or resume).")
@click.option("--resume", is_flag=True, help="Continue the detector in --out exactly where it stopped.")
@options_of(DetectConfig)
@click.argument("more_fakes", nargs=-1, type=PathParam())
def train(out: Path, resume: bool, more_fakes: tuple[str, ...], **options: Any) -> None:
    """Train a real-vs-generated classifier into --out (a folder like a run's: config, log, checkpoints).
    MORE_FAKES are --fake sources too."""
    from ganforge.detect.train import train_detector
    from ganforge.runs.output_guard import check_outside_ganforge_folders, ganforge_folder

    if not resume and ganforge_folder(out) == (Path(os.path.realpath(out)), "detector"):
        raise ConfigError(f"--out {out} holds a detector already; continue it with --resume, or name a new folder")
    # A detector folder of its own, never one inside a run, export or detector (--resume continues the one at --out).
    check_outside_ganforge_folders(out, "--out", home=out if resume else None)
    given = {name: value for (name,), value in given_settings(options).items()}
    if more_fakes:
        given["fake"] = [*given.get("fake", []), *more_fakes]
    train_detector(None if resume else DetectConfig(**given), out, resume=resume, echo=click.echo)


@detect.command()
@click.argument("det", type=PathParam(path_type=Path))
@click.argument("images", nargs=-1, required=True)
@click.option("--json", "json_path", type=PathParam(path_type=Path), help="Write every probability here.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N.")
def score(det: Path, images: tuple[str, ...], json_path: Path | None, device: str) -> None:
    """The probability that each image is generated (files, folders, globs)."""
    from ganforge.detect.score import check_json_out, expand, score_files, write_json
    from ganforge.detect.train import load_detector

    if json_path is not None:
        check_json_out(json_path, list(images))
    detector = load_detector(det, device)
    scores, skipped = score_files(detector, expand(list(images)))
    for path, p in scores.items():  # one line per file, whatever its name holds (a newline could forge a score)
        click.echo(f"{p:.4f}  {terminal_safe(path)}")
    for path, why in skipped.items():
        click.echo(f"skipped {terminal_safe(path)}: {terminal_safe(why)}", err=True)
    if json_path is not None:
        write_json(json_path, scores, skipped, detector)
        click.echo(f"wrote {json_path}")


@detect.command(name="eval")
@click.argument("det", type=PathParam(path_type=Path))
@click.option("--real", "real", multiple=True, required=True, type=PathParam(path_type=Path),
              help="Real images: a store or a folder of images (repeat to add more).")
@click.option("--fake", "fake", multiple=True, required=True, type=PathParam(path_type=Path),
              help="Generated images: a run or an export (drawn by seed), a store or a folder (repeat to add more).")
@click.argument("more_fakes", nargs=-1, type=PathParam(path_type=Path))
@click.option("--n", "count", type=click.IntRange(2, 100_000), default=1000, show_default=True,
              help="Images per real source and per generator.")
@click.option("--out", type=PathParam(path_type=Path), help="Folder for roc.png. [DET/eval]")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N.")
def evaluate(det: Path, real: tuple[Path, ...], fake: tuple[Path, ...], more_fakes: tuple[Path, ...], count: int,
             out: Path | None, device: str) -> None:
    """Accuracy, ROC AUC and AP per generator, clean and after JPEG 75, with a ROC curve PNG."""
    from ganforge.detect.evaluate import describe_rows, evaluate_detector
    from ganforge.detect.train import load_detector
    from ganforge.runs.output_guard import check_output_folder, ganforge_png

    check_output_folder(out or det / "eval", "--out", ["roc.png"], ganforge_png, home=det / "eval",
                        inputs=[*real, *fake, *more_fakes])
    detector = load_detector(det, device)
    rows = evaluate_detector(detector, [str(p) for p in real], [str(p) for p in (*fake, *more_fakes)], count,
                             out or det / "eval")
    click.echo(describe_rows(rows, detector.config.fake))
    click.echo(f"wrote {(out or det / 'eval') / 'roc.png'}")


@detect.command(name="attack")
@click.argument("det", type=PathParam(path_type=Path))
@click.option("--real", "real", multiple=True, required=True, type=PathParam(path_type=Path),
              help="Real images: a store or a folder of images (repeat to add more).")
@click.option("--fake", "fake", multiple=True, required=True, type=PathParam(path_type=Path),
              help="Generated images: a run or an export (drawn by seed), a store or a folder (repeat to add more).")
@click.option("--attack", "name", type=click.Choice(["fgsm", "pgd"]), default="fgsm", show_default=True,
              help="fgsm (one signed-gradient step) or pgd (iterated, projected back into the eps ball).")
@click.option("--eps", default="1/255,2/255,4/255,8/255", show_default=True, help="L-infinity bounds, comma-separated.")
@click.option("--steps", type=click.IntRange(1, 1000), default=10, show_default=True, help="PGD steps.")
@click.option("--n", "count", type=click.IntRange(2, 100_000), default=500, show_default=True,
              help="Images attacked from each side.")
@click.option("--out", type=PathParam(path_type=Path),
              help="Folder for attack.png and attacked.png. [DET/attack-fgsm or DET/attack-pgd]")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N.")
def attack_command(det: Path, real: tuple[Path, ...], fake: tuple[Path, ...], name: str, eps: str, steps: int,
                   count: int, out: Path | None, device: str) -> None:
    """Accuracy under FGSM or PGD at each eps, on attacked reals and fakes, with a plot and an image grid."""
    from ganforge.detect.config import parse_eps
    from ganforge.detect.robustness import attack_detector, describe_rows
    from ganforge.detect.train import load_detector
    from ganforge.runs.output_guard import check_output_folder, ganforge_png

    eps_values = parse_eps(eps)  # before minutes of loading
    folder = out or det / f"attack-{name}"  # one folder per attack: an FGSM and a PGD run keep both plots
    check_output_folder(folder, "--out", ["attack.png", "attacked.png"], ganforge_png, home=det / f"attack-{name}",
                        inputs=[*real, *fake])
    detector = load_detector(det, device)
    rows = attack_detector(detector, [str(p) for p in real], [str(p) for p in fake], name, eps_values, steps, count,
                           folder)
    click.echo(describe_rows(rows))
    click.echo(f"wrote {folder / 'attack.png'} and {folder / 'attacked.png'}")
