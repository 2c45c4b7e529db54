import pytest
import torch

from ganforge.errors import CheckpointError, TrainingDiverged
from ganforge.runs.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    load_optimizer,
    optimizer_tensors,
    prune_checkpoints,
    save_checkpoint,
)


def test_checkpoint_round_trips_tensors_and_json(tmp_path):
    path = checkpoint_path(tmp_path, 1234)
    save_checkpoint(path, {"G.w": torch.arange(6.0).view(2, 3), "rng": torch.tensor([1, 2], dtype=torch.uint8)},
                    {"counters": {"cur_nimg": 1234}, "note": "ünïcode"})
    tensors, meta = load_checkpoint(path)
    assert torch.equal(tensors["G.w"], torch.arange(6.0).view(2, 3))
    assert meta == {"counters": {"cur_nimg": 1234}, "note": "ünïcode"}
    assert path.read_bytes()[:1] != b"\x80"  # a safetensors header, not a pickle stream


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_tensors_are_never_written(tmp_path, bad):
    path = checkpoint_path(tmp_path, 10)
    with pytest.raises(TrainingDiverged, match="G.w"):
        save_checkpoint(path, {"G.w": torch.tensor([1.0, bad])}, {})
    assert not path.exists() and not list((tmp_path / "checkpoints").glob("*"))


def test_leftover_temp_files_and_old_checkpoints_are_ignored_or_pruned(tmp_path):
    for nimg in (100, 200, 300):
        save_checkpoint(checkpoint_path(tmp_path, nimg), {"x": torch.zeros(1)}, {})
    (tmp_path / "checkpoints" / ".ckpt-0000000400.safetensors.tmp-99").write_bytes(b"half written")
    assert latest_checkpoint(tmp_path).name == "ckpt-0000000300.safetensors"
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in sorted((tmp_path / "checkpoints").glob("ckpt-*"))] == [
        "ckpt-0000000200.safetensors", "ckpt-0000000300.safetensors"]


def test_damaged_checkpoint_gives_a_clear_error(tmp_path):
    path = checkpoint_path(tmp_path, 5)
    path.parent.mkdir()
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="is damaged .*; move it out of .* to use the one before"):
        load_checkpoint(path)


def test_adam_state_survives_the_round_trip_exactly():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.99))
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
    tensors, meta = optimizer_tensors("opt", opt)
    fresh = torch.optim.Adam(torch.nn.Linear(4, 3).parameters(), lr=1e-3)
    load_optimizer("opt", fresh, tensors, meta)
    assert fresh.param_groups[0]["betas"] == (0.5, 0.99)
    for key, value in opt.state_dict()["state"][0].items():
        assert torch.equal(fresh.state_dict()["state"][0][key], value)
