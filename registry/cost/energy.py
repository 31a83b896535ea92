"""Energy meters, and `track_energy` to measure a block of code with one of them.

A meter reads cumulative joules since an arbitrary origin and says how, in its
`method`: `measured:rapl` (Linux powercap package counters, whole sockets),
`measured:nvml` (NVIDIA GPUs, whole devices) or `estimated:power_model`
(process CPU-seconds × watts per core). `select_meter` takes RAPL when it can be
read, else the power model, and adds NVML when a GPU answers; the report's
`note` says why a counter was not used. `$REGISTRY_ENERGY_METER` forces a choice.

Example:
    >>> with track_energy(region="DEU") as tracker:
    ...     model.fit(data)
    >>> tracker.report.method, tracker.report.energy_j
    ('estimated:power_model', 1520.4)
    >>> manifest.cost.training = tracker.report.to_training_cost()
"""

from __future__ import annotations

import math
import os
import platform
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.core.manifest import TrainingCost
from registry.cost.carbon import check_pue, co2_kg, default_pue, default_region, grid_intensity
from registry.errors import RegistryError

__all__ = ["CombinedMeter", "EnergyReport", "EnergyTracker", "FakeMeter", "Meter", "NvmlMeter",
           "PowerModelMeter", "RaplMeter", "describe_cpu", "select_meter", "track_energy"]

DEFAULT_WATTS_PER_CORE = 6.75
DEFAULT_WATTS_SOURCE = "Intel Xeon Platinum 8380 TDP 270 W / 40 cores"
METER_CHOICES = ("auto", "rapl", "power_model")


