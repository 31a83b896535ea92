"""A rational law's numerator solved on its own (compositional search): P(x)/Q(x, z)
found as a fit where P depends on fewer groups than Q.

The rational solver writes every part of a law as a polynomial: the Doppler factor
√(1 − β²)·ω/(1 + β·cos θ) comes out as ω·(1.0007 − 0.53·β²)/(1 + β·cos θ), its
numerator a Taylor stand-in for the root, inside the teacher's error. With Q fixed by
that fit, P's values are known at every point (t·Q); P is a function of β alone, which
the quick solvers reach on P's transforms (P² = 1 − β², a power law above a floor).
P/Q is then refitted and judged against the target."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import sympy

from registry.distillation.candidates import evaluate, nrmse
from registry.distillation.quick import offset_power_law, power_law
from registry.distillation.refine import refine_constants
from registry.distillation.transforms import _back, _stretch, _transforms

__all__ = ["numerator_laws"]


def numerator_laws(expr: sympy.Expr, values: Mapping[str, np.ndarray], t: np.ndarray,
                   tolerance: float, *, deadline: float) -> list[sympy.Expr]:
    """Laws P'/Q for a rational fit `expr` = P/Q of `t`, where P uses fewer of `values`
    than the whole and is more than one term: P' is a power law (above a floor) of P or of
    a transform of P. Each one refitted; those within `tolerance` (t's nRMSE) returned."""
    numerator, denominator = sympy.fraction(expr)
    used = sorted(s.name for s in numerator.free_symbols)
    if (denominator == 1 or not used or len(used) >= len(values)
            or len(sympy.Add.make_args(sympy.expand(numerator))) < 2):
        return []
    with np.errstate(all="ignore"):
        q = evaluate(denominator, values)
        p = t * q
    if not np.all(np.isfinite(p)) or float(np.std(p)) == 0:
        return []
    # The teacher's error of t, carried to P = t·Q and relative to P's own spread.
    with np.errstate(all="ignore"):
        ratio = float(np.std(t) * np.sqrt(np.mean(np.square(q))) / np.std(p))
    loose = tolerance * (ratio if np.isfinite(ratio) and ratio > 0 else 1.0)
    parts = {n: values[n] for n in used}
    sign = 1.0 if np.all(p > 0) else -1.0
    laws: list[sympy.Expr] = []
    for transform in [None, *_transforms(p)]:
        if time.monotonic() > deadline:
            break
        with np.errstate(all="ignore"):
            target = p if transform is None else transform.forward(p)
        if not np.all(np.isfinite(target)):
            continue
        bound = 3 * loose * (1.0 if transform is None else _stretch(transform, p))
        for fit in (power_law(parts, target), offset_power_law(parts, target, tolerance=bound)):
            if fit is None or fit.nrmse > bound:
                continue
            found = fit.expr if transform is None else _back(transform, fit.expr, sign)
            if found is None:
                continue
            # The back-transform's ±1.0 (√c·√(0.99994 − 1.0·β²)) is exact: refitted as well,
            # the three constants would trade against one another.
            found = found.xreplace({f: sympy.Integer(round(float(f)))
                                    for f in found.atoms(sympy.Float) if abs(float(f)) == 1})
            law = refine_constants(found / denominator, values, t, deadline=deadline)
            if nrmse(evaluate(law, values), t) < tolerance:
                laws.append(law)
    return laws
