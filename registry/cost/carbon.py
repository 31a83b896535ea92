"""Carbon from energy: kWh × a bundled grid-intensity table × PUE. No network, ever.

The table is `registry/data/grid_intensity.csv` (g CO2e per kWh by ISO 3166-1
alpha-3 code, with its source and each row's data year). The region defaults to
`$REGISTRY_REGION`, else `FRA`; the data-centre PUE to `$REGISTRY_PUE`, else 1.0.

Example:
    >>> grid_intensity("FRA").g_co2e_per_kwh
    56.0
    >>> co2_kg(3.6e6, region="FRA", pue=1.5)  # 1 kWh
    0.084
"""

from __future__ import annotations

import csv
import functools
import math
import os
from dataclasses import dataclass
from importlib import resources

from registry.errors import NotFound, RegistryError

__all__ = ["DEFAULT_REGION", "Intensity", "check_pue", "co2_kg", "default_pue",
           "default_region", "grid_intensity"]

DEFAULT_REGION = "FRA"
TABLE = "registry/data/grid_intensity.csv"
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Intensity:
    """The carbon intensity of one country's grid, with where the figure comes from."""

    code: str
    country: str
    g_co2e_per_kwh: float
    year: int
    source: str


@functools.cache
def _table() -> dict[str, Intensity]:
    text = (resources.files("registry") / "data" / "grid_intensity.csv").read_text("utf-8")
    lines = text.splitlines()
    comments = [line.lstrip("# ").strip() for line in lines if line.startswith("#")]
    source = next((c.removeprefix("Source:").strip() for c in comments
                   if c.startswith("Source:")), TABLE)
    rows = csv.DictReader(line for line in lines if line.strip() and not line.startswith("#"))
    return {row["code"]: Intensity(code=row["code"], country=row["country"],
                                   g_co2e_per_kwh=float(row["g_co2e_per_kwh"]),
                                   year=int(row["year"]), source=source)
            for row in rows}


def grid_intensity(region: str) -> Intensity:
    """The grid intensity for an ISO 3166-1 alpha-3 code (case-insensitive), e.g. `"DEU"`."""
    table = _table()
    code = region.strip().upper()
    if code not in table:
        raise NotFound(
            f"no grid intensity for region {region!r} in {TABLE}; use an ISO 3166-1 alpha-3 "
            f"code such as FRA, DEU, USA (the table lists {len(table)} codes in its first "
            "column), via `region=` or $REGISTRY_REGION"
        )
    return table[code]


def default_region() -> str:
    """`$REGISTRY_REGION` if set, else `FRA`."""
    return os.environ.get("REGISTRY_REGION", "").strip() or DEFAULT_REGION


def default_pue() -> float:
    """`$REGISTRY_PUE` if set, else 1.0 (energy is counted at the plug, no overhead)."""
    raw = os.environ.get("REGISTRY_PUE", "").strip()
    if not raw:
        return 1.0
    try:
        return check_pue(float(raw))
    except ValueError:
        raise RegistryError(f"REGISTRY_PUE={raw!r} is not a number; set it to the data "
                            "centre's power usage effectiveness, e.g. 1.2, or unset it") from None


def check_pue(pue: float) -> float:
    """`pue` itself, if it is a possible power usage effectiveness (finite, at least 1)."""
    if not (math.isfinite(pue) and pue >= 1.0):
        raise RegistryError(f"PUE {pue} is impossible: a data centre's power usage "
                            "effectiveness is at least 1.0 (e.g. 1.1 to 1.6); use 1.0 if unknown")
    return pue


def co2_kg(energy_j: float, *, region: str | None = None, pue: float | None = None) -> float:
    """kg CO2e for `energy_j` joules drawn in `region`, scaled by the data centre's `pue`."""
    intensity = grid_intensity(region if region is not None else default_region())
    factor = check_pue(pue) if pue is not None else default_pue()
    return energy_j / J_PER_KWH * intensity.g_co2e_per_kwh * factor / 1000
