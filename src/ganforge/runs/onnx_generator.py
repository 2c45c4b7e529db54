"""An exported ONNX graph behind the nn.Module interface the tools use, checked before it runs a batch.

A graph is data a user hands in: it may expand one latent to [1, 3, 40000, 40000] (19 GB), output int64, or
make 2x2 images while its config.json says 3x64x64. So the output it declares is checked when it is loaded (its
element type, and its image shape where the graph states it), one input is run before the first batch, and every
output is checked against the image shape the export records, before a tool allocates or writes anything from it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganforge.errors import CheckpointError, ConfigError

ImageShape = tuple[int, int, int]


class OnnxGenerator(nn.Module):
    """z [B, z_dim] (or images, for a translator's graph) -> images [B, *output_shape] as float32."""

    def __init__(self, path: Path, output_shape: ImageShape) -> None:
        super().__init__()
        try:
            import onnxruntime  # optional extra: ganforge[onnx]
        except ImportError as exc:
            raise ConfigError(f"loading {path} needs onnxruntime: pip install 'ganforge[onnx]'") from exc
        self.path, self.output_shape = path, output_shape
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        # A style-based G's graph takes psi too (truncation in W happens inside it).
        self.takes_psi = any(i.name == "psi" for i in self.session.get_inputs())
        self._check_declared(self.session.get_outputs()[0])
        self.probed = False  # whether one input has shown what the graph makes

    def forward(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        if not self.probed and len(z) > 1:
            self.forward(z[:1], psi)  # one input first: a graph that makes too much fails before a whole batch
        feed = {self.input_name: z.detach().cpu().float().numpy()}
        if self.takes_psi:
            feed["psi"] = np.array([psi], dtype=np.float32)
        elif psi != 1.0:
            raise ConfigError("this ONNX generator truncates in z: pull the latents, not psi")
        try:
            out = np.asarray(self.session.run(None, feed)[0])
        except Exception as exc:  # onnxruntime's own error types, whose text names its C++ source lines
            if "allocate memory" in str(exc):  # the CLI and serve answer "out of memory" here, not "bad export"
                raise MemoryError(f"{self.path}: onnxruntime could not allocate memory for {len(z)} input(s)") from exc
            node = re.search(r"running (\w+) node", str(exc))
            where = f" in its {node[1]} node" if node else ""
            raise CheckpointError(f"{self.path}: its graph fails on {len(z)} input(s){where}; export it again with "
                                  "`ganforge export`") from exc
        check_made(self.path, str(out.dtype), out.dtype == np.float32, out.shape, len(z), self.output_shape)
        self.probed = True
        return torch.from_numpy(out).to(z.device)

    def _check_declared(self, output: Any) -> None:
        if output.type != "tensor(float)":
            raise CheckpointError(f"{self.path}: its graph outputs {output.type}, not float32 images in [-1, 1]; "
                                  "export it again with `ganforge export`")
        dims = list(output.shape or [])
        if len(dims) == 4 and all(isinstance(d, int) for d in dims[1:]):
            _check_shape(self.path, tuple(dims[1:]), self.output_shape, "declares")


def check_made(path: Path, dtype: str, is_float32: bool, shape: tuple[int, ...], batch: int,
               output_shape: ImageShape) -> None:
    """Refuse what an exported graph (ONNX or TorchScript) made for `batch` inputs unless it is `batch` float32
    images of `output_shape`, the export's recorded C x H x W."""
    if not is_float32:
        raise CheckpointError(f"{path}: its graph made {dtype} values, not float32 images in [-1, 1]; "
                              "export it again with `ganforge export`")
    if len(shape) != 4 or shape[0] != batch:
        raise CheckpointError(f"{path}: its graph made an array of shape {list(shape)} for {batch} "
                              f"input(s), not {batch} images; export it again with `ganforge export`")
    _check_shape(path, shape[1:], output_shape, "makes")


def _check_shape(path: Path, shape: tuple[Any, ...], output_shape: ImageShape, verb: str) -> None:
    if tuple(shape) != tuple(output_shape):
        made, recorded = "x".join(map(str, shape)), "x".join(map(str, output_shape))
        raise CheckpointError(f"{path}: its graph {verb} images of {made} (CxHxW), but the export's "
                              f"config.json records {recorded}; export it again with `ganforge export`")
