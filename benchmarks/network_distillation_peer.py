"""A peer on the same recorded data: pykan's KAN + `auto_symbolic` beside our node distillation.

The network-distillation stage records the baseball composite's residual MLP
(inputs vx, vy in m/s, k in 1/m; outputs a_x, a_y in m/s²) and distils it into
an equation module, `baseball-lift`, whose folder keeps a sample of the
recording (`recorded.npz`). Here pykan (Liu et al., Kolmogorov-Arnold
networks) is given the same rows and its own documented workflow, per output:

    KAN(width=[3, 5, 1], grid=3, k=3) → fit (LBFGS, lamb=0.001) → prune → fit
    → auto_symbolic() (its default library) → fit → symbolic_formula()

in float64 on standardised inputs and output (`symbolic_formula`'s `normalizer`
and `output_normalizer` turn the formula back into the raw variables); the last
fit (the tutorials' tuning of the symbolic constants) runs without grid updates
and is dropped if it goes non-finite. Both
formulas are scored on the same held-out recorded rows (nRMSE = RMSE / std of
the recorded output), and checked for dimensional consistency with the
registry's unit checker. pykan knows no units, so its constants carry none.

    .venv/bin/python benchmarks/network_distillation_peer.py \\
        [--recorded modules/baseball-lift/recorded.npz] \\
        [--ours modules/baseball-lift/module.yaml] [--seed 0] [--steps 50]

Writes `benchmarks/results-network-distillation-peer.json`. Needs the `bench`
extra (`pip install -c constraints.txt pykan`). pykan checkpoints every step of
its workflow (`./model/` by default); here it writes them under a temporary
directory, never the cwd. One torch thread; glibc is asked to keep freed memory
(`--plain-malloc` not to), else auto_symbolic's big temporaries cost ~5x in page
faults. pykan's result is not bit-reproducible run to run even with one seed
(`--repeats N` lists N runs). About 2 minutes per run on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.metadata
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import sympy
import torch
import yaml

from registry.core.expr import format_expression, parse_expression, symbol
from registry.core.integrity import sha256_file
from registry.core.units import check_equation_units
from registry.cost.latency import describe_hardware
from registry.errors import RegistryError

INPUTS = {"vx": "m/s", "vy": "m/s", "k": "1/m"}
OUTPUTS = {"a_x": "m/s^2", "a_y": "m/s^2"}
TRUE_LAW = {"a_x": "-0.06*k*vy*sqrt(vx**2 + vy**2)", "a_y": "0.06*k*vx*sqrt(vx**2 + vy**2)"}
MAX_STEPS = 500  # per fit; three fits per output
OUT = Path(__file__).resolve().parent / "results-network-distillation-peer.json"


def load_recording(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        sys.exit(f"{path}: no recording; run the pipeline's network-distillation stage "
                 "(`dvc repro network-distillation`, which writes modules/baseball-lift/"
                 "recorded.npz), or pass --recorded with an .npz of vx, vy, k, a_x, a_y")
    with np.load(path, allow_pickle=False) as loaded:
        missing = [n for n in [*INPUTS, *OUTPUTS] if n not in loaded.files]
        if missing:
            sys.exit(f"{path}: arrays {missing} are missing (it has {loaded.files})")
        columns = {n: np.asarray(loaded[n], dtype=np.float64).reshape(-1)
                   for n in [*INPUTS, *OUTPUTS]}
    rows = {len(c) for c in columns.values()}
    if len(rows) != 1:
        sys.exit(f"{path}: the arrays have different lengths {sorted(rows)}")
    return columns


def nrmse(predicted: np.ndarray, truth: np.ndarray) -> float | None:
    """RMSE over the std of the truth (as `registry.evaluation.compute_metrics`); None when
    some prediction is not finite."""
    predicted = np.broadcast_to(np.asarray(predicted, dtype=np.float64), truth.shape)
    if not np.isfinite(predicted).all():
        return None
    return float(np.sqrt(np.mean((predicted - truth) ** 2)) / np.std(truth))


def evaluate(expr: sympy.Expr, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """`expr` (our own in-process sympy object, never text) on the columns, in float64."""
    names = list(INPUTS)
    function = sympy.lambdify([symbol(n) for n in names], expr, modules="numpy")
    with np.errstate(all="ignore"):
        value = function(*(columns[n] for n in names))
    value = np.asarray(value)
    if np.iscomplexobj(value):
        value = np.where(np.abs(value.imag) > 0, np.nan, value.real)
    return np.broadcast_to(value.astype(np.float64), columns[names[0]].shape)


def units_of(expr: sympy.Expr, output: str) -> dict[str, Any]:
    try:
        check_equation_units(expr, symbols=INPUTS, output=output, output_unit=OUTPUTS[output],
                             where=output)
    except RegistryError as exc:
        return {"consistent": False, "message": str(exc)}
    except Exception as exc:  # a tree the unit walker does not know
        return {"consistent": False, "message": f"{type(exc).__name__}: {exc}"}
    return {"consistent": True}


def as_text(expr: sympy.Expr) -> dict[str, Any]:
    """The formula in the registry's expression grammar, if it fits there (printed and read
    back by the safe parser), else `str(expr)` and why it does not fit."""
    try:
        text = format_expression(expr)
        parse_expression(text, names=list(INPUTS), where="pykan formula")
    except RegistryError as exc:
        return {"formula": str(expr), "in_grammar": False, "outside_grammar": str(exc)}
    return {"formula": text, "in_grammar": True}


def rounded(expr: sympy.Expr, digits: int = 4) -> sympy.Expr:
    """The formula as pykan's tutorials show it (`kan.utils.ex_round`)."""
    return expr.xreplace({a: sympy.Float(round(float(a), digits))
                          for a in expr.atoms(sympy.Float)})


