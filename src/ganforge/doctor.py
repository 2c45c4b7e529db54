"""`ganforge doctor PATH`: check a store, a run folder or an exported folder the way every command opens it,
and report each finding in one line. Reads only: it never repairs, moves or locks anything."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ganforge.config import TrainConfig
from ganforge.data.store import Store, is_store
from ganforge.errors import CheckpointError, DataError, GanforgeError
from ganforge.regular_files import read_json_lines
from ganforge.runs import checkpoint as ckpt
from ganforge.runs import holds_translator, load_translator
from ganforge.runs.exported import is_export_folder, load_graph, read_export
from ganforge.runs.folder import CONFIG_FILE, open_recorded_store, read_run_config
from ganforge.runs.lock import lock_holder
from ganforge.training import check_resumable

# An ONNX or TorchScript graph's weights cannot be checked one by one, only by what the graph draws.
_NOT_FINITE = ", but they hold NaN or infinity (its weights do): export it again"


class Finding(NamedTuple):
    ok: bool
    text: str

    def __str__(self) -> str:
        return f"{'ok     ' if self.ok else 'PROBLEM'} {self.text}"


def diagnose(path: Path) -> list[Finding]:
    """Findings for `path`: a store (.gfs), an exported folder or a run folder, told apart by their contents."""
    if is_store(path) or path.suffix == ".gfs":
        return _checked(lambda: _store(Store(path)))
    if path.is_dir() and is_export_folder(path):
        return _checked(lambda: _export(path))
    if path.is_dir() and (path / CONFIG_FILE).exists():
        return _checked(lambda: _run(path))
    return [Finding(False, f"{path} is not a store, a run folder or an exported folder")]


def _checked(check: Callable[[], list[Finding]]) -> list[Finding]:
    findings: list[Finding] = []
    try:
        findings += check()
    except GanforgeError as exc:
        findings.append(Finding(False, str(exc)))
    return findings


def _store(store: Store) -> list[Finding]:
    """Findings for an opened store (opening checked its header, offsets, shapes and labels)."""
    path, m = store.path, store.manifest
    if m.two_sided:
        held = f"{m.val_count}" if m.pairing == "paired" else f"A {m.val_count}, B {m.val_count_b}"
        contents = (f"{m.pairing} A {m.count:,} x {m.channels}x{m.height}x{m.width} and B {m.count_b:,} x "
                    f"{m.channels_b}x{m.height_b}x{m.width_b} ({held} held out)")
    else:
        contents = f"{m.count:,} images of {m.channels}x{m.height}x{m.width}, {len(m.label_names)} classes"
    found = [Finding(True, f"{path}: {contents}, {len(m.skipped or [])} inputs skipped at prepare")]
    store.verify_content(limit_bytes=None)
    return found + [Finding(True, f"{path}: pixels and labels match the content fingerprint {m.fingerprint[:12]}")]


@torch.no_grad()
def _export(path: Path) -> list[Finding]:
    meta, config = read_export(path)
    if holds_translator(path):
        return [_translator(path, meta, direction) for direction in _directions(path, meta)]
    generator = load_graph(path, meta["format"], config, meta["dataset"], meta.get("file"))
    if config.model.conditional:
        images = generator(torch.randn(2, config.model.z_dim), torch.zeros(2, dtype=torch.long))
    else:
        images = generator(torch.randn(2, config.model.z_dim))
    shape, expected, kimg = list(images.shape[1:]), meta["dataset"]["shape"], meta.get("nimg", 0) / 1000
    finite = bool(torch.isfinite(images).all())
    return [Finding(shape == expected and finite,
                    f"{path}: {meta['format']} generator ({config.model.name}, {kimg:g} kimg) draws "
                    f"{'x'.join(map(str, shape))} images" + ("" if shape == expected else f", expected {expected}")
                    + ("" if finite else _NOT_FINITE))]


def _directions(path: Path, meta: dict[str, Any]) -> list[str]:
    """The directions an exported translator's config.json lists, checked before any is loaded."""
    translator = meta.get("translator")
    files = translator.get("directions") if isinstance(translator, dict) else None
    if not isinstance(files, dict) or not files or not all(isinstance(d, str) for d in files):
        raise CheckpointError(f"{path / CONFIG_FILE}: \"translator\" lists no directions (a2b, b2a) with their "
                              "files; export it again")
    return list(files)


