"""What every export writes the same way, whatever it exports: the folder (removed again when writing fails, so a
half-written export never looks like one), the ONNX graph, and config.json with files others may read."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.errors import ConfigError
from ganforge.runs.exported import is_export_folder
from ganforge.runs.folder import CONFIG_FILE

ONNX_OPSET = 17
ONNX_TOLERANCE = 1e-4  # max |onnxruntime - torch| per pixel, in the networks' [-1, 1] output units
# The check an ONNX export records when nothing could run its graph.
UNVERIFIED = {"method": "onnxruntime", "skipped": "onnxruntime is not installed (pip install 'ganforge[onnx]')"}


@contextlib.contextmanager
def export_folder(out: Path) -> Iterator[Path]:
    """`out`, created if it does not exist. An earlier export there is set aside while the new one is written, then
    removed, so none of its files (another format's graph, a discriminator) stays beside the new ones, and `push`
    uploads only what this export wrote; if writing fails, a folder this call created is removed and the earlier
    export put back."""
    earlier = None
    if is_export_folder(out):
        earlier = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced-", dir=out.parent))
        out.replace(earlier)  # onto the empty folder mkdtemp made: a name no one else holds
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        if earlier is not None:
            earlier.replace(out)
        raise
    if earlier is not None:
        shutil.rmtree(earlier, ignore_errors=True)


def write_onnx(network: nn.Module, example: tuple[torch.Tensor, ...], inputs: Sequence[str], output: str,
               path: Path) -> None:
    """`network` as an ONNX graph with a dynamic batch axis on its first input and its output. Torch's
    TorchScript-based exporter (`dynamo=False`): the dynamo exporter needs onnxscript, and the legacy one handles
    these plain conv/linear graphs exactly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its own deprecation on every call
        try:
            torch.onnx.export(network, example, str(path), dynamo=False, opset_version=ONNX_OPSET,
                              input_names=list(inputs), output_names=[output],
                              dynamic_axes={inputs[0]: {0: "batch"}, output: {0: "batch"}})
        except ModuleNotFoundError as exc:
            raise ConfigError(f"ONNX export needs {exc.name}: pip install 'ganforge[onnx]'") from exc


def onnxruntime_version() -> str | None:
    """onnxruntime's version, or None when it is not installed (the written graph then goes unverified)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)



def finish_folder(out: Path, meta: dict[str, Any]) -> None:
    """config.json from `meta`, then every file readable by others (safetensors writes its file 0600)."""
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    for written in out.iterdir():
        written.chmod(0o644)
