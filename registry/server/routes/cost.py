"""GET /api/v1/modules/{ref}/cost: the recorded cost; `?measure=true` measures afresh.

Measuring builds the module and times it on this machine, so it is rationed
by the app's `RationedMeter` (`app.state.meter`, `registry.cost.rationed`):
one measurement at a time per server process (a second concurrent request gets
429 ``too_many_requests`` with ``Retry-After``), results cached per exact
version, and modules recording more parameters than the meter's limit refused
(422 ``measure_refused``): measure those with `registry cost REF` where they run.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from registry.cost.rationed import MeasureBusy, MeasureRefused, RationedMeter
from registry.server.handlers import ApiError, openapi_errors
from registry.server.routes.common import RefParam, api_router, registry_of, resolve_ref
from registry.server.schemas import CostOut

router = api_router()


@router.get("/modules/{ref}/cost", response_model=CostOut, summary="The module's cost",
            responses=openapi_errors(404, 422, 429))
def get_cost(request: Request, ref: RefParam,
             measure: Annotated[bool, Query(description="measure afresh on this server "
                                            "(rationed: one at a time, cached, small modules "
                                            "only)")] = False) -> CostOut:
    reg = registry_of(request)
    resolved = resolve_ref(reg, ref)
    recorded = resolved.manifest.cost.model_dump(mode="json", exclude_none=True)
    if not measure:
        return CostOut(ref=resolved.exact, recorded=recorded)
    meter: RationedMeter = request.app.state.meter
    try:
        measured = meter.measure(resolved, reg.cost)
    except MeasureRefused as exc:
        raise ApiError(422, "measure_refused", str(exc)) from None
    except MeasureBusy as exc:
        raise ApiError(429, "too_many_requests", str(exc),
                       headers={"Retry-After": str(exc.retry_after)}) from None
    return CostOut(ref=resolved.exact, recorded=recorded, measured=measured.figures,
                   measured_cached=measured.cached)
