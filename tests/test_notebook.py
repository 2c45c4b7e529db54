"""examples/quickstart.ipynb, executed as a user would run it (a Jupyter kernel, every cell in order) at a short
length, so that it cannot rot: prepare -> train -> sample -> evaluate -> curves, with no error and its outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[dev]')")
nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[dev]')")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[dev]')")


@pytest.mark.slow
def test_the_quickstart_notebook_runs_from_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANFORGE_NOTEBOOK_KIMG", "0.5")
    monkeypatch.setenv("GANFORGE_NOTEBOOK_N", "200")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "2000 PNG files" in text and "fid" in text and "kid" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # the sample grid, loss.png, metrics.png and the run's own grid
    assert (tmp_path / "quickstart" / "digits.gfs").is_file() and os.listdir(tmp_path / "quickstart" / "runs")
