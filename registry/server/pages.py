"""Server-rendered pages: the module list, one module's card, the leaderboard.

    GET /                             registered modules (latest of each) and the working
                                      tree's unregistered ones; filters ?q= (name, summary)
                                      and ?kind=; works without JavaScript
    GET /modules/{name}               a module's card; ?version=1.0.0 (or ^1, workspace),
                                      with its lineage tree (`Registry.lineage`) as nested
                                      lists: teachers down to a composite's node, parents;
                                      its alternatives (`Registry.alternatives`) with inline
                                      SVG plots of nRMSE against FLOPs and energy
    GET /modules/{name}/pareto.png    a distilled module's Pareto plot (same ?version=)
    GET /leaderboard                  latest versions ranked by FLOPs and by energy per sample
    GET /static/style.css             the one style sheet (no CDN, no fonts, no scripts)

Pages read through `app.state.registry`, as the CLI does: search through
`Registry.search`, budget verdicts from `registry.gate.budgets` (the gate's own
rule: the energy budget binds the modeled figure unless the budget says
`measured`; an estimated figure is reported, not gated). The cost table shows
the modeled, the measured (or estimated) and, where `cost.calibration` is
recorded, the calibrated energy side by side, each with its method. Templates are
autoescaped. The one piece of markup built in Python is an equation's MathML,
printed by sympy from the tree the safe parser builds: its names are
identifiers and its numbers numbers, so no manifest text reaches the page raw.

Example:
    >>> client.get("/modules/gravity").text     # doctest: +SKIP
    '<!doctype html>... <math xmlns="http://www.w3.org/1998/Math/MathML" display="block">...'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from starlette.staticfiles import StaticFiles

from registry.core.manifest import NAME_PATTERN, Manifest, Measured
from registry.core.reference import parse_reference
from registry.errors import ExpressionError, NotFound, RegistryError
from registry.gate.budgets import is_estimate, recorded_figures, verdicts
from registry.server.routes.common import in_workspace

if TYPE_CHECKING:
    from registry.api import Registry
    from registry.store.base import Resolved, VersionRow

__all__ = ["install"]

HERE = Path(__file__).resolve().parent
KINDS = ("equation", "network", "composite")
MAX_QUERY = 200
PAGE_ROWS = 50  # modules per list page
PARETO_FILE = "pareto.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MATHML_NS = "http://www.w3.org/1998/Math/MathML"
# No scripts at all, and nothing from other origins.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def install(app: FastAPI) -> None:
    """Add the HTML pages (/, /modules/{name}, /leaderboard) and static files to `app`."""
    app.add_api_route("/", index_page, methods=["GET"], response_class=HTMLResponse,
                      include_in_schema=False)
    app.add_api_route("/leaderboard", leaderboard_page, methods=["GET"],
                      response_class=HTMLResponse, include_in_schema=False)
    app.add_api_route("/modules/{name}", module_page, methods=["GET"],
                      response_class=HTMLResponse, include_in_schema=False)
    app.add_api_route("/modules/{name}/pareto.png", pareto_image, methods=["GET"],
                      include_in_schema=False)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


# pages -----------------------------------------------------------------------------


def index_page(request: Request, q: str = "", kind: str = "", page: int = 1) -> HTMLResponse:
    reg = _registry(request)
    query = q.strip()[:MAX_QUERY]
    kind = kind if kind in KINDS else ""
    found = reg.search(query or None, kind=kind or None)
    pages = max(1, -(-len(found.modules) // PAGE_ROWS))
    page = min(max(1, page), pages)
    shown = found.modules[(page - 1) * PAGE_ROWS:page * PAGE_ROWS]
    stages = _stages_by_module(reg, shown)
    # Only this page's manifests are read (from the index), not every module's.
    rows = [{"row": row, "manifest": Manifest.model_validate(full.manifest),
             "stages": stages.get(row.name, [])}
            for row in shown for full in reg.versions(row.name, manifests=True)
            if full.version == row.version]
    # A working-tree module whose manifest does not load is shown by name (`error` is set);
    # its own page says what is wrong.
    return _page(request, "index.html", title="Modules", rows=rows,
                 unregistered=found.unregistered if page == 1 else [], q=query, kind=kind,
                 kinds=KINDS, page=page, pages=pages, total=len(found.modules))


def leaderboard_page(request: Request) -> HTMLResponse:
    reg = _registry(request)
    entries = [(row, Manifest.model_validate(row.manifest))
               for row in reg.list(manifests=True)]
    by_flops = sorted(((r, m) for r, m in entries if m.cost.flops_per_sample is not None),
                      key=lambda e: (e[1].cost.flops_per_sample, e[0].name))
    by_energy = sorted(((r, m) for r, m in entries if m.cost.energy_j_per_sample is not None),
                       key=lambda e: (_energy_value(e[1]), e[0].name))
    unranked = sorted({r.name for r, m in entries
                       if m.cost.flops_per_sample is None or m.cost.energy_j_per_sample is None})
    return _page(request, "leaderboard.html", title="Leaderboard", by_flops=by_flops,
                 by_energy=by_energy, unranked=unranked)


def module_page(request: Request, name: str, version: str | None = None) -> HTMLResponse:
    reg = _registry(request)
    try:
        resolved = _resolve(reg, name, version)
    except RegistryError as exc:
        return _error_page(request, exc)
    manifest = resolved.manifest
    rows = reg.versions(name)
    stages = _stages_by_module(reg, rows).get(name, [])
    in_tree = in_workspace(reg, name)
    context: dict[str, Any] = {
        "title": f"{manifest.name} {manifest.version}",
        "m": manifest, "resolved": resolved, "versions": rows, "stages": stages,
        "in_tree": in_tree, "current": resolved.tag,
        "equations": _equations(manifest),
        "budget": verdicts(manifest, recorded_figures(manifest)),
        "nodes": _composite_nodes(resolved), "has_pareto": _has_pareto(resolved),
        "pareto_version": version or (manifest.version if resolved.commit else "workspace"),
        "teacher": _link(manifest.provenance.distilled_from),
        "parents": [(p, _link(p)) for p in manifest.provenance.parents],
        "reference_module": _link(manifest.evaluation.reference.module
                                  if manifest.evaluation and manifest.evaluation.reference
                                  else None),
        "lineage": reg.lineage(resolved.exact),
        "derived_from": _link(manifest.provenance.derived_from),
        **_alternatives(reg, resolved),
    }
    return _page(request, "module.html", **context)


def _alternatives(reg: Registry, resolved: Resolved) -> dict[str, Any]:
    """The module's alternatives (same interface) and their Pareto plots, if it has any."""
    from registry.server.plots import pareto_svg

    try:
        found = reg.alternatives(resolved.exact) if resolved.commit else []
    except RegistryError:
        found = []
    if len(found) < 2:
        return {"alternatives": [], "pareto_plots": []}
    plots = [pareto_svg(found, by=by, current=resolved.exact) for by in ("flops", "energy")]
    return {"alternatives": [(a, _link(a.ref)) for a in found],
            "pareto_plots": [plot for plot in plots if plot is not None]}


