import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from ganforge.data.device_batches import DeviceBatches
from ganforge.data.sampler import EpochSampler
from ganforge.data.store import Store, content_fingerprint, to_uint8
from ganforge.errors import DataError

from data_slices import make_store


def random_store(path, n=10, shape=(3, 5, 7)):
    images = np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)
    labels = np.arange(n) % 3
    make_store(path, images, labels, ["a", "b", "c"])
    return images, labels


def test_store_is_a_plain_safetensors_file(tmp_path):
    images, labels = random_store(tmp_path / "s.gfs")
    loaded = load_file(tmp_path / "s.gfs")
    assert np.array_equal(loaded["images"], images) and np.array_equal(loaded["labels"], labels)


@pytest.mark.parametrize("in_memory", [True, False])
def test_batches_are_float_in_minus_one_one_on_the_device_and_round_trip(tmp_path, in_memory):
    images, _ = random_store(tmp_path / "s.gfs")
    store = Store(tmp_path / "s.gfs", in_memory=in_memory)
    batch = DeviceBatches(store, torch.device("cpu")).images(torch.tensor([4, 1, 9]))
    assert batch.dtype == torch.float32 and batch.min() >= -1 and batch.max() <= 1
    assert np.array_equal(to_uint8(batch).numpy(), images[[4, 1, 9]])


def test_fingerprint_changes_with_a_single_pixel():
    images = np.zeros((2, 1, 4, 4), np.uint8)
    labels = np.zeros(2, np.int64)
    before = content_fingerprint(images, labels)
    images[1, 0, 3, 3] = 1
    assert content_fingerprint(images, labels) != before


def test_truncated_or_foreign_files_are_clear_errors(tmp_path):
    random_store(tmp_path / "s.gfs")
    data = (tmp_path / "s.gfs").read_bytes()
    (tmp_path / "cut.gfs").write_bytes(data[: len(data) - 20])
    with pytest.raises(DataError, match="cut.gfs is not a readable ganforge store"):
        Store(tmp_path / "cut.gfs")
    (tmp_path / "photo.gfs").write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
    with pytest.raises(DataError, match="prepare it again"):
        Store(tmp_path / "photo.gfs")
    with pytest.raises(DataError, match="is a folder"):
        Store(tmp_path)


def test_sampler_visits_every_image_once_per_epoch_and_resumes_from_two_integers():
    sampler = EpochSampler(10, seed=3)
    first_epoch = torch.cat([sampler.next_indices(4) for _ in range(2)] + [sampler.next_indices(2)])
    assert sorted(first_epoch.tolist()) == list(range(10))
    crossing = sampler.next_indices(7)
    resumed = EpochSampler(10, seed=3)
    resumed.load_state_dict(sampler.state_dict())
    assert torch.equal(resumed.next_indices(5), sampler.next_indices(5))
    assert len(crossing) == 7
