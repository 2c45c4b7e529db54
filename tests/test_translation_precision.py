"""--precision for the image-to-image models: each trains under bf16 autocast without NaN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ganforge.cli import main

from data_slices import digit_pairs_store, digits_fashion_store, digits_sr_store
from run_helpers import only_run

TINY = ["--g-width", "4", "--d-width", "4", "--batch", "4", "--tick-kimg", "0.016", "--seed", "2", "--no-progress"]


@pytest.mark.parametrize("model, store_of, flags", [
    ("pix2pix", digit_pairs_store, []),
    ("cyclegan", digits_fashion_store, ["--pool-size", "4"]),
    ("srgan", digits_sr_store, ["--content-loss", "mse", "--pretrain", "0.25"]),
])
def test_each_image_to_image_model_trains_in_bf16_without_nan(tmp_path: Path, model: str, store_of, flags) -> None:
    store = store_of(tmp_path)
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(tmp_path / "runs"), "--model", model,
                                       "--precision", "bf16", *TINY, "--kimg", "0.032", *flags])
    assert result.exit_code == 0, result.output
    last = json.loads((only_run(tmp_path / "runs") / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite([last["loss_d"], last["loss_g"], last["loss_recon"]]).all()
