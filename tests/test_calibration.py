"""Calibration: measured ÷ modeled energy of reference kernels, on fake counters only."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry.cost import energy
from registry.cost.calibration import NO_COUNTER, calibrate
from registry.cost.energy import FakeMeter, NvmlMeter, RaplMeter
from registry.errors import RegistryError
from tests.conftest import make_repo

VECTOR, SIDE = 1 << 20, 256
DRAM_PJ_PER_B, MB_CACHE_PJ_PER_B = 1300 / 8, 100 / 8  # horowitz-45nm memory levels
ADD_PJ, MUL_PJ = 0.9, 3.7  # float32
# Modeled joules of one call of each kernel, counted by hand from the Horowitz table.
MODELED_J = {
    # 2^20 adds (or multiplies); two operands and the result, 12 MiB: DRAM
    "add": VECTOR * (ADD_PJ + 12 * DRAM_PJ_PER_B) * 1e-12,
    "mul": VECTOR * (MUL_PJ + 12 * DRAM_PJ_PER_B) * 1e-12,
    # 256^3 multiplies and adds; 768 KiB of operands and result: the 1 MB cache
    "matmul": (SIDE**3 * (ADD_PJ + MUL_PJ) + 3 * SIDE * SIDE * 4 * MB_CACHE_PJ_PER_B) * 1e-12,
    # addmm (+ 256^2 bias adds, + the 1 KiB bias), then tanh: 4 adds, 4 multiplies an element
    "mlp": ((SIDE**3 + SIDE**2) * ADD_PJ + SIDE**3 * MUL_PJ
            + (3 * SIDE * SIDE * 4 + SIDE * 4) * MB_CACHE_PJ_PER_B
            + SIDE**2 * 4 * (ADD_PJ + MUL_PJ) + 2 * SIDE * SIDE * 4 * MB_CACHE_PJ_PER_B) * 1e-12,
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REGISTRY_ENERGY_METER", "REGISTRY_WATTS_PER_CORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(NvmlMeter, "available", lambda self: False)


@pytest.fixture
def no_counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(energy, "RaplMeter", lambda: RaplMeter(root=tmp_path / "no-powercap"))


@pytest.fixture
def rapl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    """A fake powercap tree with one package whose counter advances 1 J at every read."""
    root = tmp_path / "powercap" / "intel-rapl:0"
    root.mkdir(parents=True)
    (root / "name").write_text("package-0\n")
    (root / "max_energy_range_uj").write_text("262143328850\n")
    (root / "energy_uj").write_text("0\n")
    read_int = energy._read_int

    def advancing(path: Path) -> int:
        if path.name == "energy_uj":
            now = read_int(path) + 1_000_000
            path.write_text(f"{now}\n")
            return now
        return read_int(path)

    monkeypatch.setattr(energy, "_read_int", advancing)
    monkeypatch.setattr(energy, "RaplMeter", lambda: RaplMeter(root=root.parent))
    return 1.0  # joules between the two reads of one `track_energy` block


def test_ratios_are_fake_measured_over_modeled() -> None:
    measured = {"add": 3.0, "mul": 6.0, "matmul": 0.5, "mlp": 0.25}
    readings = [x for j in measured.values() for x in (10.0, 10.0 + j)]
    meter = FakeMeter(readings, method="measured:rapl", hardware="fake CPU")
    cal = calibrate(repeats=3, meter=meter)
    expected = {k: measured[k] / (MODELED_J[k] * 3) for k in MODELED_J}
    assert cal.kernels.keys() == expected.keys()
    for name, ratio in expected.items():
        assert cal.kernels[name] == pytest.approx(ratio, rel=1e-9), name
    assert cal.ratio == pytest.approx(math.prod(expected.values()) ** 0.25, rel=1e-9)
    assert (cal.method, cal.hardware, cal.table) == ("measured:rapl", "fake CPU",
                                                     "horowitz-45nm")


def test_calibration_reads_rapl_when_the_counter_exists(rapl: float) -> None:
    cal = calibrate(repeats=2)
    assert cal.method == "measured:rapl"
    assert "1 RAPL package(s)" in (cal.hardware or "")
    for name, modeled in MODELED_J.items():
        assert cal.kernels[name] == pytest.approx(rapl / (modeled * 2), rel=1e-9), name


def test_without_a_counter_calibration_refuses_in_one_line(no_counter: None) -> None:
    with pytest.raises(RegistryError) as raised:
        calibrate(repeats=1)
    assert str(raised.value) == NO_COUNTER
    assert "\n" not in NO_COUNTER
    with pytest.raises(RegistryError, match=re.escape(NO_COUNTER)):  # an estimate: no counter
        calibrate(repeats=1, meter=FakeMeter([0, 1], method="estimated:power_model"))


def test_a_counter_that_does_not_advance_is_an_error() -> None:
    with pytest.raises(RegistryError, match="did not advance"):
        calibrate(repeats=1, meter=FakeMeter([5.0, 5.0], method="measured:rapl"))


@pytest.fixture
def cli_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_repo(tmp_path / "repo", ["gravity"])
    monkeypatch.setenv("REGISTRY_ROOT", str(repo))
    return repo


@pytest.mark.parametrize("args", [["cost", "gravity@workspace", "--calibrate"],
                                  ["cost", "--calibrate"]])
def test_cli_calibrate_without_a_counter_exits_1_with_the_line(cli_repo: Path,
                                                               no_counter: None,
                                                               args: list[str]) -> None:
    from registry.cli.main import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert isinstance(result.exception, RegistryError)
    assert str(result.exception) == NO_COUNTER


def test_cli_calibrate_prints_ratios_and_the_calibrated_estimate(cli_repo: Path,
                                                                 rapl: float) -> None:
    from registry.cli.main import app

    result = CliRunner().invoke(app, ["cost", "gravity@workspace", "--calibrate"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    modeled = next(ln for ln in lines if "(modeled:horowitz-45nm v1, batch 1024)" in ln)
    measured = next(ln for ln in lines if ln.startswith("energy/sample:") and ln != modeled)
    assert measured.endswith("J (measured:rapl)")
    assert any(ln.startswith("calibration:") and "measured:rapl" in ln for ln in lines)
    assert sum(ln.strip().startswith("kernel ") for ln in lines) == 4
    ratio = float(next(ln for ln in lines if ln.startswith("calibration:")).split()[2])
    estimate = float(next(ln for ln in lines if ln.startswith("calibrated estimate:"))
                     .split()[2])
    assert estimate == pytest.approx(float(modeled.split()[1]) * ratio, rel=1e-2)


def test_cli_calibrate_json(cli_repo: Path, rapl: float) -> None:
    import json

    from registry.cli.main import app

    result = CliRunner().invoke(app, ["cost", "gravity@workspace", "--calibrate", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    cal, modeled = data["calibration"], data["energy_modeled_j_per_sample"]
    assert cal["method"] == "measured:rapl" and set(cal["kernels"]) == set(MODELED_J)
    assert data["energy_calibrated_j_per_sample"] == pytest.approx(modeled["value"]
                                                                   * cal["ratio"])


def test_a_saved_calibration_is_recorded_by_registrations_on_the_same_hardware(
        cli_repo: Path, rapl: float) -> None:
    import registry
    from registry.cli.main import app

    result = CliRunner().invoke(app, ["cost", "--calibrate"])
    assert result.exit_code == 0, result.output
    saved = cli_repo / ".registry" / "calibration.json"
    assert f"saved to {saved}" in result.stderr
    reg = registry.open(cli_repo)
    cost = reg.register(cli_repo / "modules" / "gravity").manifest.cost
    assert cost.energy_j_per_sample is not None
    assert cost.energy_j_per_sample.method == "measured:rapl"
    assert cost.calibration is not None and cost.calibration.method == "measured:rapl"
    assert cost.calibration.hardware == cost.energy_j_per_sample.hardware
    assert set(cost.calibration.kernels) == set(MODELED_J)


def test_another_machines_calibration_is_not_recorded(tmp_path: Path) -> None:
    from registry.core.manifest import Calibration
    from registry.cost.calibration import save_calibration, saved_calibration

    made = Calibration(ratio=12.0, method="measured:rapl", hardware="machine A",
                       table="horowitz-45nm", kernels={"add": 12.0})
    save_calibration(tmp_path, made)
    assert saved_calibration(tmp_path, "machine A") == made
    assert saved_calibration(tmp_path, "machine B") is None
    (tmp_path / ".registry" / "calibration.json").write_text("{not json")
    assert saved_calibration(tmp_path, "machine A") is None
