"""GET /api/v1/modules/{ref}/alternatives: modules with the same interface, compared.

The recorded figures (`Registry.alternatives`: same port names, order and units);
with `max_nrmse`, also the cheapest within it by `by` (`Registry.select`), or a 422
``budget_exceeded`` naming the most accurate one when none meets it. Nothing is
measured here: `registry alternatives REF --measure` does that where it runs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query, Request

from registry.alternatives import select
from registry.server.handlers import openapi_errors
from registry.server.routes.common import RefParam, api_router, registry_of, resolve_ref
from registry.server.schemas import AlternativeOut, AlternativesOut

router = api_router()


@router.get("/modules/{ref}/alternatives", response_model=AlternativesOut,
            summary="Modules with the same interface, accuracy against cost",
            responses=openapi_errors(404, 422))
def get_alternatives(
    request: Request, ref: RefParam,
    max_nrmse: Annotated[float | None, Query(gt=0, le=1e6, description="an error budget: "
                                             "also select the cheapest within it")] = None,
    by: Annotated[Literal["flops", "energy", "latency"], Query(
        description="the figure `max_nrmse` selects by")] = "flops",
) -> AlternativesOut:
    reg = registry_of(request)
    resolved = resolve_ref(reg, ref)
    found = reg.alternatives(resolved.exact)
    chosen = (select(found, max_nrmse=max_nrmse, by=by, asked=resolved.exact)
              if max_nrmse is not None else None)
    return AlternativesOut(
        ref=resolved.exact, alternatives=[AlternativeOut(**a.to_dict()) for a in found],
        selected=AlternativeOut(**chosen.to_dict()) if chosen is not None else None)
