"""On-disk cache of a set's features and FID statistics, so the real set is extracted once per protocol.

The key is everything that changes the numbers: the source's content fingerprint, which images were taken
(the first n), the extractor's name, weights hash and resize. Files are safetensors (tensors plus a JSON
metadata header), written atomically; nothing is ever unpickled. A file whose recorded key differs from the
requested one (a truncated-hash collision or a hand-copied file) is treated as a miss and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ganforge.metrics.features import FeatureSet
from ganforge.whole_files import written_whole

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """$GANFORGE_CACHE if set, else $XDG_CACHE_HOME/ganforge, else ~/.cache/ganforge."""
    if os.environ.get("GANFORGE_CACHE"):
        return Path(os.environ["GANFORGE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ganforge"


def cache_key(source_fingerprint: str, extractor_identity: dict[str, Any], n: int) -> dict[str, Any]:
    return {"format": CACHE_FORMAT, "source_fingerprint": source_fingerprint, "selection": "first-n", "n": n,
            **extractor_identity}


def cache_path(cache_dir: str | os.PathLike[str], key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return Path(cache_dir) / "features" / f"{key['extractor']}-{key['n']}-{digest}.safetensors"


def load_or_compute(cache_dir: str | os.PathLike[str], key: dict[str, Any],
                    compute: Callable[[], FeatureSet]) -> tuple[FeatureSet, bool]:
    """(features, hit): read the cached set for `key`, or compute, save and return it with hit=False."""
    cached = read_cached(cache_dir, key)
    if cached is not None:
        return cached, True
    features = compute()
    write_cached(cache_dir, key, features)
    return features, False


def read_cached(cache_dir: str | os.PathLike[str], key: dict[str, Any]) -> FeatureSet | None:
    """The cached set for `key`, or None when there is none (or it is unreadable, or recorded for another key)."""
    return _read(cache_path(cache_dir, key), key)


def write_cached(cache_dir: str | os.PathLike[str], key: dict[str, Any], features: FeatureSet) -> None:
    _write(cache_path(cache_dir, key), key, features)


def _read(path: Path, key: dict[str, Any]) -> FeatureSet | None:
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        if json.loads(metadata.get("key", "null")) != json.loads(json.dumps(key)):
            return None
        tensors = load_file(str(path))
    except (OSError, SafetensorError, ValueError):
        return None  # unreadable: recompute and overwrite
    stats = (tensors["mu"], tensors["sigma"]) if "mu" in tensors else None
    return FeatureSet(tensors["features"], tensors.get("logits"), _stats=stats)


def _write(path: Path, key: dict[str, Any], features: FeatureSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mu, sigma = features.statistics()
    tensors: dict[str, torch.Tensor] = {"features": features.features.contiguous(), "mu": mu, "sigma": sigma}
    if features.logits is not None:
        tensors["logits"] = features.logits.contiguous()
    with written_whole(path) as temporary:
        save_file(tensors, str(temporary), metadata={"key": json.dumps(key, sort_keys=True)})
