"""Flags that write (`--json`, `--out`) on hostile targets: a run's config.json, a detector's checkpoint, the
inputs' own folder, a user's image. Each is refused in one line before anything is loaded, and every file stays
as it was; an earlier output of the same command may still be replaced. And two inputs never become one output."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import invoke, one_error
from ganforge.errors import ConfigError
from ganforge.images import save_png
from ganforge.runs.checkpoint import latest_checkpoint
from ganforge.runs.output_guard import check_output_file, check_outside_ganforge_folders, ganforge_png


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _png(path: Path, value: int = 7, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8), "L").save(path)
    return path


def test_evaluate_json_onto_the_runs_config_is_refused_and_the_config_kept(noise: tuple[Path, Path, Path]) -> None:
    run = noise[1]
    before = _files(run)
    error = one_error(invoke("evaluate", run, "--metrics", "fid", "--extractor", "random-conv", "--n", "4",
                               "--json", run / "config.json"))
    assert "--json" in error and "inside the run folder" in error, error
    assert _files(run) == before


def test_detect_score_json_onto_the_detectors_checkpoint_is_refused(detector: Path, tmp_path: Path) -> None:
    checkpoint = latest_checkpoint(detector)
    assert checkpoint is not None
    before = _files(detector)
    error = one_error(invoke("detect", "score", detector, _png(tmp_path / "x.png"), "--json", checkpoint))
    assert "--json" in error and "inside the detector folder" in error, error
    assert _files(detector) == before


def test_translate_into_the_folder_that_holds_the_inputs_is_refused(translator: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "D" / "in"
    _png(inputs / "x.png")
    before = _files(tmp_path / "D")
    error = one_error(invoke("translate", translator, inputs, "--out", tmp_path / "D"))
    assert "holds the input" in error, error
    error = one_error(invoke("translate", translator, inputs, "--out", inputs / "sub"))
    assert "is inside" in error, error
    assert _files(tmp_path / "D") == before


def test_detect_attack_figures_are_never_written_among_the_real_images(detector: Path, noise: tuple[Path, Path, Path],
                                                                       tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    _png(images / "a.png")
    before = _files(images)
    error = one_error(invoke("detect", "attack", detector, "--real", images, "--fake", noise[1], "--out", images))
    assert "--out" in error and "is inside the inputs folder" in error, error
    assert _files(images) == before


def test_generate_refuses_a_users_image_and_a_run_or_export_folder_but_replaces_its_own_grid(
        noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, run, export = noise
    mine = _png(tmp_path / "holiday.png")
    before = mine.read_bytes()
    error = one_error(invoke("generate", run, "--n", "2", "--out", mine))
    assert "ganforge did not write it" in error, error
    assert mine.read_bytes() == before
    for inside in (run / "more", export / "grid.png"):
        error = one_error(invoke("generate", run, "--n", "2", "--out", inside))
        assert "inside the" in error, error
        assert not inside.exists()
    for _ in range(2):  # the second run replaces the grid the first wrote
        result = invoke("generate", run, "--n", "2", "--out", tmp_path / "grid.png")
        assert result.exit_code == 0, result.output


def test_explore_tools_refuse_a_users_file(noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run = noise[1]
    walk = tmp_path / "walk.gif"
    walk.write_bytes(b"GIF89a not really")
    error = one_error(invoke("interpolate", run, "--seeds", "0,1", "--frames", "2", "--out", walk))
    assert "ganforge did not write it" in error, error
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "latent.npy").write_bytes(b"someone's array")
    error = one_error(invoke("project", run, _png(tmp_path / "t.png"), "--steps", "1", "--starts", "1", "--out",
                               tmp_path / "proj"))
    assert "latent.npy exists" in error, error


def test_the_guard_tells_its_own_pngs_from_a_users_and_refuses_special_files(tmp_path: Path) -> None:
    ours = tmp_path / "ours.png"
    save_png(Image.new("L", (4, 4)), ours)
    assert ganforge_png(ours) and not ganforge_png(_png(tmp_path / "theirs.png"))
    check_output_file(ours, "--out", ganforge_png)
    with pytest.raises(ConfigError, match="is a folder"):
        check_output_file(tmp_path, "--out", ganforge_png)
    (tmp_path / "link.png").symlink_to("/dev/null")
    with pytest.raises(ConfigError, match="not a regular file"):
        check_output_file(tmp_path / "link.png", "--out", ganforge_png)


def test_an_archive_with_two_members_of_one_name_translates_both_under_distinct_names(translator: Path,
                                                                                      tmp_path: Path) -> None:
    archive = tmp_path / "in.zip"
    buffers = []
    for value in (10, 200, 90):
        path = _png(tmp_path / f"src-{value}.png", value)
        buffers.append(path.read_bytes())
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("a.png", buffers[0])
        zf.writestr("a.png", buffers[1])
        zf.writestr("b.png", buffers[2])
    out = tmp_path / "out"
    result = invoke("translate", translator, archive, "--out", out)
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.rglob("*.png"))
    assert len(written) == 3 and "translated 3 of 3" in result.output, (written, result.output)


def test_a_file_beside_a_folder_of_the_same_name_both_translate(translator: Path, tmp_path: Path) -> None:
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x.png", _png(tmp_path / "1.png", 1).read_bytes())
        zf.writestr("x/y.png", _png(tmp_path / "2.png", 2).read_bytes())
        zf.writestr("x.jpg/z.png", _png(tmp_path / "3.png", 3).read_bytes())
    out = tmp_path / "out"
    result = invoke("translate", translator, archive, "--out", out)
    assert result.exit_code == 0 and "translated 3 of 3" in result.output, result.output
    assert len([p for p in out.rglob("*.png") if p.is_file()]) == 3


def test_an_output_under_a_file_or_in_a_folder_that_cannot_be_written_is_refused_before_any_work(
        noise: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, run, _ = noise
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    _png(tmp_path / "images" / "a.png")
    for command in (["evaluate", run, "--metrics", "kid", "--extractor", "random-conv", "--n", "4", "--json",
                     notes / "scores" / "kid.json"],
                    ["prepare", tmp_path / "images", "--out", notes / "data.gfs"],
                    ["train", "--data", store, "--out", notes / "runs", "--kimg", "0.064"],
                    ["generate", run, "--out", notes / "grid.png"]):
        error = one_error(invoke(*command))
        assert f"{notes} is a file, not a folder" in error, error
    assert notes.read_text() == "keep me" and not (run / "evaluation").exists()

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr("ganforge.runs.output_guard.os.access",
                        lambda path, mode: Path(path) != locked and real_access(path, mode))
    with pytest.raises(ConfigError, match=f"may not write in {locked}"):
        check_output_file(locked / "kid.json", "--json", ganforge_png)
    with pytest.raises(ConfigError, match=f"may not create folders in {locked}"):
        check_output_file(locked / "new" / "kid.json", "--json", ganforge_png)
    check_output_file(tmp_path / "new" / "deeper" / "kid.json", "--json", ganforge_png)  # made when written


def test_a_folder_output_is_judged_by_itself_and_dot_dot_as_the_system_resolves_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"  # a folder this user may not write, e.g. /home owned by root
    mine = locked / "mine"  # ... holding one they may: `train --out $HOME`
    mine.mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr("ganforge.runs.output_guard.os.access",
                        lambda path, mode: Path(path).resolve() != locked and real_access(path, mode))
    check_outside_ganforge_folders(mine, "--out")  # runs go inside it, so its parent does not matter
    with pytest.raises(ConfigError, match=f"may not write in {locked}"):
        check_outside_ganforge_folders(locked, "--out")  # an existing folder the user cannot write in
    with pytest.raises(ConfigError, match=f"may not write in {locked}"):
        check_outside_ganforge_folders(locked / "runs", "--out")

    link = tmp_path / "link"
    link.symlink_to(mine)  # link/.. is `locked`, not tmp_path, once the link is followed
    with pytest.raises(ConfigError, match="may not write in"):
        check_output_file(link / ".." / "kid.json", "--json", ganforge_png)
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    with pytest.raises(ConfigError, match=f"{notes} is a file, not a folder"):
        check_output_file(notes / ".." / "kid.json", "--json", ganforge_png)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone")
    with pytest.raises(ConfigError, match=f"{dangling} is a broken symlink"):
        check_output_file(dangling / "kid.json", "--json", ganforge_png)
    assert notes.read_text() == "keep me"


def test_evaluate_json_may_replace_an_earlier_report_but_not_notes(noise: tuple[Path, Path, Path],
                                                                  tmp_path: Path) -> None:
    from ganforge.evaluation.generator import check_outputs

    report = tmp_path / "scores.json"
    report.write_text(json.dumps([{"metric": "fid", "scores": {"fid": 1.0}}]))
    check_outputs(noise[1], ["fid"], report, None, [noise[1]])
    notes = tmp_path / "notes.json"
    notes.write_text('{"todo": "keep me"}')
    with pytest.raises(ConfigError, match="ganforge did not write it"):
        check_outputs(noise[1], ["fid"], notes, None, [noise[1]])


def test_prepare_and_detect_train_write_no_store_or_detector_into_a_run_or_export(noise: tuple[Path, Path, Path],
                                                                                  tmp_path: Path) -> None:
    store, run, export = noise
    _png(tmp_path / "images" / "a.png")
    before_run, before_export = _files(run), _files(export)
    error = one_error(invoke("prepare", tmp_path / "images", "--out", run / "data.gfs"))
    assert "inside the run folder" in error, error
    error = one_error(invoke("detect", "train", "--real", store, "--fake", run, "--out", export / "det",
                               "--steps", "1"))
    assert "inside the export folder" in error, error
    assert _files(run) == before_run and _files(export) == before_export


@pytest.mark.parametrize("command", ["generate", "interpolate"])
def test_a_write_cut_short_keeps_the_earlier_output_whole_and_says_why(
        noise: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    # A file-size limit (`ulimit -f`) or a full disk stops the write half-way: the earlier grid or animation stays
    # as it was, no half-written or temporary file is left, and the error says what happened in one line.
    import errno

    run = noise[1]
    out = tmp_path / ("grid.png" if command == "generate" else "walk.gif")
    flags = ["--n", "2"] if command == "generate" else ["--seeds", "0,1", "--frames", "4"]
    assert invoke(command, run, *flags, "--out", out).exit_code == 0
    before = out.read_bytes()
    save = Image.Image.save

    def cut_short(self: Image.Image, fp, *args, **kwargs) -> None:
        save(self, fp, *args, **kwargs)
        Path(fp).write_bytes(Path(fp).read_bytes()[:100])
        raise OSError(errno.EFBIG, "File too large", str(fp))

    monkeypatch.setattr(Image.Image, "save", cut_short)
    error = one_error(invoke(command, run, *flags, "--out", out))
    assert "File too large" in error and "size limit" in error, error
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_an_animation_too_large_for_memory_is_refused_before_it_is_drawn(noise: tuple[Path, Path, Path],
                                                                          tmp_path: Path) -> None:
    # 2,000 frames of 16 px enlarged 32 times are 1.5 GiB of RGB frames: refused, naming the flags to change.
    error = one_error(invoke("interpolate", noise[1], "--seeds", "0,1", "--frames", "2000", "--scale", "32",
                             "--out", tmp_path / "walk.gif"))
    assert "GiB of memory" in error and "--frames" in error and "--scale" in error, error
    assert not (tmp_path / "walk.gif").exists()
    assert invoke("interpolate", noise[1], "--seeds", "0,1", "--frames", "70", "--scale", "4", "--out",
                  tmp_path / "walk.gif").exit_code == 0  # drawn in chunks of 64 frames, the last one short