def keep_freed_memory() -> str | None:
    """Ask glibc to keep freed memory instead of returning it to the kernel at once.

    `auto_symbolic` sweeps a (rows × 101 × 101) grid per candidate function per edge: about
    80 MB tensors, hundreds of times. glibc maps each afresh (above its 32 MB dynamic
    ceiling) and unmaps it on free, so most of the time goes to page faults in the kernel
    (measured here: 124 s of auto_symbolic against 26 s with this). Returns
    what was set, None where this is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):
        return None
    return "glibc mallopt: M_MMAP_THRESHOLD = M_TRIM_THRESHOLD = 1 GiB" if ok else None


@contextlib.contextmanager
def float64() -> Iterator[None]:
    """pykan's tutorials run in float64 (`torch.set_default_dtype(torch.float64)`)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def run_pykan(output: str, train: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray], *,
              hidden: int, steps: int, seed: int, workdir: Path) -> dict[str, Any]:
    """pykan's workflow on one output: fit, prune, fit, auto_symbolic, fit, symbolic_formula."""
    from kan import KAN

    names = list(INPUTS)
    x_train = np.stack([train[n] for n in names], axis=1)
    x_test = np.stack([test[n] for n in names], axis=1)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    y_mean, y_std = float(train[output].mean()), float(train[output].std())

    def inputs(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((x - mean) / std, dtype=torch.float64)

    dataset = {"train_input": inputs(x_train),
               "train_label": torch.as_tensor((train[output][:, None] - y_mean) / y_std),
               "test_input": inputs(x_test),
               "test_label": torch.as_tensor((test[output][:, None] - y_mean) / y_std)}

    def predict(model: Any) -> np.ndarray:
        with torch.no_grad():
            return model(dataset["test_input"]).numpy()[:, 0] * y_std + y_mean

    def formula(model: Any) -> sympy.Expr:
        formulas, _ = model.symbolic_formula(
            var=[symbol(n) for n in names], normalizer=[mean.tolist(), std.tolist()],
            output_normalizer=[[y_mean], [y_std]])
        expr = formulas[0]  # pykan's own sympy tree (a bare number when every edge is pruned)
        return expr if isinstance(expr, sympy.Basic) else sympy.Float(float(expr))

    log = io.StringIO()
    result: dict[str, Any] = {}
    start = time.perf_counter()
    with float64(), contextlib.redirect_stdout(log):
        torch.manual_seed(seed)
        model = KAN(width=[len(names), hidden, 1], grid=3, k=3, seed=seed, device="cpu",
                    ckpt_path=str(workdir / output))
        model.fit(dataset, opt="LBFGS", steps=steps, lamb=0.001)
        model = model.prune()
        model.fit(dataset, opt="LBFGS", steps=steps)
        result["spline_nrmse"] = nrmse(predict(model), test[output])
        result["pruned_width"] = [w[0] if isinstance(w, list) else w for w in model.width]
        model.auto_symbolic()  # the default library (kan.utils.SYMBOLIC_LIB)
        symbolic = formula(model)
        # The tutorials' last step: fit the affine constants of the symbolic edges. Without
        # grid updates: the edges are no splines now (and a NaN there fails the grid's lstsq).
        refit = model.fit(dataset, opt="LBFGS", steps=steps, update_grid=False)
        refit_ok = bool(np.isfinite(refit["train_loss"][-1])) and all(
            bool(torch.isfinite(p).all()) for p in model.parameters())
        refitted = formula(model) if refit_ok else None
        result["symbolic_kan_nrmse"] = nrmse(predict(model), test[output])
    seconds = round(time.perf_counter() - start, 2)
    expr = refitted if refitted is not None else symbolic
    predicted = evaluate(expr, test)
    return {
        **as_text(expr),
        "formula_4_digits": str(rounded(expr)),
        "nrmse": nrmse(predicted, test[output]),
        "seconds": seconds,
        "units": units_of(expr, output),
        "non_finite_rows": int((~np.isfinite(predicted)).sum()),
        "refit": ("kept: the constants after the last fit" if refitted is not None else
                  "dropped: the last fit went non-finite; the formula as auto_symbolic left it"),
        "nrmse_before_refit": nrmse(evaluate(symbolic, test), test[output]),
        **result,  # the spline KAN's and the symbolic KAN's own held-out nRMSE, pruned width
        "auto_symbolic": [line.strip() for line in log.getvalue().splitlines()
                          if line.startswith("fixing")],
    }


def load_ours(path: Path) -> dict[str, Any]:
    """Our distilled module: its equations read with the registry's safe parser."""
    if not path.is_file():
        return {"error": f"{path}: not found; run the network-distillation stage or pass --ours"}
    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    constants = manifest.get("constants") or {}
    names = [*manifest.get("inputs", {}), *constants]
    values = {symbol(n): sympy.Float(c["value"]) for n, c in constants.items()}
    equations = {}
    for output, text in (manifest.get("equation") or {}).items():
        expr = parse_expression(text, names=names, where=f"{path}: equation.{output}")
        equations[output] = {"text": text, "expr": expr.xreplace(values)}
    training = (manifest.get("cost") or {}).get("training") or {}
    return {"module": f"{manifest.get('name')}@{manifest.get('version')}",
            "distilled_from": (manifest.get("provenance") or {}).get("distilled_from"),
            "seconds_all_outputs": training.get("duration_s"),
            "cpu_seconds_all_outputs": training.get("cpu_s"), "equations": equations}


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recorded", type=Path,
                        default=Path("modules/baseball-lift/recorded.npz"))
    parser.add_argument("--ours", type=Path, default=Path("modules/baseball-lift/module.yaml"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=50,
                        help=f"LBFGS steps per fit (three fits per output; at most {MAX_STEPS})")
    parser.add_argument("--hidden", type=int, default=5, help="KAN hidden width")
    parser.add_argument("--held-out", type=float, default=0.25,
                        help="fraction of the recorded rows held out for scoring")
    parser.add_argument("--max-train", type=int, default=1000,
                        help="training rows at most (pykan's create_dataset default: 1000; "
                             "auto_symbolic sweeps (rows × 101 × 101) grids per edge)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (one: LBFGS on a small KAN gains nothing from more, "
                             "and a busy machine makes more much slower)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="pykan runs per output, same seed and rows (its fits are not "
                             "bit-reproducible: the first is reported, all are listed)")
    parser.add_argument("--plain-malloc", action="store_true",
                        help="leave glibc's allocator as it is (auto_symbolic ~5x slower)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not 1 <= args.steps <= MAX_STEPS:
        parser.error(f"--steps must be in 1..{MAX_STEPS}")
    if not 1 <= args.repeats <= 5:
        parser.error("--repeats must be in 1..5")
    if not 0.0 < args.held_out < 1.0:
        parser.error("--held-out must be between 0 and 1")
    version("pykan") or sys.exit("pykan is not installed: pip install -c constraints.txt pykan "
                                 "(the `bench` extra)")

    torch.set_num_threads(args.threads)
    allocator = None if args.plain_malloc else keep_freed_memory()
    columns = load_recording(args.recorded)
    rows = len(columns["vx"])
    order = np.random.default_rng(args.seed).permutation(rows)
    n_test = max(1, round(args.held_out * rows))
    test_rows, train_rows = order[:n_test], order[n_test:][:args.max_train]
    train = {n: c[train_rows] for n, c in columns.items()}
    test = {n: c[test_rows] for n, c in columns.items()}
    ours = load_ours(args.ours)

    before = set(os.listdir("."))
    outputs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pykan-") as workdir:
        for output in OUTPUTS:
            runs = []
            for repeat in range(args.repeats):
                print(f"pykan on {output}, run {repeat + 1} of {args.repeats} ...",
                      file=sys.stderr, flush=True)
                try:
                    runs.append(run_pykan(output, train, test, hidden=args.hidden,
                                          steps=args.steps, seed=args.seed,
                                          workdir=Path(workdir) / f"{output}-{repeat}"))
                except Exception as exc:  # report the peer's failure, not crash the comparison
                    runs.append({"error": f"{type(exc).__name__}: {exc}"})
            peer = runs[0]
            if args.repeats > 1:  # the same seed and rows each time
                scores = [r["nrmse"] for r in runs if r.get("nrmse") is not None]
                peer = {**peer, "repeats": [
                    {k: r.get(k) for k in ("formula", "nrmse", "seconds", "in_grammar", "error")
                     if k in r} | {"units_consistent": (r.get("units") or {}).get("consistent")}
                    for r in runs],
                    "nrmse_range": [min(scores), max(scores)] if scores else None}
            entry: dict[str, Any] = {"pykan": peer}
            if "equations" in ours and output in ours["equations"]:
                expr = ours["equations"][output]["expr"]
                entry["ours"] = {"formula": ours["equations"][output]["text"],
                                 "nrmse": nrmse(evaluate(expr, test), test[output]),
                                 "units": units_of(expr, output)}
            else:
                entry["ours"] = {"error": ours.get("error", f"no equation for {output}")}
            law = parse_expression(TRUE_LAW[output], names=list(INPUTS))
            entry["true_law"] = {"formula": TRUE_LAW[output],
                                 "nrmse": nrmse(evaluate(law, test), test[output]),
                                 "note": "the law itself against the recorded node: the "
                                         "node's own error, a floor for any formula"}
            outputs[output] = entry
    written = sorted(set(os.listdir(".")) - before)

    report = {
        "benchmark": "network distillation, a peer on the same recorded data (pykan)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "recording": {"path": str(args.recorded), "sha256": sha256_file(args.recorded),
                      "rows": rows, "train_rows": len(train_rows), "held_out_rows": n_test,
                      "seed": args.seed},
        "peer": {
            "tool": "pykan", "version": version("pykan"),
            "workflow": [f"KAN(width=[3, {args.hidden}, 1], grid=3, k=3, seed={args.seed}), "
                         "float64, standardised inputs and output",
                         f"fit(opt='LBFGS', steps={args.steps}, lamb=0.001)", "prune()",
                         f"fit(opt='LBFGS', steps={args.steps})",
                         "auto_symbolic() with its default library",
                         f"fit(opt='LBFGS', steps={args.steps}, update_grid=False), kept "
                         "unless it goes non-finite",
                         "symbolic_formula(var, normalizer, output_normalizer)"],
            "units_note": "pykan knows no units: its affine constants (inside sin, exp, "
                          "powers, and added to terms) carry none, so its formula is checked "
                          "here as written, with vx, vy in m/s and k in 1/m",
            "reproducibility_note": "same seed, same rows, yet not bit-reproducible run to run: "
                                    "torch.linalg.lstsq (MKL) in pykan's grid updates differs "
                                    "in the last bits between runs, and LBFGS, prune and "
                                    "auto_symbolic's choice of functions amplify that (see "
                                    "--repeats)",
            "grammar_note": "a formula outside the registry's expression grammar (sign, "
                            "atanh, or over its size limits) could not become a registry module",
            "files_written_to_cwd": written,
        },
        "ours": {k: v for k, v in ours.items() if k != "equations"} | {
            "path": str(args.ours),
            "note": "our distiller ran on the whole recording, of which recorded.npz is a "
                    "sample: the held-out rows are held out from pykan only"},
        "outputs": outputs,
        # the reported (first) run of each output
        "pykan_seconds_all_outputs": round(sum(o["pykan"].get("seconds", 0.0)
                                               for o in outputs.values()), 2),
        "repeats": args.repeats,
        "versions": {"pykan": version("pykan"), "torch": torch.__version__,
                     "sympy": sympy.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "hardware": describe_hardware(),
        "torch_threads": torch.get_num_threads(),
        "allocator": allocator or "as it is (glibc defaults)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=_json) + "\n", encoding="utf-8")
    for output, entry in outputs.items():
        peer, mine = entry["pykan"], entry["ours"]
        spread = (f", nRMSE over {args.repeats} runs {peer['nrmse_range']}"
                  if peer.get("nrmse_range") else "")
        print(f"{output}: pykan {peer.get('formula', peer.get('error'))}\n"
              f"      nRMSE {_fmt(peer.get('nrmse'))} in {peer.get('seconds')} s, units "
              f"{(peer.get('units') or {}).get('consistent')}, in grammar "
              f"{peer.get('in_grammar')}{spread}\n"
              f"   ours {mine.get('formula', mine.get('error'))}\n"
              f"      nRMSE {_fmt(mine.get('nrmse'))}, units "
              f"{(mine.get('units') or {}).get('consistent')}")
    print(f"wrote {args.out}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _json(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


if __name__ == "__main__":
    main()
