"""Everything a checkpoint claims is checked against the run it resumes before any of it is restored.

The checksum (runs/checkpoint.py) catches bytes changed after writing; this catches a file that is intact but
wrong: edited or hand-made metadata, counters that are negative or not integers, a data position outside the
dataset, RNG states of the wrong type or size, missing, renamed or misshapen tensors. Restored, such a file
trains on from nonsense (a negative kimg empties log.jsonl) or crashes mid-run; refused, the user reads one
line naming the file and what is wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from ganforge.errors import CheckpointError
from ganforge.models import family_of
from ganforge.training.schemes import scheme_of
from ganforge.training.state import CHECKPOINT_FORMAT, Counters, TrainingState
from ganforge.training.stats import ADDED_LATER, STAT_NAMES

META_KEYS = {"format", "ganforge_version", "config", "counters", "opt_G", "opt_D", "stat_counts", "sampler",
             "augment", "precision", "rng_python", "rng_numpy", "input_sampler"}
# Mixed-precision state came after format 1's first checkpoints; an unpaired store's input sampler is only in
# image-to-image runs. The scheme's stateful parts add their own keys (`Scheme.part_keys`), each checked by the part.
OPTIONAL_META_KEYS = frozenset({"precision", "input_sampler"})
SAMPLER_KEYS = {"epoch", "position", "dataset_size"}
# torch.amp.GradScaler.state_dict() of an fp16 run: floats and two integer counts.
SCALER_STATE = {"scale": 1.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 1,
                "_growth_tracker": 0}
MT_WORDS = 624  # Mersenne Twister state words, Python's and NumPy's
_CUDA_RNG = re.compile(r"^rng\.cuda\.\d+$")


class _Invalid(Exception):
    """What is wrong with a checkpoint, as a phrase (the caller names the file)."""


def restore_checked(state: TrainingState, source: Path, tensors: dict[str, torch.Tensor],
                    meta: dict[str, Any]) -> None:
    """Restore `state` from a checkpoint read from `source`, or refuse in one line naming the file."""
    try:
        _check_checkpoint(state, tensors, meta)
    except _Invalid as exc:
        raise CheckpointError(f"{source} cannot be resumed: {exc}; the file was edited or written by something "
                              f"else: move it out of {source.parent} to resume from the one before.") from exc
    try:
        state.restore(tensors, meta)
    except CheckpointError as exc:  # what only the parts themselves know (e.g. ADA's p in [0, 1])
        raise CheckpointError(f"{source}: {exc}") from exc


def _check_checkpoint(state: TrainingState, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Raises _Invalid with the first problem found in a checkpoint's metadata or tensors for this state."""
    part_keys = scheme_of(family_of(state.config.model.name).scheme).part_keys | set(state.parts)
    _check_keys(meta, META_KEYS | part_keys, "metadata", optional=OPTIONAL_META_KEYS | part_keys)
    if meta["format"] != CHECKPOINT_FORMAT:
        raise _Invalid(f"checkpoint format {_show(meta['format'])} is not {CHECKPOINT_FORMAT} (written by ganforge "
                       f"{meta['ganforge_version']})")
    _expect(isinstance(meta["config"], dict), "metadata 'config' is not a JSON object")
    _check_counters(meta["counters"])
    _check_sampler(meta["sampler"], meta["counters"]["cur_nimg"], state.sampler.dataset_size)
    _expect((state.input_sampler is None) == ("input_sampler" not in meta),
            "the checkpoint's input sampler does not match the store (unpaired stores have one, others none)")
    if state.input_sampler is not None:
        _check_sampler(meta["input_sampler"], meta["counters"]["cur_nimg"], state.input_sampler.dataset_size)
    for key, part in state.parts.items():
        _expect(key in meta or not part.required_on_resume, f"the checkpoint's {part.what} does not match the model")
        if key in meta:
            try:
                part.check(meta[key])
            except CheckpointError as exc:
                raise _Invalid(str(exc)) from exc
    _check_numbers(meta["stat_counts"], dict.fromkeys(STAT_NAMES, 0), "stat_counts", optional=ADDED_LATER)
    augment_now = state.augment.state_dict()  # its keys are the augmentation's own check (another --augment)
    for key, value in _object(meta["augment"], "augment").items():
        if _is_integer(augment_now.get(key)):
            _check_count(value, f"augment {key}")
        _expect(_is_number(value), f"augment {key} is {_show(value)}, not a finite number")
    for net, scaler in _object(meta.get("precision", {}), "precision").items():
        _expect(net in ("G", "D"), f"precision has an unknown network {_show(net)}")
        _check_numbers(scaler, SCALER_STATE, f"precision {net}")
        _expect(scaler["scale"] > 0, f"precision {net} scale is {_show(scaler['scale'])}, not > 0")
    _check_python_rng(meta["rng_python"])
    _check_numpy_rng(meta["rng_numpy"])
    _check_tensors(state, tensors, meta)


