"""The exploring and shipping commands: interpolate, arithmetic, mix, project, export, serve, translate. Parse, call
one function.

`register(main)` adds them to the `ganforge` group; the work is in ganforge.explore, ganforge.export.generator and
ganforge.serve, imported inside each command so `ganforge --help` stays fast and optional extras stay optional.
"""

from __future__ import annotations

from pathlib import Path

import click

from ganforge.cli.options import PathParam
from ganforge.errors import ConfigError
from ganforge.terminal_text import terminal_safe

_SOURCE = click.argument("source", metavar="RUN", type=PathParam(path_type=Path))
_DEVICE = click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N.")
_PSI = click.option("--truncation", "psi", type=float, default=1.0, show_default=True,
                    help="psi: pull latents toward the mean latent; 1 = none.")
_CLASS = click.option("--class", "class_name",
                      help="Class-conditional runs (required there): the class to draw in, label name or index.")


def _seed_list(text: str, flag: str) -> list[int]:
    from ganforge.generate import parse_seeds

    try:
        return parse_seeds(text)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--seeds", flag, 1)) from exc


@click.command()
@_SOURCE
@click.option("--seeds", default="0-3", show_default=True, help="Keypoint seeds, walked in order, e.g. 3,17,42.")
@click.option("--frames", type=click.IntRange(1, 2000), default=60, show_default=True,
              help="Frames per transition (per grid row for .png).")
@click.option("--method", type=click.Choice(["slerp", "lerp"]), default="slerp", show_default=True,
              help="Great-circle (keeps z typical) or straight-line interpolation.")
@click.option("--loop", is_flag=True, help="Walk back to the first seed (a seamless animation).")
@click.option("--fps", type=click.IntRange(1, 60), default=30, show_default=True, help="Animation frame rate.")
@click.option("--scale", type=click.IntRange(1, 32),
              help="Enlarge frames (or a .png grid's cells) N times. [animations: to about 256 px; .png: 1]")
@click.option("--out", type=PathParam(path_type=Path), default=Path("walk.gif"), show_default=True,
              help=".gif, .mp4 (needs imageio-ffmpeg) or .png (a grid, one row per transition).")
@_PSI
@_CLASS
@_DEVICE
def interpolate(source: Path, seeds: str, frames: int, method: str, loop: bool, fps: int, scale: int | None,
                out: Path, psi: float, class_name: str | None, device: str) -> None:
    """Walk the latent space between seeds: an animation or a grid of interpolation rows."""
    from ganforge.explore.interpolate import interpolate as run

    count = run(source, _seed_list(seeds, "--seeds"), out, frames=frames, method=method, psi=psi, loop=loop,
                fps=fps, scale=scale, device=device, class_name=class_name)
    click.echo(f"wrote {count} frames to {out}")


@click.command()
@_SOURCE
@click.option("--a", "a", required=True, help="Seeds averaged into the first concept, e.g. 1,2,3.")
@click.option("--b", "b", required=True, help="Seeds averaged into the concept subtracted.")
@click.option("--c", "c", required=True, help="Seeds averaged into the concept added.")
@click.option("--variations", type=int, help="Noisy copies of the result shown beside it. [columns - 1]")
@click.option("--out", type=PathParam(path_type=Path), default=Path("arithmetic.png"), show_default=True,
              help="The grid: rows a, b, c (samples, then their mean), then the result and its variations.")
@_PSI
@_CLASS
@_DEVICE
def arithmetic(source: Path, a: str, b: str, c: str, variations: int | None, out: Path, psi: float,
               class_name: str | None, device: str) -> None:
    """Vector arithmetic as in the DCGAN paper: render mean(a) - mean(b) + mean(c)."""
    from ganforge.explore.arithmetic import arithmetic as run

    run(source, _seed_list(a, "--a"), _seed_list(b, "--b"), _seed_list(c, "--c"), out, psi=psi,
        variations=variations, device=device, class_name=class_name)
    click.echo(f"wrote {out}")


@click.command()
@_SOURCE
@click.option("--rows", required=True, help="Seeds down the left column, e.g. 1,2,3.")
@click.option("--cols", required=True, help="Seeds across the top row, e.g. 4,5,6.")
@click.option("--styles", help="Layers (ws) each cell takes from its column seed, e.g. 0-3 (coarse) or 8-13. "
                               "[the upper half: fine styles]")