def pareto_image(request: Request, name: str, version: str | None = None) -> Response:
    reg = _registry(request)
    try:
        data = _resolve(reg, name, version).read(PARETO_FILE)
    except RegistryError as exc:
        return _error_page(request, exc)
    if not data.startswith(PNG_MAGIC):
        return _error_page(request, NotFound(f"{name}: {PARETO_FILE} is not a PNG image"))
    return Response(data, media_type="image/png",
                    headers={"X-Content-Type-Options": "nosniff",
                             "Cache-Control": "public, max-age=60"})


# reading ---------------------------------------------------------------------------


def _registry(request: Request) -> Registry:
    return request.app.state.registry


def _resolve(reg: Registry, name: str, version: str | None) -> Resolved:
    """The version `?version=` names; else the latest, else the working tree's copy."""
    if re.fullmatch(NAME_PATTERN, name) is None:
        raise NotFound(f"no module {name!r}: names are lower-case letters, digits and '-'")
    if version:
        return reg.resolve(f"{name}@{version.strip()[:MAX_QUERY]}")
    if not reg.versions(name) and name in reg.unregistered():
        return reg.resolve(f"{name}@workspace")
    return reg.resolve(name)


def _stages_by_module(reg: Registry,
                      rows: list[VersionRow]) -> dict[str, list[tuple[str, str]]]:
    """{module: [(stage, version)]} of the modules in `rows`; `rows` first, so the index
    is fresh."""
    names = {row.name for row in rows}
    return {module: sorted(stages.items()) for module, stages in reg.stages().items()
            if module in names}