def _translator(path: Path, meta: dict[str, Any], direction: str) -> Finding:
    """An exported image-to-image direction, run on random inputs of its input shape."""
    loaded = load_translator(path, direction)
    outputs = loaded.translator(torch.rand(2, *loaded.input_shape) * 2 - 1)
    shape, expected = list(outputs.shape[1:]), list(loaded.output_shape)
    finite = bool(torch.isfinite(outputs).all())
    return Finding(shape == expected and finite,
                   f"{path}: {meta['format']} translator {direction} ({loaded.config.model.name}, "
                   f"{loaded.nimg / 1000:g} kimg) maps {'x'.join(map(str, loaded.input_shape))} to "
                   f"{'x'.join(map(str, shape))}" + ("" if shape == expected else f", expected {expected}")
                   + ("" if finite else _NOT_FINITE))


def _run(run_dir: Path) -> list[Finding]:
    config, dataset = read_run_config(run_dir)
    found = [Finding(True, f"{run_dir / CONFIG_FILE}: {config.model.name}, --kimg {config.kimg:g}")]
    holder = lock_holder(run_dir)
    if holder is not None:
        found.append(Finding(True, f"{run_dir} is being trained now (pid {holder}): findings may change"))
    store: Store | None = None
    try:
        store = open_recorded_store(run_dir, config.data)
        if store.manifest.fingerprint != dataset.get("fingerprint", store.manifest.fingerprint):
            raise DataError(f"{store.path} is not the dataset the run was trained on (fingerprint changed)")
        found += _store(store)
    except GanforgeError as exc:
        store = None
        found.append(Finding(False, f"the run's data: {exc} (generate, export and serve work without it; resume "
                                    "does not)"))
    found += _checkpoints(run_dir, config, store)
    found += _log(run_dir / "log.jsonl")
    found += [Finding(False, f"{p}: set aside as damaged by an earlier resume; delete it when inspected")
              for p in sorted((run_dir / ckpt.CHECKPOINT_DIR).glob("*.damaged"))]
    found += [Finding(False, f"{p}: half-written by process {pid}, which is no longer running (killed while "
                             "writing a checkpoint); a resume removes it, or delete it")
              for p, pid in ckpt.stale_temporaries(run_dir)]
    return found


def _checkpoints(run_dir: Path, config: TrainConfig, store: Store | None) -> list[Finding]:
    paths = ckpt.list_checkpoints(run_dir)
    if not paths:
        return [Finding(True, f"{run_dir} has no checkpoint yet: a resume starts it from the beginning")]
    found: list[Finding] = []
    resumable = False
    for path in reversed(paths):
        try:
            tensors, meta = ckpt.load_checkpoint(path)
        except GanforgeError as exc:
            found.append(Finding(False, str(exc)))
            continue
        if resumable or store is None:
            found.append(Finding(True, f"{path}: intact (checksum verified)"))
            continue
        nimg = check_resumable(config, store, path, tensors, meta)
        done = "complete" if nimg >= config.total_nimg else f"resumes at kimg {nimg / 1000:g}"
        found.append(Finding(True, f"{path}: intact and consistent with the run ({done})"))
        resumable = True
    return found


def _log(log: Path) -> list[Finding]:
    """The run log's finding: its tick rows (up to a line cut short by a kill, which a resume drops too)."""
    if not os.path.lexists(log):
        return [Finding(True, f"{log}: 0 ticks")]
    try:
        rows = read_json_lines(log)
    except (OSError, ValueError) as exc:
        return [Finding(False, f"{log} cannot be read ({exc}); a resume needs it, restore it or start a new run")]
    ticks = [r for r in rows if isinstance(r, dict) and "tick" in r]
    if not ticks:
        return [Finding(True, f"{log}: 0 ticks")]
    kimg = ticks[-1].get("kimg", 0)
    if isinstance(kimg, bool) or not isinstance(kimg, (int, float)):
        return [Finding(False, f"{log}: {len(ticks)} ticks, the last with kimg {str(kimg)[:40]!r}, not a number; "
                               "the log was edited, restore it from a backup")]
    return [Finding(True, f"{log}: {len(ticks)} ticks, last at kimg {kimg:g}")]
