"""The Feynman symbolic-regression benchmark: our distiller against peers, in one run.

For each equation of `../shared/data/feynman/FeynmanEquations.csv` (`--table
feynman`, the default), of the 20 harder `BonusEquations.csv` (`--table bonus`) or
both (units from `units.csv`): sample it over its ranges and run, with the same
time budget,
- ours, oracle mode: the distiller queries the exact formula (float64);
- ours, teacher mode (`--teacher`): first a 64×64 tanh MLP is trained on 10⁴
  samples (8000 for training: Adam, then full-batch L-BFGS; 2000 for its test
  nRMSE), then the distiller queries the MLP (tolerance: twice its test nRMSE);
  `--teacher-fit careful` trains it as a careful user would: twice the Adam steps and
  three times the L-BFGS ones, and on log|y| where the target keeps one sign and spans
  more than `LOG_SPAN` (the network answers ±exp of its output);
- peers (`--peers`): gplearn and pyoperon (PyPI) on 10⁴ samples of the formula,
  without units; their models get the same constant snapping as ours.
Recovery is decided symbolically: the difference with the true formula
simplifies to 0, or the ratio to a constant within 1e-6 of 1.

`--noise σ` trains the teacher (and feeds the peers) on targets with Gaussian
noise of σ × the target's standard deviation (SRBench's protocol); the teacher's
error, and so the distiller's tolerance, is then measured against noisy held-out
targets, as a user would measure it. `--jobs N` runs one equation per worker
process (the registry's task model, `registry.jobs`: a Dask LocalCluster; `--cluster
tcp://HOST:8786` sends the same tasks to a running scheduler). A method that fails on an
equation is a row with its reason (`<method>_error`), never a crash;
`<method>_distill_seconds` is the distiller's own time against its budget (teacher
training excluded), `<method>_budget` where its budget went, `<method>_tolerance` the
tolerance the solver worked to and `<method>_found_by` the solver stage that found the
chosen law.

    .venv/bin/pip install -e '.[bench]'      # the peers
    .venv/bin/python benchmarks/feynman.py --subset 20 --budget-s 30 --peers --csv out.csv
    .venv/bin/python benchmarks/feynman.py --table bonus --teacher --jobs 2 --csv bonus.csv

Peer models are parsed back to sympy through our own whitelist parser.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import sympy
import torch

from registry.core.expr import parse_expression
from registry.distillation import distill
from registry.distillation.snapping import snap_constants
from registry.errors import RegistryError
from registry.nn.equation import compile_expression

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "feynman"
TABLES = {"feynman": "FeynmanEquations.csv", "bonus": "BonusEquations.csv"}
_RENAMES = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "ln": "log"}
_BASE = ["m", "s", "kg", "K", "V"]
LBFGS_STEPS = 500  # full-batch refinement of the teacher after Adam
# The teacher fits: steps of Adam, of L-BFGS, and whether a one-signed target spanning
# decades is learnt as log|y| (`--teacher-fit`).
TEACHER_FITS = {"plain": (3000, LBFGS_STEPS, False), "careful": (6000, 3 * LBFGS_STEPS, True)}
LOG_SPAN = 100.0  # max|y| ÷ min|y| from which `careful` learns log|y|


class LogTeacher(torch.nn.Module):
    """A network trained on log|y|, answering `sign` × exp of its output."""

    def __init__(self, net: torch.nn.Module, sign: float) -> None:
        super().__init__()
        self.net, self.sign = net, sign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sign * torch.exp(self.net(x))


def load_units(path: Path) -> dict[str, str]:
    units = {}
    with path.open(encoding="utf-8-sig") as handle:
        for row in csv.reader(handle):
            if not row or not row[0] or row[0] == "Variable":
                continue
            powers = [float(v) for v in row[2:7]]
            text = " ".join(f"{b}^{p:g}" for b, p in zip(_BASE, powers, strict=True) if p)
            units[row[0]] = text or "1"
    return units


def load_table(table: str) -> list[dict[str, Any]]:
    """The equations of `table` (feynman, bonus, or both)."""
    names = list(TABLES) if table == "both" else [table]
    return [{**eq, "table": name} for name in names
            for eq in load_equations(DATA / TABLES[name])]


def load_equations(path: Path) -> list[dict[str, Any]]:
    out = []
    with path.open(encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            if not row.get("Filename"):
                continue
            names = [row[f"v{i}_name"] for i in range(1, 11) if row.get(f"v{i}_name")]
            ranges = {row[f"v{i}_name"]: (float(row[f"v{i}_low"]), float(row[f"v{i}_high"]))
                      for i in range(1, 11) if row.get(f"v{i}_name")}
            formula = row["Formula"]
            for old, new in _RENAMES.items():
                formula = re.sub(rf"\b{old}\b", new, formula)
            out.append({"id": row["Filename"], "output": row["Output"], "formula": formula,
                        "names": names, "ranges": ranges,
                        "truth": parse_expression(formula, names=names)})
    return out


def oracle(truth: sympy.Expr, names: list[str]) -> Any:
    compiled = compile_expression(truth)

    def fn(x: torch.Tensor) -> torch.Tensor:
        env = {n: x[:, i].double() for i, n in enumerate(names)}
        value = compiled(env)
        value = value if isinstance(value, torch.Tensor) else torch.full((len(x),), value)
        return value.reshape(-1, 1)

    return fn


def recovered(found: sympy.Expr | None, truth: sympy.Expr, timeout_s: float = 20.0,
              points: list[dict[str, float]] | None = None) -> bool:
    """Symbolic equivalence (difference 0, or constant ratio 1, also after rewriting in
    exponentials; or equal squares and the same, nonzero sign at each of `points`, drawn
    from the ranges), checked in a subprocess so that a slow `simplify` cannot stall the
    run.

    Equal squares: `c·m/√(c² − v²)` is `m/√(1 − v²/c²)` only where the radicands
    keep their sign, which sympy cannot know. a² ≡ b² means a = ±b at every point; the
    sign is checked at the midpoint and 16 random points of the ranges (which also
    catches |x − 2| against x − 2 on a range across 2).
    """
    if found is None:
        return False
    code = ("import sympy, sys, json\n"
            "from registry.core.expr import parse_expression\n"
            "names = sys.argv[3].split(',')\n"
            "points = json.loads(sys.argv[4])\n"
            "a = parse_expression(sys.argv[1], names=names)\n"
            "b = parse_expression(sys.argv[2], names=names)\n"
            "free = a.free_symbols | b.free_symbols\n"
            "pos = {s: sympy.Symbol(s.name, positive=True) for s in free}\n"
            "subs = [{pos[s]: p[s.name] for s in free if s.name in p} for p in points]\n"
            "a, b = a.xreplace(pos), b.xreplace(pos)  # the benchmark's ranges are positive\n"
            "d = sympy.simplify(a - b)\n"
            "r = sympy.simplify(a / b)\n"
            "ok = d == 0 or (r.is_number and abs(complex(r) - 1) < 1e-6)\n"
            "if not ok:  # tanh(log x), cosh(..): the same function in exponentials\n"
            "    ok = sympy.simplify((a - b).rewrite(sympy.exp)) == 0\n"
            "if not ok and subs and all(len(at) == len(free) for at in subs):\n"
            "    same_sign = all(complex(a.evalf(subs=at)).real * complex(b.evalf(subs=at)).real\n"
            "                    > 0 for at in subs)\n"
            "    square = sympy.simplify(a**2 - b**2)\n"
            "    if square != 0:\n"
            "        square = sympy.simplify((a**2 - b**2).rewrite(sympy.exp))\n"
            "    ok = same_sign and square == 0\n"
            "print('yes' if ok else 'no')")
    from registry.core.expr import format_expression

    names = sorted({s.name for s in (found.free_symbols | truth.free_symbols)})
    try:
        out = subprocess.run([sys.executable, "-c", code, format_expression(found),
                              format_expression(truth), ",".join(names) or "x",
                              json.dumps(points or [])],
                             capture_output=True, text=True, timeout=timeout_s).stdout
    except subprocess.TimeoutExpired:
        return False
    return out.strip() == "yes"


def sign_points(eq: dict[str, Any], n: int = 16) -> list[dict[str, float]]:
    """The midpoint of the equation's ranges and `n` random points in them."""
    rng = np.random.default_rng(0)
    mid = {v: (lo + hi) / 2 for v, (lo, hi) in eq["ranges"].items()}
    return [mid, *({v: float(rng.uniform(lo, hi)) for v, (lo, hi) in eq["ranges"].items()}
                   for _ in range(n))]