def describe_cpu() -> str:
    """The CPU model (from /proc/cpuinfo, else `platform`) and the number of logical CPUs."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model} ({os.cpu_count() or '?'} logical CPUs)"


class Meter(ABC):
    """Reads cumulative joules; `available()` never raises and sets `reason` when False."""

    method: str
    hardware: str = ""
    watts_per_core: float | None = None  # set only by estimates
    watts_source: str | None = None
    note: str | None = None
    reason: str | None = None
    poll_s: float | None = None  # read at least this often, so a counter cannot wrap twice

    def available(self) -> bool:
        return True

    @abstractmethod
    def read(self) -> float:
        """Joules since an arbitrary origin; only differences between reads mean anything."""

    def cpu_time(self) -> float:
        """CPU-seconds of this process, all threads (worker processes are not counted)."""
        return time.process_time()


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


class RaplMeter(Meter):
    """Intel/AMD RAPL package counters under Linux powercap, summed over sockets.

    Counters are whole-package (they include other processes) and wrap at
    `max_energy_range_uj`; each read adds the wrap-corrected delta to a running
    total, so one wrap between two reads is counted right (`poll_s` keeps reads
    frequent enough during long runs).
    """

    method = "measured:rapl"
    poll_s = 60.0

    def __init__(self, root: Path = Path("/sys/class/powercap")) -> None:
        self.root = root
        self.hardware = describe_cpu()
        self._domains: list[tuple[Path, int]] | None = None
        self._last: list[int] | None = None
        self._total_uj = 0
        self._lock = threading.Lock()

    def available(self) -> bool:
        if self._domains is not None:
            return True
        if not self.root.is_dir():
            self.reason = (f"{self.root} does not exist (not Linux, or a VM or container "
                           "without powercap)")
            return False
        try:
            dirs = sorted(p for p in self.root.glob("intel-rapl:*")
                          if re.fullmatch(r"intel-rapl:\d+", p.name)
                          and (p / "name").read_text().startswith("package"))
            if not dirs:
                self.reason = f"no RAPL package domain under {self.root}"
                return False
            domains = [(d, _read_int(d / "max_energy_range_uj")) for d in dirs]
            for d, _ in domains:
                _read_int(d / "energy_uj")
        except PermissionError as exc:
            self.reason = (f"RAPL counters are not readable ({exc.filename or exc}; they are "
                           "root-only since the 2020 PLATYPUS fix, CVE-2020-8694); run as root "
                           "or grant read access to energy_uj")
            return False
        except (OSError, ValueError) as exc:
            self.reason = f"RAPL counters under {self.root} cannot be read: {exc}"
            return False
        self._domains = domains
        self.hardware = f"{describe_cpu()}, {len(domains)} RAPL package(s)"
        return True

    def read(self) -> float:
        if not self.available() or self._domains is None:
            raise RegistryError(f"RaplMeter cannot read: {self.reason}; use `select_meter()`, "
                                "which falls back to the power model")
        with self._lock:
            now = [_read_int(d / "energy_uj") for d, _ in self._domains]
            if self._last is not None:
                for (_, max_uj), start, end in zip(self._domains, self._last, now, strict=True):
                    self._total_uj += end - start if end >= start else end + max_uj - start
            self._last = now
            return self._total_uj / 1_000_000


class NvmlMeter(Meter):
    """NVIDIA GPUs' total energy counters (mJ, since driver load) via `pynvml`, summed.

    NVML sees every GPU on the machine, whatever CUDA_VISIBLE_DEVICES says; pass
    `indices` (NVML order) to measure only some.
    """

    method = "measured:nvml"

    def __init__(self, *, indices: Sequence[int] | None = None) -> None:
        self.indices = indices
        self.hardware = "NVIDIA GPU"
        self._handles: list[Any] | None = None

    def available(self) -> bool:
        if self._handles is not None:
            return True
        try:
            import pynvml
        except ImportError:
            self.reason = "pynvml is not installed (pip install nvidia-ml-py)"
            return False
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                       for i in (self.indices if self.indices is not None else range(count))]
            for handle in handles:  # pre-Volta GPUs raise NotSupported here
                pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            names = [pynvml.nvmlDeviceGetName(h) for h in handles]
        except pynvml.NVMLError as exc:
            self.reason = f"NVML cannot read GPU energy: {exc}"
            return False
        if not handles:
            self.reason = "NVML found no GPU"
            return False
        self._handles = handles
        self.hardware = ", ".join(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        return True

    def read(self) -> float:
        if not self.available() or self._handles is None:
            raise RegistryError(f"NvmlMeter cannot read: {self.reason}")
        import pynvml

        return sum(pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles) / 1000


class PowerModelMeter(Meter):
    """An estimate: process CPU-seconds × `watts_per_core` (`$REGISTRY_WATTS_PER_CORE`)."""

    method = "estimated:power_model"

    def __init__(self, *, watts_per_core: float | None = None, source: str | None = None) -> None:
        env = os.environ.get("REGISTRY_WATTS_PER_CORE", "").strip()
        if watts_per_core is not None:
            watts, source = watts_per_core, source or "given by the caller"
        elif env:
            try:
                watts = float(env)
            except ValueError:
                watts = math.nan
            source = source or "REGISTRY_WATTS_PER_CORE environment variable"
        else:
            watts, source = DEFAULT_WATTS_PER_CORE, source or DEFAULT_WATTS_SOURCE
        if not (math.isfinite(watts) and watts > 0):
            raise RegistryError(f"watts per core must be a positive number, not "
                                f"{env if watts_per_core is None else watts!r}; fix "
                                "`watts_per_core=` or $REGISTRY_WATTS_PER_CORE (e.g. 6.75)")
        self.watts_per_core, self.watts_source = watts, source
        self._watts = watts
        self.hardware = describe_cpu()
        self._origin: float | None = None

    def read(self) -> float:
        now = self.cpu_time()
        if self._origin is None:
            self._origin = now
        return (now - self._origin) * self._watts


class FakeMeter(Meter):
    """A test double: each read returns the next of `readings_j`; each `cpu_time()` adds `cpu_s`."""

    def __init__(self, readings_j: Sequence[float], *, cpu_s: float = 0.0, method: str = "fake",
                 hardware: str = "fake hardware") -> None:
        self.readings_j = list(readings_j)
        self.cpu_s, self.method, self.hardware = cpu_s, method, hardware
        self._reads = 0
        self._cpu_reads = 0

    def read(self) -> float:
        if self._reads >= len(self.readings_j):
            raise RegistryError(f"FakeMeter has no reading left after {self._reads}; "
                                "give it one reading per `read()`")
        self._reads += 1
        return self.readings_j[self._reads - 1]

    def cpu_time(self) -> float:
        self._cpu_reads += 1
        return (self._cpu_reads - 1) * self.cpu_s


class CombinedMeter(Meter):
    """A CPU meter and a GPU meter read together; joules are summed."""

    def __init__(self, cpu: Meter, gpu: Meter) -> None:
        self.cpu, self.gpu = cpu, gpu
        self.method = f"{cpu.method}+{gpu.method}"
        self.hardware = f"{cpu.hardware} + {gpu.hardware}"
        self.watts_per_core, self.watts_source, self.note = (
            cpu.watts_per_core, cpu.watts_source, cpu.note)
        polls = [p for p in (cpu.poll_s, gpu.poll_s) if p is not None]
        self.poll_s = min(polls) if polls else None

    def available(self) -> bool:
        return self.cpu.available() and self.gpu.available()

    def read(self) -> float:
        return self.cpu.read() + self.gpu.read()

    def cpu_time(self) -> float:
        return self.cpu.cpu_time()


def select_meter(*, prefer: str | None = None) -> Meter:
    """RAPL if readable, else the power model (with a `note` saying why); plus NVML if a GPU
    answers. `prefer` (or `$REGISTRY_ENERGY_METER`) is one of `auto`, `rapl`, `power_model`.
    """
    choice = (prefer or os.environ.get("REGISTRY_ENERGY_METER", "").strip() or "auto").lower()
    if choice not in METER_CHOICES:
        raise RegistryError(f"unknown energy meter {choice!r}; choose one of "
                            f"{', '.join(METER_CHOICES)} (`prefer=` or $REGISTRY_ENERGY_METER)")
    cpu: Meter
    if choice == "power_model":
        cpu = PowerModelMeter()
    else:
        rapl = RaplMeter()
        if rapl.available():
            cpu = rapl
        elif choice == "rapl":
            raise RegistryError(f"RAPL was asked for but {rapl.reason}; unset "
                                "REGISTRY_ENERGY_METER or use `prefer='power_model'`")
        else:
            cpu = PowerModelMeter()
            cpu.note = f"RAPL not used: {rapl.reason}"
    gpu = NvmlMeter()
    return CombinedMeter(cpu, gpu) if gpu.available() else cpu


@dataclass
class EnergyReport:
    """What a tracked block cost, how it was obtained, and its carbon."""

    energy_j: float
    cpu_s: float
    duration_s: float
    method: str
    hardware: str
    co2_kg: float
    region: str
    intensity_g_per_kwh: float
    pue: float
    watts_per_core: float | None = None
    watts_source: str | None = None
    intensity_source: str | None = None
    note: str | None = None

    def plus(self, other: EnergyReport) -> EnergyReport:
        """This block and `other` (a task it ran in another process, side by side with it):
        energy, CPU time and carbon added, the wall-clock time this block's."""
        from dataclasses import replace

        method = self.method if other.method == self.method else f"{self.method}+{other.method}"
        return replace(self, energy_j=self.energy_j + other.energy_j,
                       cpu_s=self.cpu_s + other.cpu_s, co2_kg=self.co2_kg + other.co2_kg,
                       method=method)

    def to_training_cost(self) -> TrainingCost:
        """The manifest's `cost.training` entry."""
        return TrainingCost(energy_j=self.energy_j, co2_kg=self.co2_kg,
                            duration_s=self.duration_s, cpu_s=self.cpu_s, method=self.method,
                            region=self.region, intensity_g_per_kwh=self.intensity_g_per_kwh,
                            pue=self.pue)


