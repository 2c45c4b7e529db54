"""Start a run from a trained GAN (`--init SOURCE`): a run folder, an exported folder, or a Hub repo id already in
the local cache. Nothing is unpickled: runs and exports hold safetensors and JSON.

Every tensor of the new networks whose name and shape match the source's is copied; the rest start fresh and
are listed. Two differences are bridged instead of skipped: a new class count (the class weights start fresh,
said so) and grey <-> RGB images (G's output layer and D's input layer are widened or folded along their
channel axis, so a grey image still gets the response the source gave it), and a growing family (ProGAN,
StyleGAN2) at 2x, 4x ... its source's resolution keeps the source's layers and adds new ones
(`ModelFamily.grows_from`); ProGAN's schedule then starts at the fade-in above the source's resolution.
Another family, another resolution, a source of which less than half of G fits, or `--freeze-d` over layers the
source lacks is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from ganforge.config import TrainConfig
from ganforge.errors import CheckpointError, ConfigError
from ganforge.models import family_of
from ganforge.regular_files import check_regular
from ganforge.runs import checkpoint as ckpt
from ganforge.runs.exported import DISCRIMINATOR_FILE, FORMATS, is_export_folder, read_export
from ganforge.runs.folder import read_run_config
from ganforge.runs.hub_source import fetch_generator_files, hub_repo_id
from ganforge.runs.weights import weight_problem
from ganforge.training.freeze import frozen_modules

ImageShape = tuple[int, int, int]
ROLES = ("G", "D", "G_ema", "E")  # checkpoint prefixes: generator, discriminator, G's average, AAE's encoder
MIN_G_SHARE = 0.5  # less of G's weights than this from the source is not fine-tuning: refused
_LISTED = 6  # skipped tensors named in the report; the rest are counted


@dataclass(frozen=True)
class InitSource:
    """The trained GAN a run starts from."""

    given: str  # as the user wrote it
    path: Path  # the folder read
    kind: str  # "run" or "export"
    config: TrainConfig  # the source's training config: the new run's recipe
    image_shape: ImageShape
    nimg: int  # images its D had seen
    tensors: dict[str, dict[str, torch.Tensor]]  # role -> {name: tensor}
    sha256: str  # fingerprint of those tensors
    passed_over: str = ""  # why a newer checkpoint of the source was not used (damaged), or ""

    def describe(self) -> str:
        roles = "+".join(role for role in ROLES if self.tensors.get(role))
        return (f"{self.path} ({self.kind}, {self.config.model.name}, {'x'.join(map(str, self.image_shape))}, "
                f"kimg {self.nimg / 1000:g}, {roles}{'; ' + self.passed_over if self.passed_over else ''})")


@dataclass
class InitMatch:
    """What the source gives the new networks: {"G.name": tensor} to load, and what was bridged or left fresh."""

    copies: dict[str, torch.Tensor] = field(default_factory=dict)
    bridged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (target tensor, why)
    g_share: float = 0.0  # share of G's parameter elements that come from the source

    def report(self, source: InitSource) -> str:
        by_role = {role: sum(1 for k in self.copies if k.startswith(role + ".")) for role in ROLES}
        copied = ", ".join(f"{n} {role}" for role, n in by_role.items() if n)
        line = f"init from {source.describe()}: copied {copied} tensors"
        if self.bridged:
            line += f"; bridged grey/RGB: {', '.join(self.bridged)}"
        if self.skipped:
            # By module: a layer's weight, bias and running statistics are one entry.
            modules = list(dict.fromkeys((name.rsplit(".", 1)[0], why) for name, why in self.skipped))
            named = ", ".join(f"{module} ({why})" for module, why in modules[:_LISTED])
            more = f" and {len(modules) - _LISTED} more" if len(modules) > _LISTED else ""
            line += f"; fresh: {named}{more}"
        return line


def open_init_source(given: str, sha256: str = "") -> InitSource:
    """The source `given` names: a local run or export folder, else a Hub repo id in the local cache (never the
    network: a run must not download at start). With `sha256` (a run's record of the weights it started from), a
    source run that has trained on since gives the checkpoint of those weights where it still holds it."""
    path = Path(given)
    if not path.exists():
        named = f"--init {given}"
        path = fetch_generator_files(hub_repo_id(given, named), named, network=False)
    if not path.is_dir():
        raise ConfigError(f"--init {given} is not a folder; pass a run folder, an exported folder or a Hub repo id")
    if is_export_folder(path):
        return _export_source(given, path)
    return _run_source(given, path, sha256)


def _run_source(given: str, path: Path, sha256: str = "") -> InitSource:
    config, dataset = read_run_config(path)
    damage: list[str] = []
    found = ckpt.load_latest_intact(path, damage.append, move_damaged=False)  # the source is only read
    if found is None:
        raise ConfigError(f"--init {given}: the run has no checkpoint yet; train it longer or pass another source")
    latest, tensors, meta = found
    roles = _roles(tensors)
    if sha256 and _fingerprint(roles) != sha256:
        for older in reversed([c for c in ckpt.list_checkpoints(path) if c != latest]):
            try:
                older_tensors, older_meta = ckpt.load_checkpoint(older)
            except (CheckpointError, OSError):
                continue  # damaged or unreadable: not the one
            if _fingerprint(_roles(older_tensors)) == sha256:
                tensors, meta, roles = older_tensors, older_meta, _roles(older_tensors)
                break
    nimg = meta.get("counters", {}).get("cur_nimg", 0)
    return InitSource(given, path, "run", config, _shape(dataset.get("shape"), path), int(nimg),
                      {r: t for r, t in roles.items() if t}, _fingerprint(roles), "; ".join(damage))


def _roles(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    return {role: {k[len(role) + 1:]: v for k, v in tensors.items() if k.startswith(role + ".")} for role in ROLES}


def _export_source(given: str, path: Path) -> InitSource:
    meta, config = read_export(path)
    if meta["format"] != "safetensors":
        raise ConfigError(f"--init {given}: a {meta['format']} export is a graph, not weights to fine-tune; export "
                          "the run with `ganforge export RUN --format safetensors --with-discriminator`")
    g_file = path / meta.get("file", FORMATS["safetensors"])
    roles = {"G": _load(g_file)}
    d_file = meta.get("discriminator")
    if d_file == DISCRIMINATOR_FILE:
        roles["D"] = _load(path / d_file)
    return InitSource(given, path, "export", config, _shape(meta["dataset"].get("shape"), path),
                      int(meta.get("nimg", 0)), roles, _fingerprint(roles))


def _load(file: Path) -> dict[str, torch.Tensor]:
    try:
        check_regular(file)  # a FIFO would block the reader forever
        return load_file(str(file))
    except Exception as exc:  # OSError, or safetensors' own error for a malformed file
        raise CheckpointError(f"{file} is not a readable safetensors file ({exc}); export it again") from exc


def _shape(shape: Any, where: Path) -> ImageShape:
    if not isinstance(shape, list) or len(shape) != 3 or not all(type(s) is int and s > 0 for s in shape):
        raise CheckpointError(f"{where}/config.json records no valid image shape ({shape!r}); it is damaged")
    return (shape[0], shape[1], shape[2])


def _fingerprint(roles: dict[str, dict[str, torch.Tensor]]) -> str:
    """The checkpoints' own content checksum over the source tensors used, by role."""
    flat = {f"{role}.{name}": tensor.detach().cpu().contiguous()
            for role, tensors in roles.items() for name, tensor in tensors.items()}
    return ckpt.content_checksum("", flat)


def match_init(source: InitSource, config: TrainConfig, shape: ImageShape,
               networks: dict[str, nn.Module]) -> InitMatch:
    """What of `source` fits `networks` ({role: module}, built for `config` and images of `shape`; meta tensors
    will do). Refuses another family, another resolution, or a source that fills less than half of G."""
    given, ours, theirs = source.given, config.model.name, source.config.model.name
    if ours != theirs:
        raise ConfigError(f"--init {given} holds a {theirs} GAN and this run trains --model {ours}: nothing fits; "
                          f"drop --model (the run then trains {theirs}) or start from a {ours} run")
    if config.freeze_d and not source.tensors.get("D"):
        raise ConfigError(f"--freeze-d keeps the source's first D blocks, but {given} holds no discriminator; "
                          "drop --freeze-d, or export the run again with --with-discriminator")
    doublings = _doublings(source, shape)
    if doublings and config.freeze_d:
        raise ConfigError(f"--freeze-d keeps D's first blocks, and at {shape[1]}x{shape[2]} those are new layers, "
                          f"not {given}'s; drop --freeze-d")
    grows_from = family_of(ours).grows_from
    channels = (source.image_shape[0], shape[0])
    match = InitMatch()
    g_total = g_from_source = 0
    for role, module in networks.items():
        wanted = module.state_dict()
        available = source.tensors.get(role) or (source.tensors.get("G", {}) if role == "G_ema" else {})
        if not available:
            match.skipped += [(f"{role}.*", f"the source has no {role}")] if wanted else []
            continue
        parameters = {name for name, _ in module.named_parameters()}
        for name, target in wanted.items():
            source_name = grows_from(role, name, doublings) if grows_from is not None and doublings else name
            key, tensor = f"{role}.{name}", available.get(source_name) if source_name is not None else None
            taken = None
            if tensor is not None and (problem := weight_problem(tensor, target)) is not None:
                # Before bridging, which averages: an integer tensor would fail there, a NaN spread.
                raise ConfigError(f"--init {given}: its tensor {role}.{source_name} {problem}; it cannot start a run "
                                  "(export or train the source again)")
            if source_name is None:
                match.skipped.append((key, "a new layer at this resolution"))
            elif tensor is None:
                match.skipped.append((key, "not in the source"))
            elif tuple(tensor.shape) == tuple(target.shape):
                taken = tensor
            elif (bridged := _bridge_channels(tensor, tuple(target.shape), channels,
                                              _input_axis(module, name))) is not None:
                taken = bridged
                match.bridged.append(key)
            else:
                match.skipped.append((key, f"{list(tensor.shape)} in the source, {list(target.shape)} here"))
            if taken is not None:
                match.copies[key] = taken.to(target.dtype)
            if role == "G" and name in parameters:
                g_total += target.numel()
                g_from_source += target.numel() if taken is not None else 0
    _check_frozen_from_source(match, config, networks, given)
    match.g_share = g_from_source / max(1, g_total)
    if match.g_share < MIN_G_SHARE:
        raise ConfigError(f"--init {given}: only {match.g_share:.0%} of G's weights fit this run's networks (the "
                          "settings differ too much: widths, z size); drop the model flags that differ from the "
                          "source's")
    return match


def _check_frozen_from_source(match: InitMatch, config: TrainConfig, networks: dict[str, nn.Module],
                              given: str) -> None:
    """Refuse to freeze what the source does not hold (e.g. `--pixel-head` added to a source without one, a
    mapping network of another size): a frozen layer would keep its random start for the whole run."""
    if not (config.freeze_d or config.freeze_g_mapping) or not {"G", "D"} <= networks.keys():
        return
    frozen = frozen_modules(config, family_of(config.model.name), networks["G"], networks["D"])
    frozen_ids = {id(p) for module in frozen for p in module.parameters()}
    fresh = {f"{role}.{name}" for role in ("G", "D") for name, p in networks[role].named_parameters()
             if id(p) in frozen_ids} & {key for key, _ in match.skipped}
    if fresh:
        flags = " and ".join(flag for role, flag in (("D", f"--freeze-d {config.freeze_d}"),
                                                     ("G", "--freeze-g-mapping"))
                             if any(key.startswith(role + ".") for key in fresh))
        modules = ", ".join(sorted({".".join(key.split(".")[:2]) + ".*" for key in fresh}))
        raise ConfigError(f"{flags} keep the layers they freeze as {given} trained them, but {given} does not hold "
                          f"{modules} ({len(fresh)} tensors): frozen, they would stay random. Lower or drop the "
                          "freezing flag, or drop the flag that adds those layers (e.g. --pixel-head)")


def _doublings(source: InitSource, shape: ImageShape) -> int:
    """How many times this run's resolution doubles the source's: 0 at the same size; refused (one line) where the
    family cannot grow to it."""
    (_, their_h, their_w), (_, h, w) = source.image_shape, shape
    if (h, w) == (their_h, their_w):
        return 0
    ratio = h // their_h
    grows = family_of(source.config.model.name).grows_from is not None
    if not grows or h % their_h or ratio & (ratio - 1) or (w * their_h != h * their_w) or ratio < 2:
        how = (" (it adds new blocks for 2x, 4x ... the source's size)" if grows
               else "; a growing family (progan, stylegan2) can also start from a smaller source")
        raise ConfigError(f"--init {source.given} makes {their_h}x{their_w} images and this store holds {h}x{w}; "
                          f"prepare the new images at the source's size (`ganforge prepare ... --resolution "
                          f"{their_h}`){how}")
    return ratio.bit_length() - 1


def _bridge_channels(tensor: torch.Tensor, target: tuple[int, ...], channels: tuple[int, int],
                     input_axis: int) -> torch.Tensor | None:
    """`tensor` carried from grey to RGB images or back along its one image-channel axis, or None when its shape
    differs otherwise. Where that axis is what the layer writes (G's last layer), the channels are copied (1 -> 3)
    or averaged (3 -> 1); where it is what the layer reads (D's first layer, AAE's encoder's, an image-to-image
    G's), they share the weight (1 -> 3, each a third) or are summed (3 -> 1): a grey image keeps the response it
    had. `input_axis`: the axis of the layer's inputs, if `tensor` is a weight."""
    source_c, target_c = channels
    if source_c == target_c or {source_c, target_c} != {1, 3} or tensor.dim() != len(target):
        return None
    differing = [i for i, (a, b) in enumerate(zip(tensor.shape, target, strict=True)) if a != b]
    if len(differing) != 1 or (tensor.shape[differing[0]], target[differing[0]]) != channels:
        return None
    axis = differing[0]
    output_side = tensor.dim() < 2 or axis != input_axis  # a bias, or any 1-D tensor, is per output channel
    if target_c == 3:
        widened = tensor.repeat_interleave(3, dim=axis)
        return widened if output_side else widened / 3
    return tensor.mean(dim=axis, keepdim=True) if output_side else tensor.sum(dim=axis, keepdim=True)


def _input_axis(network: nn.Module, name: str) -> int:
    """The input axis of the weight `name` in `network`. Every layer here keeps its weight as [out, in, ...]
    (PyTorch's convolutions and linear layers, ganforge's own) except transposed convolutions: [in, out, ...]."""
    owner_name = name.rpartition(".")[0].removesuffix(".parametrizations.weight")  # spectral norm's raw weight
    owner = network.get_submodule(owner_name) if owner_name else network
    return 0 if isinstance(owner, nn.modules.conv._ConvTransposeNd) else 1


def apply_init(match: InitMatch, networks: dict[str, nn.Module]) -> None:
    """Load what `match` took from the source into `networks` ({role: module}), in place."""
    with torch.no_grad():
        for role, module in networks.items():
            state = {k[len(role) + 1:]: v for k, v in match.copies.items() if k.startswith(role + ".")}
            if state:
                module.load_state_dict(state, strict=False)


def initialize(config: TrainConfig, shape: ImageShape, networks: dict[str, nn.Module]) -> InitMatch:
    """A new run's networks loaded from `config.init`, the source it recorded at its start (refused if its weights
    changed since: the run would no longer be the one its config.json describes)."""
    source = open_init_source(config.init, config.init_sha256)
    if config.init_sha256 and source.sha256 != config.init_sha256:
        raise ConfigError(f"--init {config.init}: its weights changed since this run started from them (their "
                          "fingerprint differs from config.json's init_sha256); restore them, or start a new run")
    match = match_init(source, config, shape, networks)
    apply_init(match, networks)
    return match