def run_ours(eq: dict[str, Any], units: dict[str, str], budget: float, *,
             teacher: bool, noise: float = 0.0, fit: str = "plain") -> dict[str, Any]:
    names = eq["names"]
    fn = oracle(eq["truth"], names)
    tolerance, teacher_nrmse = 1e-5, None
    start = time.monotonic()
    if teacher:
        fn, teacher_nrmse = train_teacher(fn, eq, noise=noise, fit=fit)
        tolerance = max(2 * teacher_nrmse, 1e-5)
    inputs = {n: (units.get(n), eq["ranges"][n]) for n in names}
    began = time.monotonic()
    try:
        result = distill(fn, inputs=inputs, outputs={eq["output"]: units.get(eq["output"])},
                         budget_s=budget, tolerance=tolerance, double=not teacher)
    except RegistryError as exc:
        return {"found": None, "error": str(exc)[:200], "seconds": time.monotonic() - start,
                "distill_seconds": time.monotonic() - began, "teacher_nrmse": teacher_nrmse}
    chosen = result.chosen.get(eq["output"])
    return {"found": chosen.expr if chosen else None, "nrmse": chosen.nrmse if chosen else None,
            "teacher_nrmse": teacher_nrmse, "seconds": time.monotonic() - start,
            "distill_seconds": time.monotonic() - began,
            "budget": result.budget_use.get(eq["output"], ""),
            "tolerance": result.structure_tests.get(eq["output"], {}).get("tolerance", ""),
            "found_by": chosen.method if chosen else ""}