def _check_counters(counters: Any) -> None:
    # budget_seconds came with --minutes, the collapse monitor's counters, the budget's end cost and the best
    # snapshot's check counters after it: older checkpoints lack them (a resumed budget counts from there; the
    # monitor and the checks' share start afresh).
    _check_keys(counters, {f.name for f in fields(Counters)}, "counters",
                optional=frozenset({"budget_seconds", "budget_end_seconds", "healthy_nimg", "collapse_kept",
                                    "collapse_warned_nimg", "best_check_seconds", "best_checks"}))
    for name, value in counters.items():
        if name in ("train_seconds", "budget_seconds", "budget_end_seconds", "best_check_seconds"):
            _expect(_is_number(value) and value >= 0, f"counter {name} is {_show(value)}, not seconds >= 0")
        else:
            _check_count(value, f"counter {name}",
                         minimum=-1 if name in ("phase_index", "healthy_nimg", "collapse_warned_nimg") else 0)
    for name in ("tick_start_nimg", "healthy_nimg", "collapse_warned_nimg"):
        _expect(counters.get(name, 0) <= counters["cur_nimg"],
                f"counter {name} {counters.get(name)} is past cur_nimg {counters['cur_nimg']}")
    kept = counters.get("collapse_kept", 0)
    _expect(kept <= 1, f"counter collapse_kept is {kept}, not 0 or 1")


def _check_sampler(sampler: Any, cur_nimg: int, dataset_size: int) -> None:
    _check_keys(sampler, SAMPLER_KEYS, "sampler")
    for name in SAMPLER_KEYS:
        _check_count(sampler[name], f"sampler {name}")
    _expect(sampler["dataset_size"] == dataset_size,
            f"the sampler was saved for {sampler['dataset_size']} images, the store has {dataset_size}")
    _expect(sampler["position"] < dataset_size,
            f"sampler position {sampler['position']} is outside the epoch of {dataset_size} images")
    # Every image shown to D was drawn from the sampler, in order: the data position is the image count.
    drawn = sampler["epoch"] * dataset_size + sampler["position"]
    _expect(drawn == cur_nimg, f"the sampler's position (epoch {sampler['epoch']}, image {sampler['position']}) "
                               f"is {drawn} images in, but counter cur_nimg is {cur_nimg}")


def _check_python_rng(raw: Any) -> None:
    """random.getstate() as JSON: [3, [624 words and an index], gauss_next]."""
    ok = isinstance(raw, list) and len(raw) == 3 and raw[0] == 3 and isinstance(raw[1], list)
    ok = ok and len(raw[1]) == MT_WORDS + 1 and all(_is_word(w) for w in raw[1])
    ok = ok and 0 <= raw[1][-1] <= MT_WORDS and (raw[2] is None or _is_number(raw[2]))
    _expect(ok, "rng_python is not a Python random state (version 3, 624 32-bit words and an index)")


def _check_numpy_rng(raw: Any) -> None:
    """np.random.get_state() as JSON: ["MT19937", 624 words, position, has_gauss, cached_gaussian]."""
    ok = isinstance(raw, list) and len(raw) == 5 and raw[0] == "MT19937" and isinstance(raw[1], list)
    ok = ok and len(raw[1]) == MT_WORDS and all(_is_word(w) for w in raw[1])
    ok = ok and _is_count(raw[2]) and raw[2] <= MT_WORDS and raw[3] in (0, 1) and _is_number(raw[4])
    _expect(ok, "rng_numpy is not a NumPy MT19937 state (624 32-bit words, a position up to 624, a gaussian)")