class EnergyTracker:
    """Yielded by `track_energy`; `report` is filled when the block exits."""

    def __init__(self, meter: Meter, *, region: str, pue: float) -> None:
        self.meter, self.pue = meter, pue
        self.intensity = grid_intensity(region)
        self._report: EnergyReport | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def report(self) -> EnergyReport:
        if self._report is None:
            raise RegistryError("the energy report is filled when the `with track_energy()` "
                                "block exits; read `tracker.report` after it")
        return self._report

    def _poll(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.meter.read()

    def start(self) -> None:
        self._wall0, self._cpu0 = time.perf_counter(), self.meter.cpu_time()
        self._energy0 = self.meter.read()
        if self.meter.poll_s is not None:
            self._poller = threading.Thread(target=self._poll, args=(self.meter.poll_s,),
                                            name="registry-energy-poll", daemon=True)
            self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        energy_j = self.meter.read() - self._energy0
        cpu_s = self.meter.cpu_time() - self._cpu0
        duration_s = time.perf_counter() - self._wall0
        where = self.intensity
        self._report = EnergyReport(
            energy_j=energy_j, cpu_s=cpu_s, duration_s=duration_s, method=self.meter.method,
            hardware=self.meter.hardware, co2_kg=co2_kg(energy_j, region=where.code, pue=self.pue),
            region=where.code, intensity_g_per_kwh=where.g_co2e_per_kwh, pue=self.pue,
            watts_per_core=self.meter.watts_per_core, watts_source=self.meter.watts_source,
            intensity_source=f"{where.source}, {where.year}",
            note=self.meter.note)


@contextmanager
def track_energy(*, meter: Meter | None = None, region: str | None = None,
                 pue: float | None = None) -> Iterator[EnergyTracker]:
    """Measure the block with `meter` (default `select_meter()`); the report is filled on exit,
    also when the block raises. `region`/`pue` default to `$REGISTRY_REGION`/`$REGISTRY_PUE`.
    """
    tracker = EnergyTracker(meter if meter is not None else select_meter(),
                            region=region if region is not None else default_region(),
                            pue=check_pue(pue) if pue is not None else default_pue())
    tracker.start()
    try:
        yield tracker
    finally:
        tracker.stop()
