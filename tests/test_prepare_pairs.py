"""`prepare` for image-to-image translation: paired and unpaired stores, bad files on either side, derived pairs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.data.pairing import PairOptions
from ganforge.data.prepare import PrepareOptions
from ganforge.data.prepare_pairs import prepare_pairs
from ganforge.data.store import Store
from ganforge.errors import ConfigError, DataError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _solid(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (16, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _prepare(tmp_path: Path, pairing: PairOptions, **sources: Path) -> Store:
    prepare_pairs(tmp_path / "out.gfs", PrepareOptions(), pairing, progress=False, **sources)
    return Store(tmp_path / "out.gfs")


def test_side_by_side_pairs_round_trip_with_a_held_out_split(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for i in range(10):
        image = Image.new("RGB", (32, 16), BLUE)
        image.paste((i * 20, 0, 0), (0, 0, 16, 16))  # A: red level i; B: blue
        image.save(tmp_path / f"src/{i:02d}.png")
    store = _prepare(tmp_path, PairOptions(pairs="side-by-side", val_fraction=0.2), source=tmp_path / "src")
    assert store.manifest.pairing == "paired" and store.manifest.val_count == 2
    assert store.targets is not None and store.images.shape == store.targets.shape == (10, 3, 16, 16)
    assert sorted(store.images[:, 0, 0, 0].tolist()) == [i * 20 for i in range(10)]  # every A, once
    assert (store.targets[:, 2] == 255).all() and (store.targets[:, 0] == 0).all()  # every B is the right half
    assert store.verify_content()


def test_a_pair_with_one_bad_side_is_skipped_whole_and_named(tmp_path: Path) -> None:
    for i in range(4):
        _solid(tmp_path / f"a/{i}.png", RED)
        _solid(tmp_path / f"b/{i}.jpg", GREEN)
    (tmp_path / "a/1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # bad A side
    (tmp_path / "b/2.jpg").write_bytes(b"text renamed .jpg")  # bad B side
    _solid(tmp_path / "a/lonely.png", RED)  # no partner in b/
    store = _prepare(tmp_path, PairOptions(pairs="by-name"), a=tmp_path / "a", b=tmp_path / "b")
    assert len(store) == 2 and store.targets is not None and len(store.targets) == 2
    assert (store.images[:, 0] == 255).all() and (store.targets[:, 1] > 200).all()  # sides stay aligned
    skipped = {s["path"]: s["reason"] for s in store.manifest.skipped or []}
    a, b = tmp_path / "a", tmp_path / "b"
    assert skipped[f"{a}/1.png (and its pair {b}/1.jpg)"] == "corrupt or truncated"
    assert skipped[f"{b}/2.jpg (and its pair {a}/2.png)"] == "not an image"
    assert skipped[f"{a}/lonely.png"] == f"no matching file in {b}"


def test_unpaired_domains_keep_their_own_counts_and_skip_bad_files_on_either_side(tmp_path: Path) -> None:
    for i in range(5):
        _solid(tmp_path / f"horses/{i}.png", RED, (24, 24))
    for i in range(3):
        _solid(tmp_path / f"zebras/{i}.png", BLUE, (40, 40))
    (tmp_path / "horses/bad.png").write_bytes(b"junk")
    (tmp_path / "zebras/bad.jpg").write_bytes(b"\xff\xd8\xff truncated")
    store = _prepare(tmp_path, PairOptions(unpaired=True, val_fraction=0.2), a=tmp_path / "horses",
                     b=tmp_path / "zebras")
    m = store.manifest
    assert (m.pairing, m.count, m.count_b) == ("unpaired", 5, 3)
    assert m.shape_b == m.shape == (3, 24, 24)  # B is decoded at A's size, so one G maps between them
    assert (m.val_count, m.val_count_b) == (1, 1)
    assert {s["path"].split("/")[-1] for s in m.skipped or []} == {"bad.png", "bad.jpg"}


@pytest.mark.parametrize("kind, input_shape", [("downscale4x", (3, 8, 8)), ("grey", (1, 32, 32)),
                                               ("edges", (1, 32, 32))])
def test_make_pairs_derives_inputs_from_one_folder(tmp_path: Path, kind: str, input_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"photos/{i}.png")
    store = _prepare(tmp_path, PairOptions(make_pairs=kind), source=tmp_path / "photos")
    assert store.images.shape[1:] == input_shape and store.targets is not None
    assert store.targets.shape == (3, 3, 32, 32)
    if kind == "edges":
        assert set(np.unique(store.images).tolist()) == {0, 255}  # lines on white
    if kind == "downscale4x":  # a flat photo stays flat at a quarter of the size
        _solid(tmp_path / "flat/in/0.png", GREEN, (32, 32))
        flat = _prepare(tmp_path / "flat", PairOptions(make_pairs=kind), source=tmp_path / "flat/in")
        assert (flat.images[0, 1] == 255).all() and flat.images.shape == (1, 3, 8, 8)


def test_the_b_side_is_part_of_the_content_fingerprint(tmp_path: Path) -> None:
    for i in range(3):
        _solid(tmp_path / f"src/{i}.png", RED, (32, 16))
    store = _prepare(tmp_path, PairOptions(pairs="side-by-side"), source=tmp_path / "src")
    raw = bytearray((tmp_path / "out.gfs").read_bytes())
    raw[-1] ^= 1  # the last byte of the file is a B-side pixel
    (tmp_path / "edited.gfs").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="changed after it was prepared"):
        Store(tmp_path / "edited.gfs").verify_content()
    assert store.verify_content()


def test_an_edited_b_side_header_is_refused_on_open(tmp_path: Path) -> None:
    for i in range(3):
        _solid(tmp_path / f"src/{i}.png", RED, (32, 16))
    _prepare(tmp_path, PairOptions(pairs="side-by-side"), source=tmp_path / "src")
    raw = (tmp_path / "out.gfs").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    for edit, message in ((lambda h: h["targets"].__setitem__("data_offsets", [0, 3 * 768]), "overlap"),
                          (lambda h: h.__setitem__("__metadata__", {"manifest": json.dumps(
                              {**json.loads(h["__metadata__"]["manifest"]), "val_count": 3, "val_count_b": 3})}),
                           "leaves no training rows")):
        edited = json.loads(json.dumps(header))
        edit(edited)
        text = json.dumps(edited).encode()
        text += b" " * (-len(text) % 8)
        (tmp_path / "bad.gfs").write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])
        with pytest.raises(DataError, match=message):
            Store(tmp_path / "bad.gfs")


def test_cli_refuses_mixed_modes_and_missing_folders_in_one_line(tmp_path: Path) -> None:
    _solid(tmp_path / "src/0.png", RED)
    runner = CliRunner()
    cases = [(["prepare", str(tmp_path / "src"), "--out", "x.gfs", "--pairs", "by-name"], "pass --a DIR and --b DIR"),
             (["prepare", "--out", "x.gfs", "--unpaired", "--make-pairs", "grey"], "give one of them"),
             (["prepare", str(tmp_path / "src"), "--out", "x.gfs", "--val-fraction", "0.1"], "--val-fraction"),
             (["prepare", str(tmp_path / "src"), "--out", "x.gfs", "--val-fraction", "0.9", "--make-pairs", "grey"],
              "--val-fraction 0.9 is beyond any real run")]
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code != 0 and message in result.output and len(result.output.splitlines()) == 1, \
            result.output
    with pytest.raises(ConfigError, match="give one of them"):
        PairOptions(pairs="side-by-side", unpaired=True)


def test_cli_writes_a_paired_store_from_two_folders(tmp_path: Path) -> None:
    for i in range(3):
        _solid(tmp_path / f"sketches/{i}.png", RED)
        _solid(tmp_path / f"photos/{i}.png", BLUE)
    result = CliRunner().invoke(main, ["prepare", "--a", str(tmp_path / "sketches"), "--b", str(tmp_path / "photos"),
                                       "--out", str(tmp_path / "s2p.gfs"), "--pairs", "by-name"])
    assert result.exit_code == 0, result.output
    assert "kept 3 pairs" in result.output and Store(tmp_path / "s2p.gfs").manifest.pairing == "paired"
