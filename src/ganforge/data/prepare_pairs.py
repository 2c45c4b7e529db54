"""`ganforge prepare` for image-to-image translation: sources -> two sides of normalised images -> one store.

The doctor's guarantees hold on both sides: every input that cannot be used is skipped with a reason (a pair
with one bad side is skipped whole, reported once under both names), nothing crashes on a bad file, and the
store is written atomically. Held-out rows (`--val-fraction`) are chosen by a fixed seed before decoding and
decoded last, so they end up as the last rows of each side without copying pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ganforge.data.decode import SkipInput, Target, decode, open_image, pillow_limits, to_array
from ganforge.data.derive import derive_input, derived_shape
from ganforge.data.destination import check_destination
from ganforge.data.pairing import PairOptions
from ganforge.data.prepare import (
    Decoded,
    PrepareOptions,
    PrepareReport,
    Spill,
    check_first_size,
    decode_files,
    free_ram_bytes,
    guess_channels,
    note,
    target_of,
)
from ganforge.data.sources import Entry, FileSource, open_source
from ganforge.data.store import Manifest, content_fingerprint, write_store
from ganforge.errors import ConfigError, DataError
from ganforge.progress import progress as progress_of

_SPILL_MAX_BYTES = 2 << 30
_HOLD_OUT_SEED = 0  # the held-out rows depend on the inputs alone, never on the run


@dataclass
class _Sides:
    a: np.ndarray  # uint8 [kept, C, H, W]: the inputs
    b: np.ndarray  # uint8 [kept_b, C, H, W]: the targets
    val_a: int  # held-out rows at the end of each side
    val_b: int
    skipped: list[dict[str, str]]
    total: int  # inputs considered: pairs, unmatched files and listing rejects (both sides when unpaired)


def prepare_pairs(out: str | os.PathLike[str], options: PrepareOptions, pairing: PairOptions, *,
                  source: str | os.PathLike[str] | None = None, a: str | os.PathLike[str] | None = None,
                  b: str | os.PathLike[str] | None = None, progress: bool = True, force: bool = False,
                  spill_bytes: int | None = None) -> PrepareReport:
    """Read the sources `pairing` takes (SOURCE, or --a and --b), write the two-sided store `out` and report."""
    start = time.perf_counter()
    sources = _sources(pairing, source, a, b)
    out = Path(out)
    for path in sources:
        check_destination(path, out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    limit = spill_bytes if spill_bytes is not None else min(_SPILL_MAX_BYTES, free_ram_bytes() // 4)
    spill_a, spill_b = Spill(out, limit, "a-"), Spill(out, limit, "b-")
    max_member_bytes = options.max_pixels * 8 + (16 << 20)
    try:
        with pillow_limits(options.max_pixels), ExitStack() as stack:
            listings = []
            for path in sources:
                listing = stack.enter_context(open_source(path, max_member_bytes))
                if not isinstance(listing, FileSource):
                    raise DataError(f"{path}: an IDX or .npz file holds one set of images; pairs are read from "
                                    "image folders or archives.")
                listings.append(listing)
            labels = [str(path) for path in sources]
            if pairing.pairs == "side-by-side":
                sides = _side_by_side(listings[0], options, pairing, spill_a, spill_b, progress)
            elif pairing.pairs == "by-name":
                sides = _by_name(listings, labels, options, pairing, spill_a, spill_b, progress)
            elif pairing.unpaired:
                sides = _unpaired(listings, labels, options, pairing, spill_a, spill_b, progress)
            else:
                sides = _derived(listings[0], options, pairing, spill_a, spill_b, progress)
            if len(sides.a) == 0 or len(sides.b) == 0:
                raise DataError(_nothing_usable(labels, sides, pairing))
            manifest = _manifest(labels, [listing.seen for listing in listings], sides, options, pairing)
            write_store(out, sides.a, np.zeros(len(sides.a), np.int64), manifest, sides.b)
    finally:
        spill_a.remove()
        spill_b.remove()
    counts = Counter(s["reason"] for s in sides.skipped)
    return PrepareReport(len(sides.a), sides.total, dict(counts.most_common()), manifest.shape, 0, out,
                         time.perf_counter() - start, pairing=manifest.pairing, kept_b=len(sides.b),
                         shape_b=manifest.shape_b, val_count=sides.val_a, val_count_b=sides.val_b)


def _sources(pairing: PairOptions, source: str | os.PathLike[str] | None, a: str | os.PathLike[str] | None,
             b: str | os.PathLike[str] | None) -> list[Path]:
    if pairing.takes_two_folders:
        mode = "--unpaired" if pairing.unpaired else "--pairs by-name"
        if source is not None or a is None or b is None:
            raise ConfigError(f"{mode} reads two folders: pass --a DIR and --b DIR, and no SOURCE")
        return [Path(a), Path(b)]
    mode = "--pairs side-by-side" if pairing.pairs != "none" else f"--make-pairs {pairing.make_pairs}"
    if source is None or a is not None or b is not None:
        raise ConfigError(f"{mode} reads one SOURCE folder; pass it without --a and --b (those are for --pairs "
                          "by-name and --unpaired)")
    return [Path(source)]


def _hold_out(entries: list[Entry], fraction: float) -> tuple[list[Entry], set[str]]:
    """The entries with the held-out ones moved last, and their names. At least one of each when possible."""
    count = round(len(entries) * fraction)
    if fraction > 0 and len(entries) >= 2:
        count = min(max(count, 1), len(entries) - 1)
    chosen = set(np.random.default_rng(_HOLD_OUT_SEED).choice(len(entries), count, replace=False).tolist())
    kept = [e for i, e in enumerate(entries) if i not in chosen]
    held = [e for i, e in enumerate(entries) if i in chosen]
    return kept + held, {e.name for e in held}


def _val_rows(kept: int, kept_held: int, fraction: float) -> int:
    """How many of the last rows are held out: the chosen ones that decoded, topped up from the rows before them
    when some of those were bad files, so the split stays near `fraction` (and leaves a row to train on)."""
    wanted = max(kept_held, round(kept * fraction), 1 if fraction > 0 else 0)
    return max(0, min(wanted, kept - 1))


def _first_size(entries: list[Entry], min_size: int) -> tuple[int, int, str] | None:
    """(height, width, name) of the first readable image: what an unset --resolution means."""
    for entry in entries[:1000]:
        try:
            with entry.open() as fp:
                image = open_image(fp, min_size)
            return image.height, image.width, entry.name
        except SkipInput:
            continue
    return None


def _side_by_side(listing: FileSource, options: PrepareOptions, pairing: PairOptions, spill_a: Spill,
                  spill_b: Spill, progress: bool) -> _Sides:
    channels = options.channels or guess_channels(listing, progress)
    size = options.resolution
    if size is None:
        first = _first_size(listing.entries, options.min_size)
        size = (first[0], max(1, first[1] // 2)) if first else (1, 1)
        if first:  # each half is an image of the store: the reader's and training's limits apply to it
            check_first_size(size[1], size[0], f"{first[2]} (each half of its A|B)")
        note(progress, f"resolution {size[1]}x{size[0]} (width x height) per side, from the first image's halves")
    target = target_of(options, size, channels)

    def halves(entry: Entry, _: Entry | None) -> tuple[np.ndarray, np.ndarray]:
        with entry.open() as fp:
            image = open_image(fp, options.min_size)
        half = image.width // 2
        if half < 1:
            raise SkipInput("too narrow for A|B")
        left, right = image.crop((0, 0, half, image.height)), image.crop((half, 0, 2 * half, image.height))
        return to_array(left, target), to_array(right, target)

    jobs, held = _hold_out(listing.entries, pairing.val_fraction)
    return _fill_pairs([(e, None) for e in jobs], held, pairing.val_fraction, halves, (target, target), spill_a,
                       spill_b, list(listing.skipped), len(listing.seen), progress)


def _by_name(listings: list[FileSource], labels: list[str], options: PrepareOptions, pairing: PairOptions,
             spill_a: Spill, spill_b: Spill, progress: bool) -> _Sides:
    skipped = [{**s, "path": f"{label}/{s['path']}"} for listing, label in zip(listings, labels, strict=True)
               for s in listing.skipped]
    keyed = []
    for listing, label in zip(listings, labels, strict=True):
        stems = Counter(_stem(e.name) for e in listing.entries)
        keyed.append({_stem(e.name): e for e in listing.entries if stems[_stem(e.name)] == 1})
        skipped += [{"path": f"{label}/{e.name}", "reason": "two files share its name"} for e in listing.entries
                    if stems[_stem(e.name)] > 1]
    for side, (mine, other) in enumerate(((keyed[0], keyed[1]), (keyed[1], keyed[0]))):
        skipped += [{"path": f"{labels[side]}/{entry.name}", "reason": f"no matching file in {labels[1 - side]}"}
                    for stem, entry in sorted(mine.items()) if stem not in other]
    pairs = {keyed[0][stem].name: (keyed[0][stem], keyed[1][stem]) for stem in sorted(keyed[0]) if stem in keyed[1]}
    targets = []
    for side, listing in enumerate(listings):
        size = options.resolution
        first = None if size else _first_size([pair[side] for pair in pairs.values()], options.min_size)
        if first:
            check_first_size(first[1], first[0], f"{labels[side]}/{first[2]}")
            size = first[:2]
        channels = options.channels or guess_channels(listing, progress)
        targets.append(target_of(options, size or (1, 1), channels))
    target_a, target_b = targets

    def both(entry: Entry, partner: Entry | None) -> tuple[np.ndarray, np.ndarray]:
        assert partner is not None
        return _decode(entry, target_a, options.min_size), _decode(partner, target_b, options.min_size, True)

    order, held = _hold_out([pair[0] for pair in pairs.values()], pairing.val_fraction)
    unmatched = sum(len(listing.entries) for listing in listings) - 2 * len(pairs)
    total = len(pairs) + unmatched + sum(len(listing.skipped) for listing in listings)
    return _fill_pairs([pairs[e.name] for e in order], held, pairing.val_fraction, both, (target_a, target_b),
                       spill_a, spill_b, skipped, total, progress, (labels[0], labels[1]))


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _decode(entry: Entry, target: Target, min_size: int, b_side: bool = False) -> np.ndarray:
    """One side of a pair; a failure of the B side is a `_BSideSkipped`, so the report names that file first."""
    try:
        with entry.open() as fp:
            return decode(fp, target, min_size)
    except SkipInput as skip:
        if not b_side:
            raise
        raise _BSideSkipped(skip.reason) from skip


class _BSideSkipped(SkipInput):
    """The B side of a pair is the bad one."""


PairDecoder = Callable[[Entry, "Entry | None"], tuple[np.ndarray, np.ndarray]]


def _fill_pairs(jobs: list[tuple[Entry, Entry | None]], held: set[str], fraction: float, decode_pair: PairDecoder,
                targets: tuple[Target, Target], spill_a: Spill, spill_b: Spill, skipped: list[dict[str, str]],
                total: int, progress: bool, labels: tuple[str, str] | None = None) -> _Sides:
    """Decode every pair into the two buffers; a pair with a bad side is skipped whole, reported once under the
    bad file's name with its partner's beside it (`labels`: the two folders, for pairs from two of them)."""
    a = spill_a.allocate((len(jobs), targets[0].channels, targets[0].height, targets[0].width))
    b = spill_b.allocate((len(jobs), targets[1].channels, targets[1].height, targets[1].width))
    kept = kept_held = 0
    for entry, partner in progress_of(jobs, desc="decoding pairs", enabled=progress):
        try:
            a[kept], b[kept] = decode_pair(entry, partner)
        except SkipInput as skip:
            if partner is None:  # one file holds both sides
                skipped.append({"path": entry.name, "reason": skip.reason})
                continue
            names = [entry.name, partner.name] if labels is None else [f"{labels[0]}/{entry.name}",
                                                                        f"{labels[1]}/{partner.name}"]
            bad, other = names[::-1] if isinstance(skip, _BSideSkipped) else names
            skipped.append({"path": f"{bad} (and its pair {other})", "reason": skip.reason})
            continue
        kept += 1
        kept_held += entry.name in held
    held_rows = _val_rows(kept, kept_held, fraction)
    return _Sides(a[:kept], b[:kept], held_rows, held_rows, skipped, total)


def _unpaired(listings: list[FileSource], labels: list[str], options: PrepareOptions, pairing: PairOptions,
              spill_a: Spill, spill_b: Spill, progress: bool) -> _Sides:
    decoded: list[Decoded] = []
    held_counts = []
    for listing, label, spill in zip(listings, labels, (spill_a, spill_b), strict=True):
        if decoded and options.resolution is None and len(decoded[0].images):
            options = replace(options, resolution=tuple(decoded[0].images.shape[2:]))  # B at A's size
        side, held = _decode_held_out(listing, options, pairing.val_fraction, spill, progress)
        side.skipped = [{**s, "path": f"{label}/{s['path']}"} for s in side.skipped]
        decoded.append(side)
        held_counts.append(held)
    return _Sides(decoded[0].images, decoded[1].images, held_counts[0], held_counts[1],
                  decoded[0].skipped + decoded[1].skipped, decoded[0].total + decoded[1].total)


def _decode_held_out(listing: FileSource, options: PrepareOptions, fraction: float, spill: Spill,
                     progress: bool) -> tuple[Decoded, int]:
    """The listing decoded with its held-out entries last, and how many of those were kept."""
    entries, held = _hold_out(listing.entries, fraction)
    decoded = decode_files(FileSource(entries, list(listing.skipped), list(listing.seen)), options, spill, progress)
    kept_held = len(held) - sum(s["path"] in held for s in decoded.skipped)
    return decoded, _val_rows(len(decoded.images), kept_held, fraction)


def _derived(listing: FileSource, options: PrepareOptions, pairing: PairOptions, spill_a: Spill, spill_b: Spill,
             progress: bool) -> _Sides:
    targets, held = _decode_held_out(listing, options, pairing.val_fraction, spill_b, progress)
    count = len(targets.images)
    shape = derived_shape(pairing.make_pairs, tuple(targets.images.shape[1:])) if count else (1, 1, 1)
    inputs = spill_a.allocate((count, *shape))
    for row in progress_of(range(count), desc=f"deriving {pairing.make_pairs} inputs", enabled=progress):
        inputs[row] = derive_input(pairing.make_pairs, np.asarray(targets.images[row]))
    return _Sides(inputs, targets.images, held, held, targets.skipped, targets.total)


def _manifest(labels: list[str], seen: list[list[tuple[str, int]]], sides: _Sides, options: PrepareOptions,
              pairing: PairOptions) -> Manifest:
    recorded = {**options.to_dict(), **pairing.to_dict()}
    listing = [[label, sorted(names)] for label, names in zip(labels, seen, strict=True)]
    digest = hashlib.sha256(json.dumps([listing, recorded], ensure_ascii=False).encode())
    n, c, h, w = sides.a.shape
    n_b, c_b, h_b, w_b = sides.b.shape
    source = labels[0] if len(labels) == 1 else f"A: {labels[0]}; B: {labels[1]}"
    return Manifest(count=n, channels=c, height=h, width=w, label_names=[],
                    fingerprint=content_fingerprint(sides.a, np.zeros(n, np.int64), sides.b), source=source,
                    source_fingerprint=digest.hexdigest(), skipped=sides.skipped, options=recorded,
                    pairing=pairing.pairing, count_b=n_b, channels_b=c_b, height_b=h_b, width_b=w_b,
                    val_count=sides.val_a, val_count_b=sides.val_b)


def _nothing_usable(labels: list[str], sides: _Sides, pairing: PairOptions) -> str:
    if pairing.unpaired:  # each side is read on its own: name the one that came out empty
        flag, label = ("--a", labels[0]) if len(sides.a) == 0 else ("--b", labels[1])
        skipped = [s for s in sides.skipped if s["path"].startswith(f"{label}/")]
        what = f"no usable images (skipped: {_reasons(skipped)})" if skipped else "no images"
        return (f"{flag} {label} holds {what}; pass a folder (or archive) of jpg, png, webp, bmp, "
                "tif or gif images.")
    where = " and ".join(labels)
    if sides.total == 0:
        return f"{where}: no images; pass folders (or archives) of jpg, png, webp, bmp, tif or gif images."
    names = ", and check that paired file names match" if pairing.pairs == "by-name" else ""
    return (f"{where}: nothing usable among {sides.total} inputs (skipped: {_reasons(sides.skipped) or 'none'}); "
            f"fix or replace them{names}.")


def _reasons(skipped: list[dict[str, str]]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in Counter(s["reason"] for s in skipped).most_common())