def _link(ref: str | None) -> tuple[str, str | None] | None:
    """(name, version spec) of a recorded reference, for a link; None if it is malformed."""
    if not ref:
        return None
    try:
        parsed = parse_reference(ref)
    except RegistryError:
        return None
    return parsed.name, parsed.spec


def _has_pareto(resolved: Resolved) -> bool:
    try:
        resolved.read(PARETO_FILE)
    except RegistryError:
        return False
    return True


@dataclass(frozen=True)
class EquationView:
    output: str
    text: str
    mathml: Markup | None
    error: str | None = None


def _equations(manifest: Manifest) -> list[EquationView]:
    """Each output's equation as MathML, built from the safe parser's tree (never sympify)."""
    from sympy.printing.mathml import mathml

    from registry.core.expr import parse_expression, symbol

    names = [*manifest.inputs, *manifest.constants]
    views = []
    for output, text in (manifest.equation or {}).items():
        try:
            expr = parse_expression(text, names=names, where=f"equation.{output}")
        except ExpressionError as exc:
            views.append(EquationView(output, text, None, str(exc)))
            continue
        lhs = mathml(symbol(output), printer="presentation")
        rhs = mathml(expr, printer="presentation")
        alt = escape(f"{output} = {text}")
        markup = Markup(f'<math xmlns="{MATHML_NS}" display="block" alttext="{alt}">'
                        f"<mrow>{lhs}<mo>=</mo>{rhs}</mrow></math>")
        views.append(EquationView(output, text, markup))
    return views


def _composite_nodes(resolved: Resolved) -> list[dict[str, Any]]:
    """The nodes of a composite's compose spec: name, module link or inline block."""
    manifest = resolved.manifest
    if manifest.kind != "composite" or manifest.composition is None:
        return []
    from registry.composition.spec import read_spec

    try:
        source = resolved.where(manifest.composition.spec)
        spec = read_spec(resolved.read(manifest.composition.spec), source=source)
    except RegistryError:
        return []
    return [{"name": node, "module": n.module, "link": _link(n.module),
             "mlp": n.mlp, "outputs": list(n.outputs.values())}
            for node, n in spec.nodes.items()]


def _energy_value(manifest: Manifest) -> float:
    energy = manifest.cost.energy_j_per_sample
    return energy.value if energy is not None else float("inf")


# rendering -------------------------------------------------------------------------


def _page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    html = _env.get_template(template).render(root=root, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _error_page(request: Request, exc: RegistryError) -> HTMLResponse:
    from registry.errors import wire_status

    status, _ = wire_status(exc)
    title = "Not found" if status == 404 else "Cannot show this page"
    return _page(request, "error.html", status=status, title=title, message=str(exc))


def _num(value: float | int | None) -> str:
    """Integers with thousands separators, other numbers to 4 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:.4g}"


def _measured(figure: Measured | None) -> str:
    return "—" if figure is None else _num(figure.value)


_env.filters["num"] = _num
_env.filters["measured"] = _measured
_env.filters["link"] = _link
_env.tests["estimate"] = is_estimate