@click.option("--out", type=PathParam(path_type=Path), default=Path("mixing.png"), show_default=True,
              help="The grid image (.png).")
@_PSI
@_CLASS
@_DEVICE
def mix(source: Path, rows: str, cols: str, styles: str | None, out: Path, psi: float, class_name: str | None,
        device: str) -> None:
    """Style-mixing figure of a style-based G (StyleGAN Fig. 3): row seeds' styles with layers from column seeds."""
    from ganforge.explore.mixing import style_mixing

    shape = style_mixing(source, _seed_list(rows, "--rows"), _seed_list(cols, "--cols"), out, styles=styles, psi=psi,
                         device=device, class_name=class_name)
    click.echo(f"wrote {out} ({shape[0]}x{shape[1]} images)")


@click.command()
@_SOURCE
@click.argument("image", type=PathParam(path_type=Path, exists=True, dir_okay=False))
@click.option("--steps", type=click.IntRange(1, 100_000), default=300, show_default=True, help="Adam steps.")
@click.option("--lr", type=float, default=0.05, show_default=True, help="Adam learning rate on the latent.")
@click.option("--starts", type=click.IntRange(1, 10_000), default=64, show_default=True,
              help="Random latents tried; the best one is optimised.")
@click.option("--feature-weight", type=float, default=1.0, show_default=True,
              help="Weight of the feature loss beside pixel MSE (0 = pixels only).")
@click.option("--features", type=click.Choice(["lite0", "random-conv"]),
              help="Feature loss: lite0 (EfficientNet-Lite0 ImageNet features, ganforge[projected]) or random-conv. "
                   "[lite0 when installed]")
@click.option("--edit", "edit_texts", multiple=True, metavar="DIR:INDEX=AMOUNT",
              help="Also draw the found latent moved along directions (edited.png); repeat to combine.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random starts.")
@click.option("--space", type=click.Choice(["z", "w", "w+"]),
              help="Latent optimised: z, or for a style-based G w (one for all layers) or w+ (one per layer). "
                   "[w+ for stylegan2, else z]")
@click.option("--noise", type=click.Choice(["optimise", "fixed"]),
              help="StyleGAN2's per-layer noise maps: optimised beside w (regularised to stay noise; "
                   "noise.safetensors) or G's fixed maps. [optimise for stylegan2 in w/w+]")
@click.option("--noise-weight", type=float, default=1e5, show_default=True,
              help="Weight of the noise maps' autocorrelation penalty (StyleGAN2's projector's value).")
@click.option("--tune", "tune_steps", type=click.IntRange(0, 100_000), default=0, show_default=True,
              help="Pivotal tuning: fine-tune G this many steps around the found latent (about 300 is typical), "
                   "written as the export tuned/; projected.png and edited.png then come from it.")
@click.option("--tune-lr", type=float, default=3e-4, show_default=True, help="Adam learning rate of --tune.")
@click.option("--out", type=PathParam(path_type=Path), default=Path("projection"), show_default=True,
              help="Folder for latent.npy, projected.png, target.png, progress.png (and noise.safetensors, tuned/).")
@_CLASS
@_DEVICE
def project(source: Path, image: Path, steps: int, lr: float, starts: int, feature_weight: float,
            features: str | None, edit_texts: tuple[str, ...], seed: int, space: str | None, noise: str | None,
            noise_weight: float, tune_steps: int, tune_lr: float, out: Path, class_name: str | None,
            device: str) -> None:
    """Find the latent whose image best reproduces IMAGE (pixel + feature loss); with --edit, edit it."""
    from ganforge.explore.directions import parse_edits
    from ganforge.explore.project import project as run

    edits = parse_edits(edit_texts)
    result = run(source, image, out, steps=steps, lr=lr, starts=starts, feature_weight=feature_weight, seed=seed,
                 device=device, class_name=class_name, space=space, features=features, edits=edits, noise=noise,
                 noise_weight=noise_weight, tune_steps=tune_steps, tune_lr=tune_lr)
    tuned = (f" after {tune_steps} tuning steps ({result.pivot_pixel_mse:.4f} before)"
             if result.pivot_pixel_mse is not None else "")
    click.echo(f"projected {image} in {steps} steps: pixel MSE {result.pixel_mse:.4f}{tuned}; wrote {out}/"
               + ", ".join(result.written))


