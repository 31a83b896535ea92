"""The JSON API under /api/v1: the same verbs as the CLI, over HTTP.

Reads (open to everyone):

    GET  /api/v1/health                          status, version, module count, index backend
    GET  /api/v1/modules                         registered modules (latest version each) and
                                                 the working tree's unregistered ones;
                                                 filters: kind, input_unit, output_unit, q
    GET  /api/v1/modules/{ref}                   one version, with the module's versions/stages
    GET  /api/v1/modules/{name}/versions         every registered version of a module
    GET  /api/v1/modules/{ref}/manifest          the manifest as JSON
    GET  /api/v1/modules/{ref}/files/{file}      a file of the module folder (ETag = sha256)
    GET  /api/v1/modules/{ref}/cost              the recorded cost; ?measure=true measures afresh
    GET  /api/v1/modules/{ref}/alternatives      the modules with its interface, compared;
                                                 ?max_nrmse=&by= also selects the cheapest

Writes (``Authorization: Bearer <token>``, see `registry.server.auth`):

    POST /api/v1/modules                         register an uploaded module folder
    POST /api/v1/modules/{name}/stages           assign a stage to a version

One module per resource: `health`, `modules`, `files`, `cost`, `compare` (alternatives),
`register`, `stages`; `common` holds the route class, reference parsing and path params.
Bodies are `registry.server.schemas`; upload checks `registry.server.uploads`;
rationed measuring `registry.cost.rationed`.

`{ref}` is one path segment, URL-encoded: ``gravity@1.0.1``, ``gravity@%5E1``,
``gravity%23prod``, ``gravity@workspace``; a malformed one is a 422
``invalid_reference`` carrying the parser's message. Errors are JSON
``{"type", "message"}`` (`registry.server.handlers`).

Unit filters match by dimension *and* scale (`output_unit=N` finds modules with
an output in newtons or ``kg m/s^2``, not kilonewtons).
"""

from __future__ import annotations

from registry.server.routes.v1 import install, router

__all__ = ["install", "router"]
