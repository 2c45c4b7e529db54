"""Where the images a metric compares come from: a prepared store, a folder of image files, or a generator.

Every source yields uint8 [B, C, H, W] batches of its first n images, in a fixed order, and says whether it has
a content fingerprint (then its features can be cached; a generator has none).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ganforge.data.bounded_resize import bounded_resize
from ganforge.data.decode import DEFAULT_MAX_PIXELS, pillow_limits
from ganforge.data.store import STORE_SUFFIX, Store
from ganforge.errors import ConfigError, DataError
from ganforge.metrics.features import check_uint8_images
from ganforge.regular_files import open_regular

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Pixels of one batch read from a folder: batches of large photos get fewer images (about 200 MB as RGB).
MAX_BATCH_PIXELS = 64 << 20


class ImageSource(ABC):
    """A finite or endless supply of uint8 images in a fixed order."""

    description: str  # shown in protocol stamps and messages

    @abstractmethod
    def batches(self, batch_size: int, limit: int) -> Iterator[torch.Tensor]:
        """The first `limit` images (or all there are), in uint8 batches of at most `batch_size`."""

    @abstractmethod
    def count(self, limit: int) -> int:
        """How many images `batches(_, limit)` yields."""

    @property
    def fingerprint(self) -> str | None:
        """A content hash when the images are fixed data, None for a generator."""
        return None

    @property
    def cache_fingerprint(self) -> str | None:
        """What the feature cache is keyed by: the content hash, where it was checked against the images."""
        return self.fingerprint

    def images(self, indices: np.ndarray) -> torch.Tensor:
        """uint8 images at the given positions (for the memorisation figure)."""
        raise NotImplementedError(f"{self.description} cannot fetch images by index")


class StoreSource(ImageSource):
    def __init__(self, store: Store | str | os.PathLike[str]) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self.description = f"store {self.store.path}"

    def batches(self, batch_size: int, limit: int) -> Iterator[torch.Tensor]:
        return self.store.iter_uint8(batch_size, limit)

    def count(self, limit: int) -> int:
        return min(limit, len(self.store))

    @property
    def fingerprint(self) -> str | None:
        """The hash `prepare` recorded, checked against the pixels where the store is small enough to hash at every
        start: one edited in place is refused (DataError), not scored with the cached features of the pixels it had."""
        self.store.verify_content()
        return self.store.manifest.fingerprint

    @property
    def cache_fingerprint(self) -> str | None:
        """A store too large to hash at every start adds its file's size and modification time to the recorded
        hash, so an edit in place misses the cache (a copy without its times costs one extraction)."""
        if self.store.verify_content():
            return self.store.manifest.fingerprint
        stat = self.store.path.stat()
        return f"{self.store.manifest.fingerprint}|size {stat.st_size}|mtime_ns {stat.st_mtime_ns}"

    def images(self, indices: np.ndarray) -> torch.Tensor:
        return self.store.uint8_batch(np.asarray(indices))


class FolderSource(ImageSource):
    """PNG/JPEG files under a folder (recursively), sorted by relative path.

    Channels and size follow the first image: greyscale files stay one channel when the first is grey, anything
    else becomes RGB, and images of another size are resized to the first one's with PIL bicubic. An image over
    the decompression-bomb limit is refused with one line, as any unreadable file is.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: no such folder of images.")
        self.files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise DataError(f"{self.folder} holds no .png/.jpg/.jpeg files; point at the folder of images "
                            "(sub-folders are searched).")
        first = self._open(self.files[0])
        self.mode = "L" if first.mode in ("L", "LA", "I", "I;16", "1") else "RGB"
        self.size = first.size  # (W, H)
        self.description = f"folder {self.folder} ({len(self.files)} images)"
        self._fingerprint: str | None = None

    def _open(self, path: Path) -> Image.Image:
        try:
            with pillow_limits(DEFAULT_MAX_PIXELS), open_regular(path) as f:  # a FIFO swapped in must not block
                image = Image.open(f)
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DataError(f"{path}: more than {DEFAULT_MAX_PIXELS:,} pixels, refused as a decompression bomb; "
                            "remove it or shrink it.") from exc
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{path}: not a readable image ({_reason(exc)}); remove it or re-export it.") from exc
        return image

    def _read(self, path: Path) -> np.ndarray:
        image = self._open(path).convert(self.mode)
        if image.size != self.size:
            image = bounded_resize(image, self.size, Image.Resampling.BICUBIC)
        pixels = np.asarray(image, dtype=np.uint8)
        return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # HWC -> CHW

    def batches(self, batch_size: int, limit: int) -> Iterator[torch.Tensor]:
        files = self.files[: self.count(limit)]
        batch_size = max(1, min(batch_size, MAX_BATCH_PIXELS // (self.size[0] * self.size[1])))
        for start in range(0, len(files), batch_size):
            yield torch.from_numpy(np.stack([self._read(p) for p in files[start : start + batch_size]]))

    def count(self, limit: int) -> int:
        return min(limit, len(self.files))

    @property
    def fingerprint(self) -> str | None:
        """sha256 over relative names and file bytes (cheap next to running a network over them)."""
        if self._fingerprint is None:
            digest = hashlib.sha256(f"folder|{self.mode}|{self.size}".encode())
            for path in self.files:
                # os.fsencode: a name that is not UTF-8 hashes as the bytes it is (its str holds surrogates)
                digest.update(os.fsencode(path.relative_to(self.folder).as_posix()) + b"\0")
                with open_regular(path) as f:
                    digest.update(f.read())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def images(self, indices: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([self._read(self.files[int(i)]) for i in indices]))


def _reason(exc: Exception) -> str:
    """PIL's message without the path it repeats ("cannot identify image file '...'"), which the line names."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image format PIL reads"
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


class TensorSource(ImageSource):
    """Images already in memory: uint8 [N, C, H, W] (from a notebook, `G.sample(...)`, or a NumPy array)."""

    def __init__(self, images: torch.Tensor, description: str = "images") -> None:
        check_uint8_images(images, description)
        self.tensor = images.detach().cpu().contiguous()
        self.description = f"{description} ({self.tensor.shape[0]} in memory)"
        self._fingerprint: str | None = None

    def batches(self, batch_size: int, limit: int) -> Iterator[torch.Tensor]:
        yield from self.tensor[: self.count(limit)].split(batch_size)

    def count(self, limit: int) -> int:
        return min(limit, self.tensor.shape[0])

    @property
    def fingerprint(self) -> str | None:
        if self._fingerprint is None:
            digest = hashlib.sha256(f"tensor|{list(self.tensor.shape)}".encode())
            digest.update(self.tensor.numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def images(self, indices: np.ndarray) -> torch.Tensor:
        return self.tensor[torch.as_tensor(np.asarray(indices))]


class GeneratorSource(ImageSource):
    """Images from `fake_batches(batch_size) -> Iterator[uint8 Tensor]`, e.g. a trained generator's sampler.

    The iterator may be endless; we stop after `limit` images and trim the last batch.
    """

    def __init__(self, fake_batches: Callable[[int], Iterator[torch.Tensor]], description: str = "generator"
                 ) -> None:
        self.fake_batches = fake_batches
        self.description = description
        self.kept: list[torch.Tensor] = []  # the images drawn, when keep_images is set (memorisation)
        self.keep_images = False

    def batches(self, batch_size: int, limit: int) -> Iterator[torch.Tensor]:
        produced = 0
        self.kept = []
        for batch in self.fake_batches(batch_size):
            check_uint8_images(batch, self.description)
            batch = batch[: limit - produced].cpu()
            if self.keep_images:
                self.kept.append(batch)
            produced += batch.shape[0]
            yield batch
            if produced >= limit:
                return
        if produced < limit:
            raise DataError(f"{self.description} stopped after {produced} of the {limit} images asked for; "
                            "make fake_batches endless or ask for fewer images.")

    def count(self, limit: int) -> int:
        return limit

    def images(self, indices: np.ndarray) -> torch.Tensor:
        if not self.kept:
            raise RuntimeError("set keep_images before drawing, to fetch generated images by index")
        return torch.cat(self.kept)[torch.as_tensor(np.asarray(indices))]


# What evaluate_sets and memorization_report accept for a set of images.
SourceLike = (ImageSource | Store | str | os.PathLike[str] | torch.Tensor | np.ndarray
              | Callable[[int], Iterator[torch.Tensor]])


def as_source(obj: SourceLike) -> ImageSource:
    """A store path (.gfs) or Store, a folder path, uint8 images [N, C, H, W] (tensor or array), a callable
    fake_batches, or an ImageSource as is."""
    if isinstance(obj, ImageSource):
        return obj
    if isinstance(obj, torch.Tensor | np.ndarray):
        return TensorSource(torch.as_tensor(obj), "images")
    if isinstance(obj, Store):
        return StoreSource(obj)
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if path.is_dir():
            return FolderSource(path)
        if path.is_file():
            return StoreSource(path)
        raise DataError(f"{path}: no such store or folder; pass a store made by `ganforge prepare` "
                        f"(*{STORE_SUFFIX}) or a folder of PNG/JPEG images.")
    if callable(obj):
        return GeneratorSource(obj)
    raise ConfigError(f"cannot read images from {type(obj).__name__}; pass a store, a folder, uint8 images "
                      "[N, C, H, W] or a fake_batches(batch_size) callable.")
