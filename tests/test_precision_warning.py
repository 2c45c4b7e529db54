"""--precision bf16 where the device would emulate it: the run says so before it starts, once."""

import pytest
from click.testing import CliRunner

from ganforge import device
from ganforge.cli import main


@pytest.mark.parametrize("precision, native_bf16, warned", [
    ("bf16", False, True),   # an AVX2 CPU: bf16 emulated, many times slower than fp32
    ("bf16", True, False),   # AVX512-BF16 / AMX: bf16 is the fast choice
    ("fp32", False, False),
])
def test_bf16_on_a_device_without_it_is_warned_once_before_the_run(tmp_path, monkeypatch, precision, native_bf16,
                                                                    warned):
    monkeypatch.setattr(device, "has_fast_bf16", lambda _: native_bf16)
    result = CliRunner().invoke(main, ["train", "--dry-run", "--model", "mlp", "--device", "cpu", "--precision",
                                       precision, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert result.output.count("PyTorch emulates it") == int(warned)
    if warned:
        assert "Drop --precision bf16" in result.output


class _Timed:
    def report(self) -> str:
        return "img/s"


def test_bench_with_bf16_where_it_is_emulated_says_so_above_its_numbers(monkeypatch):
    import ganforge.bench

    monkeypatch.setattr(device, "has_fast_bf16", lambda _: False)
    monkeypatch.setattr(ganforge.bench, "run_bench", lambda *args, **kwargs: _Timed())  # its timing is not tested
    result = CliRunner().invoke(main, ["bench", "--precision", "bf16", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "PyTorch emulates it" in lines[1] and lines[-1] == "img/s"
