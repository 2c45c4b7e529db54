"""The curve PNGs: a legend a person can read whatever the series are called."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from ganforge.plots import legend_positions, plot_curves


def test_long_legend_names_wrap_instead_of_overlapping() -> None:
    draw = ImageDraw.Draw(Image.new("RGB", (640, 360)))
    names = ["runs-dcgan-anime-long-name", "runs-fastgan-anime-long-name", "runs-projected-anime-long",
             "runs-stylegan2-anime-long", "short"]
    widths = [draw.textlength(n) for n in names]
    positions = legend_positions(widths, start=70, end=620)
    boxes = [(x, y, x + w) for (x, y), w in zip(positions, widths, strict=True)]
    for i, (x0, y0, x1) in enumerate(boxes):
        assert x1 <= 620, f"{names[i]} runs off the plot"
        for u0, v0, u1 in boxes[i + 1:]:
            assert y0 != v0 or x1 <= u0 or u1 <= x0, "two legend labels overlap"
    assert len({y for _, y in positions}) > 1, "five long names cannot fit on one row of 550 px"


def test_a_name_wider_than_the_plot_keeps_its_own_row(tmp_path: Path) -> None:
    assert legend_positions([900.0, 10.0], start=70, end=620) == [(70, 0.0), (70, 12.0)]
    plot_curves({"x" * 200: [(0.0, 0.0), (1.0, 1.0)], "b": [(0.0, 1.0), (1.0, 0.0)]}, tmp_path / "roc.png")
    assert Image.open(tmp_path / "roc.png").size == (640, 360)