def noisy(y: torch.Tensor, noise: float, seed: int = 1) -> torch.Tensor:
    """`y` plus Gaussian noise of `noise` × its standard deviation (SRBench)."""
    if noise <= 0:
        return y
    generator = torch.Generator().manual_seed(seed)
    scale = float(y.std()) * noise
    return y + torch.randn(y.shape, generator=generator, dtype=y.dtype) * scale


def train_teacher(fn: Any, eq: dict[str, Any], n: int = 10_000, noise: float = 0.0,
                  fit: str = "plain") -> tuple[Any, float]:
    """A 64×64 MLP trained on `fn` (its targets noisy with `noise`; `fit` one of
    `TEACHER_FITS`); its test nRMSE against the (noisy) held-out targets, as a user who
    has only measurements would see it."""
    from registry.nn.network import NetworkModule

    adam_steps, lbfgs_steps, log_ok = TEACHER_FITS[fit]
    rng = np.random.default_rng(0)
    x = np.stack([rng.uniform(*eq["ranges"][v], n) for v in eq["names"]], axis=1)
    xt = torch.as_tensor(x, dtype=torch.float64)
    y = noisy(fn(xt), noise).float()
    xf = xt.float()
    size = y[:8000].abs()
    one_sign = bool((y[:8000] > 0).all() or (y[:8000] < 0).all())
    use_log = log_ok and one_sign and float(size.max() / size.min()) > LOG_SPAN
    target = torch.log(y.abs()) if use_log else y
    torch.manual_seed(0)
    net = NetworkModule("mlp", {"hidden": [64, 64]}, inputs=eq["names"], outputs=["y"])
    net.set_standardisation(xf[:8000], target[:8000])
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=adam_steps)
    for _ in range(adam_steps):
        idx = torch.randint(0, 8000, (256,))
        loss = torch.mean(((net(xf[idx]) - target[idx]) / net.out_scale) ** 2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    # Then full-batch L-BFGS on the same 8000 samples, as one would finish training a
    # small smooth network: it takes the error from about 1e-2 to a few 1e-3.
    lbfgs = torch.optim.LBFGS(net.parameters(), lr=1.0, max_iter=lbfgs_steps,
                              history_size=50, line_search_fn="strong_wolfe",
                              tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = torch.mean(((net(xf[:8000]) - target[:8000]) / net.out_scale) ** 2)
        loss.backward()
        return loss

    lbfgs.step(closure)
    net.eval()  # safe: torch.nn.Module.eval (inference mode), not Python's eval
    teacher: torch.nn.Module = LogTeacher(net, float(torch.sign(y[0]))) if use_log else net
    with torch.no_grad():
        err = torch.sqrt(torch.mean((teacher(xf[8000:]) - y[8000:]) ** 2)) / y[8000:].std()
    return teacher, float(err)


def run_peer(peer: str, eq: dict[str, Any], budget: float, noise: float = 0.0) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    names = eq["names"]
    x = np.stack([rng.uniform(*eq["ranges"][v], 10_000) for v in names], axis=1)
    y = noisy(oracle(eq["truth"], names)(torch.as_tensor(x)), noise).numpy()[:, 0]
    start = time.monotonic()
    try:
        text = _fit_peer(peer, x, y, budget)
        found = _parse_peer(peer, text, names)
        # The same constant snapping our distiller applies, so recovery is judged alike.
        data = {n: x[:2000, i] for i, n in enumerate(names)}
        found = snap_constants(found, data, y[:2000], tolerance=max(1e-5, 2 * noise))
    except Exception as exc:
        return {"found": None, "error": f"{type(exc).__name__}: {exc}"[:200],
                "seconds": time.monotonic() - start}
    return {"found": found, "seconds": time.monotonic() - start}


def _fit_peer(peer: str, x: np.ndarray, y: np.ndarray, budget: float) -> str:
    if peer == "pyoperon":
        from pyoperon.sklearn import SymbolicRegressor

        model = SymbolicRegressor(max_time=max(1, int(budget)), random_state=0, n_threads=2)
        model.fit(x, y)
        return str(model.get_model_string(model.model_, 12))
    from gplearn.genetic import SymbolicRegressor as GP

    # gplearn has no time limit: generations are added until the budget is spent.
    model = GP(population_size=1000, generations=1, warm_start=True, random_state=0,
               function_set=("add", "sub", "mul", "div", "sqrt", "log", "sin", "cos", "neg",
                             "inv"), n_jobs=1)
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline and model.generations <= 200:
        model.fit(x, y)
        model.set_params(generations=model.generations + 1)
    return str(model._program)


_GPLEARN = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def _parse_peer(peer: str, text: str, names: list[str]) -> sympy.Expr:
    if peer == "gplearn":
        text = _gplearn_infix(text)
        for i, name in enumerate(names):
            text = re.sub(rf"\bX{i}\b", name, text)
    else:
        text = text.replace("^", "**")
        for i, name in enumerate(names):
            text = re.sub(rf"\bX{i + 1}\b", name, text)
    return parse_expression(text, names=names)


def _gplearn_infix(text: str) -> str:
    """gplearn prints prefix calls (`add(X0, mul(X1, 2.0))`): rewrite to infix text."""
    import ast

    tree = ast.parse(text, mode="eval").body

    def walk(node: ast.AST) -> str:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = [walk(a) for a in node.args]
            op = node.func.id
            if op in _GPLEARN:
                return f"({args[0]} {_GPLEARN[op]} {args[1]})"
            if op == "neg":
                return f"(-{args[0]})"
            if op == "inv":
                return f"(1/{args[0]})"
            if op in ("sqrt", "log"):  # gplearn's protected versions: on |x|
                return f"{op}(abs({args[0]}))"
            return f"{op}({args[0]})"
        return ast.unparse(node)

    return walk(tree)


def rescore(path: Path) -> None:
    """Recompute `*_recovered` from the stored equations (after a change to the check)."""
    truths = {eq["id"]: eq for eq in load_table("both")}
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    methods = [k.removesuffix("_equation") for k in rows[0] if k.endswith("_equation")]
    for row in rows:
        eq = truths[row["id"]]
        for method in methods:
            text = row[f"{method}_equation"]
            found = parse_expression(text, names=eq["names"]) if text else None
            row[f"{method}_recovered"] = recovered(found, eq["truth"], points=sign_points(eq))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summarise(rows, methods, budget=None)


def summarise(rows: list[dict[str, Any]], methods: list[str], budget: float | None) -> None:
    print(f"\n{len(rows)} equations" + (f", budget {budget:g} s each" if budget else ""))
    print("| method | recovered | median s | p90 s |")
    print("| --- | ---: | ---: | ---: |")
    for method in methods if rows else []:
        times = sorted(float(r[f"{method}_seconds"]) for r in rows)
        p90 = times[min(len(times) - 1, math.ceil(0.9 * len(times)) - 1)]
        ok = sum(str(r[f"{method}_recovered"]) == "True" for r in rows)
        print(f"| {method} | {ok}/{len(rows)} | {statistics.median(times):.1f} | {p90:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=0, help="only the first N equations")
    parser.add_argument("--shard", default="", help="I/N: every N-th equation from the I-th "
                        "(run N shards side by side, then merge with --merge)")
    parser.add_argument("--merge", type=Path, nargs="*", default=None,
                        help="merge these shard CSVs into --csv and print the summary")
    parser.add_argument("--ids", default="", help="only these equations (comma-separated)")
    parser.add_argument("--table", choices=["feynman", "bonus", "both"], default="feynman")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="σ: the teacher's (and peers') targets get N(0, σ·std) noise")
    parser.add_argument("--jobs", type=int, default=1, help="equations run side by side (a "
                        "Dask LocalCluster of worker processes)")
    parser.add_argument("--cluster", default=None, help="run the equations on this Dask "
                        "scheduler (tcp://HOST:8786; default $REGISTRY_DASK_SCHEDULER)")
    parser.add_argument("--budget-s", type=float, default=120.0)
    parser.add_argument("--teacher", action="store_true", help="also run teacher mode")
    parser.add_argument("--teacher-fit", choices=sorted(TEACHER_FITS), default="plain",
                        help="how the teacher is trained (careful: longer, and on log|y| "
                        "for one-signed targets spanning decades)")
    parser.add_argument("--no-oracle", action="store_true",
                        help="skip oracle mode (e.g. a teacher-only run)")
    parser.add_argument("--peers", nargs="*", default=None,
                        help="peers to run (gplearn pyoperon); none given: both")
    parser.add_argument("--csv", type=Path, default=Path("benchmarks/results-feynman.csv"))
    parser.add_argument("--rescore", action="store_true",
                        help="only recompute the recovered columns of --csv")
    args = parser.parse_args()
    if args.rescore:
        rescore(args.csv)
        return
    if args.merge:
        merged: list[dict[str, Any]] = []
        for part in args.merge:
            with part.open(newline="") as handle:
                merged += list(csv.DictReader(handle))
        order = {eq["id"]: i for i, eq in enumerate(load_table("both"))}
        merged.sort(key=lambda r: order.get(r["id"], len(order)))
        write_csv(args.csv, merged)
        shown = [m for m in ("oracle", "teacher", "gplearn", "pyoperon")
                 if f"{m}_recovered" in merged[0]]
        for row in merged:
            for m in shown:
                row[f"{m}_recovered"] = row[f"{m}_recovered"] == "True"
        summarise(merged, shown, budget=None)
        return
    equations = load_table(args.table)
    if args.subset:
        equations = equations[: args.subset]
    if args.ids:
        wanted = set(args.ids.split(","))
        equations = [eq for eq in equations if eq["id"] in wanted]
    if args.shard:  # after --ids, so that the shards split the chosen equations
        index, count = (int(v) for v in args.shard.split("/"))
        equations = equations[index - 1::count]
    peers = [] if args.peers is None else (args.peers or ["gplearn", "pyoperon"])
    methods = [*([] if args.no_oracle else ["oracle"]), *(["teacher"] if args.teacher else []),
               *peers]
    work = [(eq["id"], eq["table"], methods, args.budget_s, args.noise, args.jobs > 1,
             args.teacher_fit) for eq in equations]
    rows: list[dict[str, Any]] = []
    order = {eq["id"]: i for i, eq in enumerate(equations)}

    def done(row: dict[str, Any]) -> None:
        rows.append(row)
        rows.sort(key=lambda r: order[r["id"]])
        print(row["id"], {m: row[f"{m}_recovered"] for m in methods}, flush=True)
        write_csv(args.csv, rows)  # after every equation: a long run killed keeps its rows

    if args.jobs > 1 or args.cluster:
        # The registry's task model (Dask): a local cluster of --jobs worker processes or
        # the scheduler --cluster names; the task by its module's name, not __main__'s.
        import feynman as importable

        from registry.jobs import run_tasks

        def arrived(result: Any) -> None:
            done(result.value if result.ok else lost_row(work[result.index], result.error))

        run_tasks(importable.run_equation, work, jobs=args.jobs, cluster=args.cluster,
                  on_result=arrived, preload=("torch", "sympy", "scipy", "registry.distillation"))
    else:
        for item in work:
            done(run_equation(item))
    summarise(rows, methods, budget=args.budget_s)


Work = tuple[str, str, list[str], float, float, bool, str]


def run_equation(item: Work) -> dict[str, Any]:
    """Every method on one equation: a row (a method that fails is a reason, not a crash)."""
    from registry.core.expr import format_expression

    eq_id, table, methods, budget, noise, alone, fit = item
    if alone:  # one worker per core: torch must not spawn threads of its own
        torch.set_num_threads(1)
    eq = next(e for e in load_table(table) if e["id"] == eq_id)
    units = load_units(DATA / "units.csv")
    row: dict[str, Any] = {"id": eq["id"], "table": table, "formula": eq["formula"],
                           "n_vars": len(eq["names"]), "budget_s": budget, "noise": noise}
    if "teacher" in methods and fit != "plain":
        row["teacher_fit"] = fit
    for method in methods:
        started = time.monotonic()
        try:
            if method in ("oracle", "teacher"):
                res = run_ours(eq, units, budget, teacher=method == "teacher",
                               noise=noise if method == "teacher" else 0.0, fit=fit)
            else:
                res = run_peer(method, eq, budget, noise=noise)
        except Exception as exc:  # a crash of a method is a result with its reason
            last = traceback.extract_tb(exc.__traceback__)[-1]
            res = {"found": None, "seconds": time.monotonic() - started,
                   "error": f"{type(exc).__name__}: {exc} ({Path(last.filename).name}:"
                            f"{last.lineno})"[:300]}
        found = res.get("found")
        row[f"{method}_recovered"] = recovered(found, eq["truth"], points=sign_points(eq))
        row[f"{method}_seconds"] = round(res["seconds"], 2)
        row[f"{method}_equation"] = format_expression(found) if found is not None else ""
        row[f"{method}_error"] = res.get("error", "")
        if "distill_seconds" in res:
            row[f"{method}_distill_seconds"] = round(res["distill_seconds"], 2)
            row[f"{method}_budget"] = res.get("budget", "")
            row[f"{method}_tolerance"] = res.get("tolerance", "")
            row[f"{method}_found_by"] = res.get("found_by", "")
        if res.get("teacher_nrmse") is not None:
            row["teacher_nrmse"] = res["teacher_nrmse"]
    return row


def lost_row(item: Work, error: str) -> dict[str, Any]:
    """The row of an equation whose worker died twice: every method failed, with why."""
    eq_id, table, methods, budget, noise, _, _ = item
    eq = next(e for e in load_table(table) if e["id"] == eq_id)
    row: dict[str, Any] = {"id": eq_id, "table": table, "formula": eq["formula"],
                           "n_vars": len(eq["names"]), "budget_s": budget, "noise": noise}
    for method in methods:
        row.update({f"{method}_recovered": False, f"{method}_seconds": 0.0,
                    f"{method}_equation": "", f"{method}_error": error[:300]})
    return row


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


if __name__ == "__main__":
    main()
