"""Ship a trained generator: G (its EMA copy when the run kept one) as safetensors, ONNX or TorchScript, with
config.json, a README.md model card and samples.png (the Hugging Face model-folder layout), in a folder that
`ganforge.load_generator`, `generate` and `serve` read back (`ganforge push` uploads it to the Hub).

Formats, safest first: safetensors holds tensors only and is rebuilt from the model registry (needs ganforge);
ONNX is a graph any onnxruntime can run (checked against onnxruntime to 1e-4 when it is installed); TorchScript
is a graph with TorchScript code that `torch.jit.load` runs without ganforge (load only files you trust).
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import parametrize

from ganforge.config import TrainConfig
from ganforge.errors import CheckpointError, ConfigError
from ganforge.export.folder import (
    ONNX_TOLERANCE,
    UNVERIFIED,
    export_folder,
    finish_folder,
    onnxruntime_version,
    write_onnx,
)
from ganforge.export.hub import card_metadata, front_matter
from ganforge.export.translator import export_translator
from ganforge.generate import render, seed_latents
from ganforge.images import enlarge_small, make_grid, save_png
from ganforge.models import family_of
from ganforge.regular_files import read_json_lines
from ganforge.runs import load_discriminator, load_run_generator
from ganforge.runs.exported import (
    DISCRIMINATOR_FILE,
    EXPORT_VERSION,
    FORMATS,
    CheckedGraph,
    OnnxGenerator,
    is_export_folder,
    load_graph,
)
from ganforge.runs.folder import read_record, read_run_config
from ganforge.version import __version__

CHECK_LATENTS = 8  # random latents each exported graph is compared on
CARD_FILE, SAMPLES_FILE = "README.md", "samples.png"
SAMPLE_SEEDS = 16


@dataclass(frozen=True)
class ExportReport:
    folder: Path
    file: Path
    weights: str  # "G_ema" or "G"
    check: dict[str, Any]  # how the written file was verified against the torch generator


def export_generator(run_dir: Path, out: Path, fmt: str, with_discriminator: bool = False) -> ExportReport:
    """Write `out`/{generator file, config.json, README.md, samples.png} from a run folder's latest checkpoint.
    "hf" is the safetensors format under its Hugging Face name (the same folder). `with_discriminator` adds D as
    discriminator.safetensors, so that the export can be fine-tuned (`ganforge train --init`), not only sampled."""
    fmt = "safetensors" if fmt == "hf" else fmt
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not a format; choose one of: {', '.join(FORMATS)}")
    if is_export_folder(run_dir):
        raise ConfigError(f"{run_dir} is already an exported folder; export from the run folder it came from")
    _check_out_folder(out)
    if family_of(read_run_config(run_dir)[0].model.name).translates:
        if with_discriminator:
            raise ConfigError(f"--with-discriminator: {run_dir} is an image-to-image run, whose export holds its "
                              "translators only; drop the flag")
        file, weights, check = export_translator(run_dir, out, fmt)
        return ExportReport(out, file, weights, check)
    (generator, config, nimg), weights = load_run_generator(run_dir, "cpu")
    record = read_record(run_dir)
    dataset = record.get("dataset", {})
    if fmt != "safetensors" and getattr(config.model, "conditional", False):
        raise ConfigError(f"--format {fmt} traces G(z) only, and this run is class-conditional; use "
                          "--format safetensors")
    if fmt == "onnx" and importlib.util.find_spec("onnx") is None:
        raise ConfigError("--format onnx needs the onnx package: pip install 'ganforge[onnx]'")
    discriminator = load_discriminator(run_dir) if with_discriminator else None
    with export_folder(out):
        return _write_export(out, fmt, run_dir, generator, config, nimg, weights, dataset, discriminator)


def _write_export(out: Path, fmt: str, run_dir: Path, generator: nn.Module, config: TrainConfig, nimg: int,
                  weights: str, dataset: dict[str, Any], discriminator: nn.Module | None) -> ExportReport:
    path, z_dim = out / FORMATS[fmt], config.model.z_dim
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in generator.state_dict().items()}, str(path))
        check = _compare_weights(generator, load_graph(out, "safetensors", config, dataset))
    elif fmt == "onnx":
        traced = _traced_form(_as_plain_graph(generator), config)
        write_onnx(traced, _example_inputs(traced, z_dim), ["z", "psi"] if isinstance(traced, PsiInput) else ["z"],
                   "images", path)
        check = _check_onnx(generator, out, config, dataset)
    else:
        _write_torchscript(_traced_form(_as_plain_graph(generator), config), config.model.z_dim, path)
        check = _compare(generator, load_graph(out, "torchscript", config, dataset), z_dim,
                         "torchscript reload", 1e-5)
    meta = {
        "ganforge_export": EXPORT_VERSION, "format": fmt, "file": path.name, "weights": weights,
        "z_dim": config.model.z_dim, "image_shape": dataset.get("shape"), "nimg": nimg,
        "input": {"name": "z", "shape": ["batch", config.model.z_dim], "dtype": "float32", "prior": "N(0, I)"},
        "output": {"name": "images", "shape": ["batch", *dataset.get("shape", [])], "range": [-1.0, 1.0]},
        "train": config.to_dict(), "dataset": dataset, "source_run": str(run_dir), "check": check,
        "ganforge_version": __version__, "torch_version": torch.__version__,
    }
    if discriminator is not None:
        save_file({k: v.contiguous() for k, v in discriminator.state_dict().items()}, str(out / DISCRIMINATOR_FILE))
        meta["discriminator"] = DISCRIMINATOR_FILE
    if fmt != "safetensors" and _psi_is_input(config):  # the graph's second input
        meta["psi_input"] = {"name": "psi", "shape": [1], "dtype": "float32",
                             "meaning": "truncation in W toward the tracked mean w; 1 = none"}
    write_samples(out / SAMPLES_FILE, generator, config)
    write_model_card(out, run_dir, meta)
    finish_folder(out, meta)
    return ExportReport(out, path, weights, check)


@torch.no_grad()
def write_samples(path: Path, generator: nn.Module, config: TrainConfig) -> None:
    """samples.png: seeds 0-15 (a conditional run's classes in turn), the picture a model page shows first."""
    labels = torch.arange(SAMPLE_SEEDS) % config.model.num_classes if config.model.conditional else None
    images = render(generator, seed_latents(list(range(SAMPLE_SEEDS)), config.model.z_dim), labels=labels)
    save_png(enlarge_small(make_grid(images, 4), 256), path, {"seeds": f"0-{SAMPLE_SEEDS - 1}"})


def _check_out_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder name")
    if out.is_dir() and any(out.iterdir()) and not is_export_folder(out):
        raise ConfigError(f"--out {out} is a folder with other files in it; give a new or empty folder")


def _as_plain_graph(generator: nn.Module) -> nn.Module:
    """G (loaded for this export only) with its weight parametrizations (spectral norm) baked into plain
    weights, in place: in eval mode they only divide by a fixed sigma, and their vdot has no ONNX operator."""
    for module in [m for m in generator.modules() if parametrize.is_parametrized(m)]:
        for name in list(getattr(module, "parametrizations", {})):
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return generator.eval()


def _psi_is_input(config: TrainConfig) -> bool:
    """A style-based G truncates inside the graph (in W), so its traced exports take psi as a second input."""
    return family_of(config.model.name).truncation == "w"


class PsiInput(nn.Module):
    """G(z, psi) with psi a [1] tensor: the form traced for a G that truncates in W."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        return self.generator(z, psi=psi)


def _traced_form(generator: nn.Module, config: TrainConfig) -> nn.Module:
    return PsiInput(generator).eval() if _psi_is_input(config) else generator


def _example_inputs(generator: nn.Module, z_dim: int) -> tuple[torch.Tensor, ...]:
    z = torch.zeros(2, z_dim)
    return (z, torch.ones(1)) if isinstance(generator, PsiInput) else (z,)


def _write_torchscript(generator: nn.Module, z_dim: int, path: Path) -> None:
    # Traced, not scripted: every model is a fixed graph of z, and tracing needs no TorchScript annotations.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace/save announce their deprecation on every call
        traced = torch.jit.trace(generator, _example_inputs(generator, z_dim), check_trace=False)
        torch.jit.save(traced, str(path))


def _check_onnx(generator: nn.Module, folder: Path, config: TrainConfig, dataset: dict[str, Any]) -> dict[str, Any]:
    version = onnxruntime_version()
    if version is None:
        return dict(UNVERIFIED)
    check = _compare(generator, load_graph(folder, "onnx", config, dataset), config.model.z_dim,
                     "onnxruntime", ONNX_TOLERANCE)
    return {**check, "onnxruntime_version": version}


def _compare_weights(reference: nn.Module, reloaded: nn.Module) -> dict[str, Any]:
    """Bit-exact tensor comparison: safetensors stores the weights themselves, so nothing may differ at all
    (and a class-conditional G, which needs labels to run, is checked as well)."""
    expected, found = reference.state_dict(), reloaded.state_dict()
    different = [k for k in expected if k not in found or not torch.equal(expected[k], found[k])]
    if different or found.keys() != expected.keys():
        raise CheckpointError(f"the safetensors export does not reload to the same weights ({different[:3]}); "
                              "please report this with the run's config.json")
    return {"method": "safetensors reload", "tensors": len(expected), "max_abs_diff": 0.0}


@torch.no_grad()
def _compare(reference: nn.Module, exported: nn.Module, z_dim: int, method: str, tolerance: float) -> dict[str, Any]:
    """Max |exported(z) - reference(z)| on random latents (a batch size unlike the trace's, to test dynamic B);
    a graph that takes psi is compared at psi 1 and at psi 0.5 too."""
    latents = torch.randn(CHECK_LATENTS, z_dim, generator=torch.Generator().manual_seed(0))
    difference = float((exported(latents) - reference(latents)).abs().max())
    if isinstance(exported, OnnxGenerator | CheckedGraph) and exported.takes_psi:
        truncated = (exported(latents, psi=0.5) - reference(latents, psi=0.5)).abs().max()
        difference = max(difference, float(truncated))
    if not difference <= tolerance:
        raise CheckpointError(f"the {method} export differs from the torch generator by {difference:.3g} "
                              f"(allowed {tolerance:g}); please report this with the run's config.json")
    return {"method": method, "latents": CHECK_LATENTS, "max_abs_diff": difference, "tolerance": tolerance}


def write_model_card(out: Path, run_dir: Path, meta: dict[str, Any]) -> None:
    """README.md, the Hub's model card: YAML front matter (licence, library, pipeline, tags, metrics), then what
    the generator is, what it was trained on, how long, and the metrics the run logged."""
    train, dataset = meta["train"], meta["dataset"]
    model = train["model"]
    weights = (f"G-EMA (weight average, half-life {train['ema_kimg']:g} kimg)" if meta["weights"] == "G_ema"
               else "G (the run kept no weight average)")
    shape = "x".join(map(str, dataset.get("shape", []))) or "?"
    lines = [
        front_matter(card_metadata({**meta, "name": run_dir.name}, _last_scores(run_dir))).rstrip("\n"),
        "",
        f"# {run_dir.name}: a {model['name']} generator trained with ganforge",
        "",
        f"![samples, seeds 0-15]({SAMPLES_FILE})",
        "",
        "**Everything this model outputs is a synthetic image**, made up by a neural network; label it as such.",
        "",
        "| | |",
        "|---|---|",
        f"| model | {model['name']}, z_dim {model['z_dim']}, g_width {model['g_width']}; output {shape} (CxHxW) "
        "in [-1, 1] |",
        f"| weights | {weights} |",
        f"| trained on | {dataset.get('name', '?')} ({dataset.get('path', '?')}): {dataset.get('count', '?')} images, "
        f"content fingerprint `{str(dataset.get('fingerprint', '?'))[:16]}` |",
        f"| training length | {meta['nimg'] / 1000:.1f} kimg of {train['kimg']:g} planned; loss "
        f"{train['loss']['name']}, batch {train['batch']}, seed {train['seed']} |",
        f"| file | `{meta['file']}` ({meta['format']}); check: {_describe_check(meta['check'])} |",
        f"| made by | ganforge {meta['ganforge_version']}, torch {meta['torch_version']} |",
        *([f"| discriminator | `{meta['discriminator']}` (safetensors): fine-tune this model with `ganforge train "
           f"--data STORE --init {out.name}` |"] if "discriminator" in meta else []),
        "",
        "## Metrics",
        "",
        *_metric_lines(run_dir),
        "",
        "## Use",
        "",
        "```python",
        "import ganforge as gf",
        "",
        f'G = gf.load_generator("{out.name}")  # this folder, the run folder, or the Hub repo id',
        "images = G.sample(16, seed=0)  # uint8 [16, C, H, W], the images of seeds 0-15",
        "```",
        "",
        f"or `ganforge generate {out.name} --seeds 0-15` and `ganforge serve {out.name}`. Input: z ~ N(0, I) of "
        f"shape [batch, {model['z_dim']}], float32.",
        "",
        "## Limitations",
        "",
        "A GAN reproduces its training set's content and biases and may reproduce near-copies of training images; "
        "it has not been checked for either beyond the metrics above.",
    ]
    (out / CARD_FILE).write_text("\n".join(lines) + "\n")


def _describe_check(check: dict[str, Any]) -> str:
    if "skipped" in check:
        return f"not verified, {check['skipped']}"
    if "tensors" in check:
        return f"{check['method']}: all {check['tensors']} tensors bit-identical to the run's"
    return f"{check['method']} max abs diff {check['max_abs_diff']:.2g} on {check['latents']} random latents"


def _last_scores(run_dir: Path) -> dict[str, tuple[float, str]]:
    """{metric: (its last logged value, its protocol)} for the card's front matter."""
    return {name: (value, protocol) for _, name, value, protocol in _metric_rows(run_dir)}


def _metric_lines(run_dir: Path) -> list[str]:
    rows = [f"| {kimg} | {name} | {value:.4g} | {protocol} |" for kimg, name, value, protocol in _metric_rows(run_dir)]
    if not rows:
        return ["No FID/KID was logged for this run (`log.jsonl` has none), so there are no numbers to report."]
    return ["| kimg | metric | value | protocol |", "|---|---|---|---|", *rows]


def _metric_rows(run_dir: Path) -> list[tuple[str, str, float, str]]:
    """(kimg, metric, value, protocol) for every log.jsonl value whose key starts with fid/kid, in log order."""
    rows: list[tuple[str, str, float, str]] = []
    log = run_dir / "log.jsonl"
    try:
        records = read_json_lines(log)  # up to a line cut short by a kill; the rest is unreliable
    except FileNotFoundError:
        records = []
    except (OSError, ValueError) as error:  # a FIFO would block the export for good
        raise CheckpointError(f"{log}: {error}; move it away and export again (the card then lists no "
                              "metrics)") from None
    for record in records:
        if not isinstance(record, dict):
            continue
        for key, value in record.items():
            if not key.lower().startswith(("fid", "kid")):
                continue
            where = f"{record['kimg']:g}" if isinstance(record.get("kimg"), int | float) else "?"
            if isinstance(value, dict):  # a protocol-stamped score: {"scores": {...}, extractor, n_fake, ...}
                protocol = {k: v for k, v in value.items() if k != "scores" and not isinstance(v, dict | list)}
                scores = value.get("scores", {})
            else:
                protocol = {k: record[k] for k in ("protocol", "extractor", "n_real", "n_fake") if k in record}
                scores = {key: value}
            text = ", ".join(f"{k}={v}" for k, v in protocol.items()) or "not logged"
            rows += [(where, name, float(score), text) for name, score in scores.items()
                     if isinstance(score, int | float)]
    return rows