def _check_tensors(state: TrainingState, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    expected = {f"G.{k}": v for k, v in state.generator.state_dict().items()}
    expected |= {f"D.{k}": v for k, v in state.discriminator.state_dict().items()}
    if state.encoder is not None:
        expected |= {f"E.{k}": v for k, v in state.encoder.state_dict().items()}
    expected |= {f"stats.{n}": torch.zeros((), dtype=torch.float64) for n in STAT_NAMES}
    expected |= {"rng.torch": torch.get_rng_state(), "rng.latent": state.latent_rng.get_state()}
    for part in state.parts.values():
        expected |= part.state_dict()[0]
    # G's average is optional (EMA may be switched on at resume) but complete when present; it mirrors G.
    if any(k.startswith("G_ema.") for k in tensors):
        expected |= {f"G_ema.{k}": v for k, v in state.generator.state_dict().items()}
    optimizers = {"opt_G": state.opt_g, "opt_D": state.opt_d}
    for name in sorted(tensors):
        tensor = tensors[name]
        if name in expected:
            _check_like(name, tensor, expected[name])
        elif _CUDA_RNG.match(name):  # a GPU's generator state: kept when resumed on the CPU
            _expect(tensor.dtype == torch.uint8 and tensor.dim() == 1, f"tensor {name} is not a CUDA RNG state")
        elif name.split(".", 1)[0] not in optimizers:
            raise _Invalid(f"tensor {name} is not part of this run's state (renamed, or from another model)")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise _Invalid(f"tensor {name} holds NaN or infinity")
    missing = sorted(set(expected) - set(tensors) - {f"stats.{n}" for n in ADDED_LATER})
    _expect(not missing, f"tensor {missing[0] if missing else ''} is missing")
    for name in sorted(ADDED_LATER):  # an older checkpoint lacks both; a newer one has both
        _expect((f"stats.{name}" in tensors) == (name in meta["stat_counts"]),
                f"the checkpoint has {'the tensor' if f'stats.{name}' in tensors else 'no tensor'} stats.{name} but "
                f"{'a' if name in meta['stat_counts'] else 'no'} stat_counts {name}")
    for prefix, optimizer in optimizers.items():
        _check_optimizer(prefix, optimizer, tensors, _object(meta[prefix], prefix))


# Adam's hyperparameters as torch.optim.Adam accepts them; an edited one would only show up as a diverged loss.
_ADAM_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "lr": (lambda v: 0 < v < math.inf, "positive"),
    "betas": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "eps": (lambda v: 0 < v < math.inf, "positive"),
    "weight_decay": (lambda v: 0 <= v < math.inf, "zero or positive"),
}