@click.command()
@_SOURCE
@click.option("--format", "fmt", type=click.Choice(["safetensors", "hf", "onnx", "torchscript"]),
              default="safetensors", show_default=True,
              help="safetensors (data only; the Hugging Face layout, also named hf), onnx (any runtime), torchscript "
                   "(torch only).")
@click.option("--out", type=PathParam(path_type=Path),
              help="Folder to write. [the run's folder name and the format, e.g. 00001-dcgan-mnist-safetensors]")
@click.option("--with-discriminator", is_flag=True,
              help="Write D beside G (discriminator.safetensors), so the export can be fine-tuned with `ganforge "
                   "train --init`.")
def export(source: Path, fmt: str, out: Path | None, with_discriminator: bool) -> None:
    """Write G (its EMA copy when there is one) with config.json, a README.md model card and samples.png: a
    Hugging Face model folder that `ganforge generate`, `serve` and `ganforge.load_generator` read."""
    from ganforge.export.generator import export_generator
    from ganforge.runs.exported import is_export_folder
    from ganforge.runs.output_guard import check_output_folder

    out = out or Path(f"{source.name}-{fmt}")
    # Not inside a run, export or detector folder; an earlier export in its place is replaced, as before.
    check_output_folder(out, "--out", [], lambda _: True, home=out if is_export_folder(out) else None,
                        inputs=[source], around_inputs=True)
    report = export_generator(source, out, fmt, with_discriminator)
    check = report.check
    verified = (f"not verified ({check['skipped']})" if "skipped" in check
                else f"{check['method']}: max abs diff {check['max_abs_diff']:.2g}")
    use = (f"`ganforge translate {report.folder} INPUTS/ --out OUTPUTS/`" if "directions" in check
           else f"ganforge.load_generator({str(report.folder)!r})")
    click.echo(f"exported {report.weights} to {report.file} ({verified}); loads with {use}")


@click.command()
@_SOURCE
@click.option("--repo", required=True, help="Hugging Face Hub repo id, user/name (created when missing).")
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option("--token", envvar="HF_TOKEN", help="Hub token. [$HF_TOKEN or `huggingface-cli login`]")
def push(source: Path, repo: str, private: bool, token: str | None) -> None:
    """Export RUN in the Hugging Face layout and upload it to the Hub repo --repo."""
    import tempfile

    from ganforge.export.generator import export_generator
    from ganforge.export.hub import check_repo_id, hub_client
    from ganforge.export.hub import push as upload
    from ganforge.runs.exported import is_export_folder

    client = hub_client(token)  # the extra and the repo id are checked before any export work
    check_repo_id(repo)
    if is_export_folder(source):
        click.echo(f"uploaded {source} to {upload(client, source, repo, private)}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        report = export_generator(source, Path(tmp) / source.name, "safetensors")
        click.echo(f"uploaded {report.folder.name} to {upload(client, report.folder, repo, private)}")


@click.command()
@_SOURCE
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything but loopback exposes the server to the network. Requests must name "
                   "this address in their Host header (127.0.0.1 also accepts localhost), which stops DNS "
                   "rebinding; 0.0.0.0 binds every interface and accepts any Host.")
@click.option("--port", type=int, default=8000, show_default=True, help="TCP port.")
@click.option("--directions", "directions_folder", type=PathParam(path_type=Path),
              help="A `ganforge directions` folder: its top directions become sliders (and the API's edit=).")
@_DEVICE
def serve(source: Path, host: str, port: int, device: str, directions_folder: Path | None) -> None:
    """Explore a run or exported generator in the browser; /run follows a training run."""
    try:
        from ganforge.serve.app import serve as run
    except ImportError as exc:
        raise ConfigError(f"ganforge serve needs the serve extra ({exc.name} is missing): "
                          "pip install 'ganforge[serve]'") from exc
    run(source, host=host, port=port, device=device, echo=click.echo, directions=directions_folder)


