"""Energy meters, the tracker and carbon: deterministic, on fake counters and fixed clocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.cost import energy
from registry.cost.carbon import co2_kg, grid_intensity
from registry.cost.energy import (
    FakeMeter,
    NvmlMeter,
    PowerModelMeter,
    RaplMeter,
    select_meter,
    track_energy,
)
from registry.errors import NotFound, RegistryError

MAX_UJ = 262_143_328_850  # a real package's max_energy_range_uj


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REGISTRY_REGION", "REGISTRY_PUE", "REGISTRY_WATTS_PER_CORE",
                 "REGISTRY_ENERGY_METER"):
        monkeypatch.delenv(name, raising=False)


def domain(root: Path, dirname: str, name: str, energy_uj: int) -> Path:
    path = root / dirname
    path.mkdir(parents=True, exist_ok=True)
    (path / "name").write_text(f"{name}\n")
    (path / "max_energy_range_uj").write_text(f"{MAX_UJ}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    return path


def set_uj(path: Path, energy_uj: int) -> None:
    (path / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def powercap(tmp_path: Path) -> Iterator[tuple[Path, Path, Path, Path]]:
    """Two packages and a core sub-domain that must not be counted twice."""
    root = tmp_path / "powercap"
    pkg0 = domain(root, "intel-rapl:0", "package-0", 1_000_000)
    core = domain(root, "intel-rapl:0:0", "core", 5_000_000)
    pkg1 = domain(root, "intel-rapl:1", "package-1", 2_000_000)
    yield root, pkg0, core, pkg1


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NvmlMeter, "available", lambda self: False)


def test_rapl_sums_packages_and_ignores_sub_domains(powercap) -> None:
    root, pkg0, core, pkg1 = powercap
    meter = RaplMeter(root=root)
    start = meter.read()
    set_uj(pkg0, 4_500_000)
    set_uj(core, 9_000_000)
    set_uj(pkg1, 3_000_000)
    assert (meter.method, meter.read() - start) == ("measured:rapl", 4.5)


def test_rapl_counts_a_counter_wrap(powercap) -> None:
    root, pkg0, _, pkg1 = powercap
    set_uj(pkg0, 262_143_000_000)
    meter = RaplMeter(root=root)
    start = meter.read()
    set_uj(pkg0, 500_000)  # wrapped: 328_850 µJ to the top, then 500_000 µJ
    set_uj(pkg1, 4_000_000)
    assert meter.read() - start == 2.82885


def test_rapl_counts_one_wrap_between_each_pair_of_reads(powercap) -> None:
    root, pkg0, _, _ = powercap
    meter = RaplMeter(root=root)
    start = meter.read()
    set_uj(pkg0, 500_000)  # wrapped once since the start
    meter.read()  # what the tracker's poller does during a long run
    set_uj(pkg0, 400_000)  # wrapped again
    assert meter.read() - start == (MAX_UJ - 1_000_000 + 500_000 + MAX_UJ - 100_000) / 1e6


def test_track_energy_with_rapl_stops_its_poller_and_counts_the_wrap(powercap) -> None:
    root, pkg0, _, _ = powercap
    with track_energy(meter=RaplMeter(root=root)) as tracker:
        set_uj(pkg0, 0)
    assert (tracker.report.energy_j, tracker.report.watts_per_core) == (
        (MAX_UJ - 1_000_000) / 1e6, None)


@pytest.mark.parametrize(("layout", "reason"), [
    ({}, "does not exist (not Linux, or a VM"),
    ({"intel-rapl:0:0": "core", "intel-rapl:1": "psys"}, "no RAPL package domain"),
])
def test_rapl_is_unavailable_without_a_package_domain(tmp_path, layout, reason) -> None:
    for dirname, name in layout.items():
        domain(tmp_path, dirname, name, 0)
    meter = RaplMeter(root=tmp_path / "missing" if not layout else tmp_path)
    assert (meter.available(), reason in (meter.reason or "")) == (False, True)


def test_unreadable_rapl_falls_back_to_the_labelled_power_model(powercap, monkeypatch,
                                                                  no_gpu) -> None:
    root = powercap[0]
    read_int = energy._read_int

    def root_only(path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_int(path)

    monkeypatch.setattr(energy, "_read_int", root_only)
    monkeypatch.setattr(energy, "RaplMeter", lambda: RaplMeter(root=root))
    rapl = RaplMeter(root=root)
    meter = select_meter()
    assert (rapl.available(), meter.method) == (False, "estimated:power_model")
    assert "not readable" in (rapl.reason or "")
    assert meter.note == f"RAPL not used: {rapl.reason}"


def test_reading_an_unavailable_rapl_meter_says_what_to_do(tmp_path) -> None:
    with pytest.raises(RegistryError, match=r"no RAPL package domain .*select_meter"):
        RaplMeter(root=tmp_path).read()


def test_this_machine_falls_back_to_the_power_model() -> None:
    if RaplMeter().available():
        pytest.skip("this machine has readable RAPL counters")
    assert select_meter().method.split("+")[0] == "estimated:power_model"


def test_readable_rapl_is_chosen_unless_the_power_model_is_forced(powercap, monkeypatch,
                                                                   no_gpu) -> None:
    monkeypatch.setattr(energy, "RaplMeter", lambda: RaplMeter(root=powercap[0]))
    chosen = select_meter().method
    monkeypatch.setenv("REGISTRY_ENERGY_METER", "power_model")
    assert (chosen, select_meter().method) == ("measured:rapl", "estimated:power_model")


def test_asking_for_missing_rapl_or_an_unknown_meter_is_an_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(energy, "RaplMeter", lambda: RaplMeter(root=tmp_path))
    with pytest.raises(RegistryError, match="RAPL was asked for but no RAPL package domain"):
        select_meter(prefer="rapl")
    with pytest.raises(RegistryError, match="choose one of auto, rapl, power_model"):
        select_meter(prefer="wattmeter")


def test_nvml_is_unavailable_without_pynvml_or_a_gpu() -> None:
    meter = NvmlMeter()
    if meter.available():
        pytest.skip("this machine has an NVIDIA GPU that NVML can read")
    assert meter.reason


def test_power_model_is_cpu_seconds_times_watts(monkeypatch) -> None:
    clock = iter([10.0, 12.0])
    monkeypatch.setattr(energy.time, "process_time", lambda: next(clock))
    meter = PowerModelMeter()
    start = meter.read()
    assert (meter.read() - start, meter.watts_source) == (
        2.0 * 6.75, "Intel Xeon Platinum 8380 TDP 270 W / 40 cores")


def test_power_model_takes_watts_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("REGISTRY_WATTS_PER_CORE", "10.5")
    meter = PowerModelMeter()
    assert (meter.watts_per_core, meter.watts_source) == (
        10.5, "REGISTRY_WATTS_PER_CORE environment variable")


@pytest.mark.parametrize("raw", ["ten", "-3", "0", "nan"])
def test_power_model_refuses_impossible_watts(monkeypatch, raw) -> None:
    monkeypatch.setenv("REGISTRY_WATTS_PER_CORE", raw)
    with pytest.raises(RegistryError, match=f"positive number, not '{raw}'; fix"):
        PowerModelMeter()


def test_track_energy_reports_the_fake_meters_exact_joules() -> None:
    with track_energy(meter=FakeMeter([100.0, 103.5], cpu_s=2.0), region="DEU",
                      pue=1.2) as tracker:
        pass
    report = tracker.report
    assert (report.energy_j, report.cpu_s, report.method, report.region, report.pue) == (
        3.5, 2.0, "fake", "DEU", 1.2)
    assert report.co2_kg == co2_kg(report.energy_j, region="DEU", pue=1.2)
    assert report.to_training_cost().model_dump(exclude_none=True) == {
        "energy_j": report.energy_j, "co2_kg": report.co2_kg, "duration_s": report.duration_s,
        "cpu_s": 2.0, "method": "fake", "region": "DEU",
        "intensity_g_per_kwh": grid_intensity("DEU").g_co2e_per_kwh, "pue": 1.2}


def test_track_energy_fills_the_report_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError), track_energy(meter=FakeMeter([0.0, 7.0])) as tracker:
        1 / 0  # noqa: B018
    assert (tracker.report.energy_j, tracker.report.region) == (7.0, "FRA")


def test_the_report_is_not_there_before_the_block_exits() -> None:
    with (track_energy(meter=FakeMeter([0.0, 1.0])) as tracker,
          pytest.raises(RegistryError, match="filled when the `with track_energy")):
        tracker.report  # noqa: B018


def test_a_fake_meter_out_of_readings_says_so() -> None:
    meter = FakeMeter([1.0])
    meter.read()
    with pytest.raises(RegistryError, match="no reading left after 1"):
        meter.read()


def test_one_kwh_in_france_at_pue_1_5() -> None:
    france = grid_intensity("fra")
    assert (france.g_co2e_per_kwh, france.year) == (56.0, 2023)
    assert co2_kg(3.6e6, region="FRA", pue=1.5) == 56.0 * 1.5 / 1000


def test_region_and_pue_default_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("REGISTRY_REGION", "usa")
    monkeypatch.setenv("REGISTRY_PUE", "1.25")
    assert co2_kg(3.6e6) == grid_intensity("USA").g_co2e_per_kwh * 1.25 / 1000


def test_an_unknown_region_says_which_codes_to_use() -> None:
    with pytest.raises(NotFound, match=r"no grid intensity for region 'France' .*ISO 3166-1 "
                                       r"alpha-3 code such as FRA, DEU, USA"):
        grid_intensity("France")


@pytest.mark.parametrize(("pue", "message"), [
    (0.9, "PUE 0.9 is impossible"), ("x", "REGISTRY_PUE='x' is not a number")])
def test_an_impossible_pue_is_refused(monkeypatch, pue, message) -> None:
    monkeypatch.setenv("REGISTRY_PUE", str(pue))
    with pytest.raises(RegistryError, match=message):
        co2_kg(1.0)