def _check_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                     meta: dict[str, Any]) -> None:
    """Adam's per-parameter state (step, moments) and hyperparameters, as state.capture() splits them."""
    _check_keys(meta, {"param_groups", "scalars"}, prefix)
    groups = meta["param_groups"]
    _expect(isinstance(groups, list) and len(groups) == len(optimizer.param_groups),
            f"{prefix} has {len(groups) if isinstance(groups, list) else 'no'} parameter groups, the optimizer has "
            f"{len(optimizer.param_groups)}")
    params: list[torch.Tensor] = []
    for group, (saved, current) in enumerate(zip(groups, optimizer.param_groups, strict=True)):
        where = f"{prefix} parameter group {group}"
        saved = _object(saved, where)
        ids = list(range(len(params), len(params) + len(current["params"])))
        _expect(saved.get("params") == ids, f"{where} lists parameters {_show(saved.get('params'))}, expected {ids}")
        for key, value in current.items():
            if key == "params" or isinstance(value, bool) or value is None:
                continue  # flags: torch reads them as given (fused, foreach, ...)
            numbers = list(value) if isinstance(value, tuple | list) else [value]
            got = saved.get(key)
            got_numbers = got if isinstance(got, list) else [got]
            _expect(len(got_numbers) == len(numbers) and all(_is_number(v) for v in got_numbers),
                    f"{where} has {key} = {_show(got)}, not {'numbers' if len(numbers) > 1 else 'a number'}")
            valid, allowed = _ADAM_RANGES.get(key, (lambda v: math.isfinite(v), "finite"))
            _expect(all(valid(float(v)) for v in got_numbers if v is not None),
                    f"{where} has {key} = {_show(got)}, but Adam's {key} must be {allowed}")
        params += current["params"]
    amsgrad = any(g.get("amsgrad") for g in optimizer.param_groups)
    state_keys = {"step", "exp_avg", "exp_avg_sq", *(["max_exp_avg_sq"] if amsgrad else [])}
    per_param: dict[int, set[str]] = {}
    for name, tensor in tensors.items():
        if not name.startswith(prefix + "."):
            continue
        index, _, key = name[len(prefix) + 1 :].partition(".")
        _expect(index.isdigit() and int(index) < len(params) and key in state_keys,
                f"tensor {name} is not the state of one of the optimizer's {len(params)} parameters")
        shape = torch.Size([]) if key == "step" else params[int(index)].shape
        _expect(tensor.is_floating_point() and tensor.shape == shape,
                f"tensor {name} is {_describe(tensor)}, the optimizer needs floats of shape {list(shape)}")
        per_param.setdefault(int(index), set()).add(key)
    for index, values in _object(meta["scalars"], f"{prefix} scalars").items():
        _expect(index.isdigit() and int(index) < len(params), f"{prefix} scalars name parameter {_show(index)}")
        for key, value in _object(values, f"{prefix} scalars {index}").items():
            _expect(key in state_keys and _is_number(value), f"{prefix} scalars {index} has {key} = {_show(value)}")
            per_param.setdefault(int(index), set()).add(key)
    for param, keys in sorted(per_param.items()):
        _expect(keys == state_keys, f"the {prefix} state of parameter {param} has {sorted(keys)}, Adam keeps "
                                    f"{sorted(state_keys)}")


def _check_like(name: str, tensor: torch.Tensor, like: torch.Tensor) -> None:
    _expect(tensor.shape == like.shape and tensor.dtype == like.dtype,
            f"tensor {name} is {_describe(tensor)}, this run needs {_describe(like)}")


def _check_numbers(values: Any, like: dict[str, Any], where: str, optional: frozenset[str] = frozenset()) -> None:
    """`values` holds exactly `like`'s keys (but perhaps `optional`), as counts where `like` has integers, finite
    numbers elsewhere."""
    _check_keys(values, set(like), where, optional)
    for key, value in values.items():
        if isinstance(like[key], int) and not isinstance(like[key], bool):
            _check_count(value, f"{where} {key}")
        else:
            _expect(_is_number(value), f"{where} {key} is {_show(value)}, not a finite number")


def _check_keys(values: Any, keys: set[str], where: str, optional: frozenset[str] = frozenset()) -> None:
    values = _object(values, where)
    unknown = sorted(set(values) - keys)
    _expect(not unknown, f"{where} has an unknown key {unknown[0] if unknown else ''!r}")
    missing = sorted(keys - optional - set(values))
    _expect(not missing, f"{where} lacks {missing[0] if missing else ''!r}")
    nulls = sorted(k for k, v in values.items() if v is None)
    _expect(not nulls, f"{where} {nulls[0] if nulls else ''!r} is null")


def _check_count(value: Any, what: str, minimum: int = 0) -> None:
    _expect(_is_integer(value) and value >= minimum, f"{what} is {_show(value)}, not an integer >= {minimum}")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{where} is {_show(value)}, not a JSON object")
    return value


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise _Invalid(problem)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return _is_integer(value) and value >= 0


def _is_word(value: Any) -> bool:
    return _is_count(value) and value < 2**32


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def _show(value: Any) -> str:
    """A JSON value for a message, cut short: a hand-edited RNG state is 624 numbers long."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(tensor: torch.Tensor) -> str:
    return f"{str(tensor.dtype).removeprefix('torch.')} {list(tensor.shape)}"