@click.command()
@_SOURCE
@click.argument("inputs", metavar="INPUTS", type=PathParam(path_type=Path))
@click.option("--out", type=PathParam(path_type=Path), required=True,
              help="Folder for the outputs: one PNG per input, under the input's relative name.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="a2b: the store's inputs to its targets; b2a: back (CycleGAN only).")
@click.option("--crop", type=click.Choice(["center", "pad", "none"]), default="center", show_default=True,
              help="How inputs of another aspect ratio are fitted to the model's input size (as prepare --crop).")
@click.option("--batch", type=click.IntRange(1, 1024), default=16, show_default=True, help="Images per forward pass.")
@_DEVICE
def translate(source: Path, inputs: Path, out: Path, direction: str, crop: str, batch: int, device: str) -> None:
    """Translate every image in INPUTS (a folder or archive) with an image-to-image RUN (pix2pix, cyclegan,
    srgan); inputs that are not usable images are listed with the reason and skipped."""
    from ganforge.translation import translate_folder

    report = translate_folder(source, inputs, out, direction=direction, crop=crop, device=device, batch=batch)
    for skipped in report.skipped:
        click.echo(terminal_safe(f"skipped {skipped['path']}: {skipped['reason']}"))  # one line per input
    click.echo(report.summary(out))


@click.command()
@_SOURCE
@click.option("--method", type=click.Choice(["sefa", "ganspace", "labels"]), default="sefa", show_default=True,
              help="sefa: closed form from the first latent-reading weights; ganspace: principal components of W "
                   "(stylegan2) or of the first layer; labels: the boundary of a score of the images (--score).")
@click.option("--k", "count", type=click.IntRange(1, 512), default=10, show_default=True, help="Directions to find.")
@click.option("--out", type=PathParam(path_type=Path), required=True,
              help="Folder for directions.safetensors, directions.json and directions.png.")
@click.option("--layers", help="stylegan2: the style layers the directions come from and edits move, e.g. 0-3 "
                               "(coarse: pose, shape) or 6-11 (fine: colour). [all]")
@click.option("--score", default="brightness", show_default=True,
              help="--method labels: what the boundary separates: brightness, contrast, saturation, red, green, "
                   "blue, detect:FOLDER (a trained detector's verdict: toward looking generated) or class:NAME "
                   "(a class-conditional stylegan2: toward that class).")
@click.option("--samples", type=click.IntRange(100, 100_000), default=2000, show_default=True,
              help="Latents sampled (ganspace, labels, and the scale of each direction).")
@click.option("--seeds", default="0,1", show_default=True, help="Seeds the figure moves along each direction.")
@_DEVICE
def directions(source: Path, method: str, count: int, out: Path, layers: str | None, score: str, samples: int,
               seeds: str, device: str) -> None:
    """Find semantic directions in RUN's latent space and draw them: one row per direction, each seed moved from
    -3 to +3 of the direction's scale. Edit with `ganforge generate RUN --edit OUT:INDEX=AMOUNT`."""
    from ganforge.explore.direction_search import directions as find
    from ganforge.explore.directions import FIGURE, RECORD, TENSORS
    from ganforge.generate import parse_ranges
    from ganforge.runs.output_guard import any_of, check_output_folder, ganforge_png, json_report

    seed_list = _seed_list(seeds, "--seeds")[:8]
    span = None
    if layers is not None:
        ranges = parse_ranges(layers, "--layers", "0-3")
        if len(ranges) != 1:
            raise ConfigError(f"--layers {layers}: give one range, e.g. 0-3")
        span = (ranges[0][1], ranges[0][2] + 1)
    ours = any_of(ganforge_png, json_report(lambda v: isinstance(v, dict) and "ganforge_directions" in v),
                  lambda path: path.name == TENSORS and (path.parent / RECORD).is_file())
    check_output_folder(out, "--out", [TENSORS, RECORD, FIGURE], ours, inputs=[source])
    found = find(source, method, count, out=out, layers=span, score=score, samples=samples, seeds=seed_list,
                 device=device)
    where = f" in W, style layers {found.layers[0]}-{found.layers[1] - 1}" if found.layers else " in z"
    click.echo(f"wrote {len(found)} {method} directions{where} to {out} (figure {out / FIGURE}); edit with "
               f"`ganforge generate {source} --edit {out}:0=2`")


def register(group: click.Group) -> None:
    for command in (interpolate, arithmetic, mix, project, export, push, serve, translate, directions):
        group.add_command(command)
