"""Inline SVG scatter plots for the pages: accuracy against cost, Pareto front drawn.

Built here rather than by a plotting library, so a page stays one request with no
script (the pages' Content-Security-Policy allows none). Every number is formatted
by Python and every label escaped (`markupsafe.escape`): no manifest text reaches
the markup raw.

Example:
    >>> pareto_svg(alternatives, by="flops", title="nRMSE against FLOPs per sample")
    Markup('<svg ...')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from registry.alternatives import Alternative

__all__ = ["pareto_svg"]

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 230, 28, 44
AXIS_LABEL = {"flops": "FLOPs per sample", "energy": "modeled energy per sample (J)",
              "latency": "latency per sample (ns)"}


def _log_range(values: Sequence[float]) -> tuple[float, float]:
    low, high = math.log10(min(values)), math.log10(max(values))
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = (high - low) * 0.08
    return low - pad, high + pad


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def pareto_svg(alternatives: Sequence[Alternative], *, by: str, current: str) -> Markup | None:
    """nRMSE (log) against `by` (log) for the alternatives with both figures; the Pareto
    front joined by a line, the `current` module ringed. None when fewer than two points."""
    from registry.alternatives import pareto_front

    numbers = {a.ref: i for i, a in enumerate(alternatives, start=1)}  # the same in every plot
    points = [a for a in alternatives if a.nrmse and a.nrmse > 0 and (a.figure(by) or 0) > 0]
    if len(points) < 2:
        return None
    xs = [float(a.figure(by) or 0) for a in points]
    ys = [float(a.nrmse or 0) for a in points]
    (x0, x1), (y0, y1) = _log_range(xs), _log_range(ys)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(value: float) -> float:
        return LEFT + (math.log10(value) - x0) / (x1 - x0) * plot_w

    def py(value: float) -> float:
        return TOP + (1 - (math.log10(value) - y0) / (y1 - y0)) * plot_h

    title = f"nRMSE against {AXIS_LABEL[by]}"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="pareto" role="img" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
             f'stroke="#999"/>']
    for decade in range(math.ceil(x0), math.floor(x1) + 1):
        x = px(10.0 ** decade)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP + plot_h}" x2="{x:.1f}" y2="{TOP + plot_h + 4}"'
                     f' stroke="#999"/><text x="{x:.1f}" y="{TOP + plot_h + 16}" '
                     f'text-anchor="middle">1e{decade}</text>')
    for decade in range(math.ceil(y0), math.floor(y1) + 1):
        y = py(10.0 ** decade)
        parts.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="#999"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">1e{decade}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                 f'{escape(AXIS_LABEL[by])} (log)</text>'
                 f'<text x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">nRMSE (log)</text>')
    by_ref = {a.ref: a for a in points}
    front = [by_ref[r] for r in pareto_front(points, by=by)]
    if len(front) > 1:
        path = " ".join(f"{px(float(a.figure(by) or 0)):.1f},{py(float(a.nrmse or 0)):.1f}"
                        for a in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2a7" stroke-width="1.5"/>')
    on_front = {a.ref for a in front}
    for row, a in enumerate(points):  # numbered; the key at the right names them
        number = numbers[a.ref]
        x, y = px(float(a.figure(by) or 0)), py(float(a.nrmse or 0))
        colour = "#2a7" if a.ref in on_front else "#467"
        label = f"{a.ref}: nRMSE {_fmt(a.nrmse or 0)}, {_fmt(float(a.figure(by) or 0))}"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
                     f'<title>{escape(label)}</title></circle>'
                     f'<text x="{x + 6:.1f}" y="{y - 5:.1f}" fill="#333">{number}</text>')
        if a.ref == current:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" stroke="#c53" '
                         'stroke-width="2"/>')
        key_y = TOP + 6 + 14 * row
        weight = ' font-weight="bold"' if a.ref == current else ""
        parts.append(f'<text x="{WIDTH - RIGHT + 10}" y="{key_y}" fill="{colour}"{weight}>'
                     f'{number} {escape(a.name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # safe: numbers formatted here, every text escaped above
