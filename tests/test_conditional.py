"""Class-conditional training makes the class it is asked for (checked by a classifier trained on MNIST)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.data.store import Store, to_float
from ganforge.generate import seed_latents
from ganforge.runs import load_generator

from data_slices import mnist_store


def digit_classifier(store: Store) -> torch.nn.Module:
    """Softmax regression on pixels: about 90 % on MNIST, enough to tell which digit an image shows."""
    torch.manual_seed(0)
    images, labels = to_float(torch.from_numpy(store.images)).flatten(1), torch.from_numpy(store.labels)
    model = torch.nn.Linear(images.shape[1], 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return model


@pytest.mark.slow
def test_conditional_generator_draws_the_requested_digit(tmp_path):
    store_path = mnist_store(tmp_path / "digits.gfs", 4000)
    result = CliRunner().invoke(main, ["train", "--data", str(store_path), "--cond", "--model", "mlp", "--kimg", "24",
                                       "--tick-kimg", "12", "--g-width", "32", "--d-width", "32", "--out",
                                       str(tmp_path / "runs"), "--no-progress"])
    assert result.exit_code == 0, result.output
    generator, config, _ = load_generator(next((tmp_path / "runs").iterdir()))
    requested = torch.arange(200) % 10
    classifier = digit_classifier(Store(store_path))
    with torch.no_grad():
        images = generator(seed_latents(list(range(200)), config.model.z_dim), requested)
        predicted = classifier(images.flatten(1)).argmax(1)
    accuracy = (predicted == requested).float().mean().item()
    assert accuracy > 0.6, f"only {accuracy:.0%} of generated digits are the requested class (chance: 10%)"


def test_generate_class_and_per_class_grid(tmp_path):
    store_path = mnist_store(tmp_path / "digits.gfs", 256)
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--model", "dcgan",
                                  "--data", str(store_path), "--cond", "--kimg", "0.2", "--tick-kimg", "0.1",
                                  "--g-width", "8", "--d-width", "8", "--out", str(tmp_path / "runs"), "--no-progress"])
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    result = runner.invoke(main, ["generate", str(run_dir), "--seeds", "0-3", "--class", "7",
                                  "--out", str(tmp_path / "sevens.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "sevens.png").text["class"] == "7"
    result = runner.invoke(main, ["generate", str(run_dir), "--seeds", "0-2", "--out", str(tmp_path / "all.png")])
    assert result.exit_code == 0 and Image.open(tmp_path / "all.png").size == (10 * 30 + 2, 3 * 30 + 2)
    result = runner.invoke(main, ["generate", str(run_dir), "--class", "cat", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "choose one of: 0, 1, 2" in result.output
