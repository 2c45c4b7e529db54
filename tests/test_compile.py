"""`--compile` for every family: each scheme's networks train under torch.compile (the `aot_eager` backend here,
which traces and differentiates as inductor does without its minutes of C++ compilation on this CPU), and a
graph the compiler cannot handle runs eagerly instead of ending the run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from host_reads import reads_in_one_tick
from test_host_reads import AT_64_PX, IMAGE_TO_IMAGE, NOISE_TO_IMAGE, PROJECTED, has_lite0, stores  # noqa: F401

CASES = {**{name: (settings, "16") for name, settings in NOISE_TO_IMAGE.items()},
         **{name: (settings, "64") for name, settings in AT_64_PX.items()},
         **({name: (settings, "64") for name, settings in PROJECTED.items()} if has_lite0 else {}),
         "pix2pix": (IMAGE_TO_IMAGE["pix2pix"], "paired"),
         "cyclegan": (IMAGE_TO_IMAGE["cyclegan with its history pool"], "unpaired"),
         "srgan": (IMAGE_TO_IMAGE["srgan through its pre-training into the adversarial phase"], "sr")}


def compile_with(monkeypatch: pytest.MonkeyPatch, backend) -> list[str]:
    """nn.Module.compile with `backend`; returns the list the compiled modules' class names are added to."""
    compiled: list[str] = []
    original = nn.Module.compile

    def compile_(self: nn.Module, **kwargs) -> None:
        compiled.append(type(self).__name__)
        original(self, backend=backend, **kwargs)

    monkeypatch.setattr(nn.Module, "compile", compile_)
    return compiled


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_every_family_trains_compiled(stores, tmp_path, monkeypatch, name):  # noqa: F811
    settings, store = CASES[name]
    compiled = compile_with(monkeypatch, "aot_eager")
    torch._dynamo.reset()
    reads_in_one_tick(stores[store], tmp_path, 2, {**settings, "compile": True})
    assert len(compiled) == 2  # G and D, compiled in place


def test_a_graph_the_compiler_refuses_runs_eagerly(stores, tmp_path, monkeypatch):  # noqa: F811
    calls: list[int] = []

    def failing_backend(graph: torch.fx.GraphModule, example_inputs) -> None:
        calls.append(1)
        raise RuntimeError("this backend cannot compile anything")

    compile_with(monkeypatch, failing_backend)
    torch._dynamo.reset()
    reads_in_one_tick(stores["16"], tmp_path, 2, {"model": "dcgan", "g_width": 8, "d_width": 8, "compile": True})
    assert calls, "the backend was asked to compile"
