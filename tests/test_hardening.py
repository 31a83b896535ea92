"""Findings of the hardening probe (issue 13) that are fixed, each kept fixed by a test.

1. NaN passed the accuracy gate: `max(0.0, nan)` kept 0.0, so a module that is
   NaN over its whole range was recorded with rmse 0 and r² 1.
2. A non-ASCII digit substituted a pin: `1١.0.0` (U+0661) was read as 11.0.0,
   because `\\d` in a Python regex (and in pydantic's pattern engine) matches
   every script's digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from registry.errors import ManifestError, NotFound

NAN_MODULE = {
    "schema": 1, "name": "nan-root", "version": "1.0.0", "kind": "equation",
    "summary": "NaN over its whole declared range",
    "inputs": {"x": {"unit": "1", "range": [0.0, 1.0]}},
    "outputs": {"y": {"unit": "1"}},
    "equation": {"y": "sqrt(x - 5)"},
    "evaluation": {"reference": {"equation": {"y": "x"}}},
    "budget": {"max_rmse": 0.001, "min_r2": 0.999},
}


def _write(repo: Path, data: dict) -> Path:
    folder = repo / "modules" / data["name"]
    folder.mkdir(parents=True)
    (folder / "module.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def test_a_module_that_is_nan_over_its_range_does_not_register(reg, repo: Path) -> None:
    folder = _write(repo, NAN_MODULE)
    before = (folder / "module.yaml").read_bytes()
    with pytest.raises(ManifestError, match=r"output `y` is not finite \(NaN or inf\) at "
                                            r"100\.0% of the [0-9]+ evaluation points"):
        reg.register(folder)
    assert (folder / "module.yaml").read_bytes() == before  # nothing half-written
    assert reg.list() == [] and reg.store.repo.version_tags() == []  # no tag


def test_the_gate_fails_a_module_that_is_nan_even_with_perfect_recorded_metrics(
        reg, repo: Path) -> None:
    data = dict(NAN_MODULE, evaluation={**NAN_MODULE["evaluation"],
                                        "metrics": {"rmse": 0.0, "nrmse": 0.0, "r2": 1.0,
                                                    "max_rel_error": 0.0}})
    _write(repo, data)
    report = reg.check(all_modules=True, use_cache=False)
    [module] = [m for m in report.modules if m.name == "nan-root"]
    accuracy = [r for r in module.results if r.check == "accuracy"]
    assert accuracy and accuracy[0].verdict == "fail"
    assert "output `y` is not finite" in accuracy[0].detail
    assert not report.passed


def test_metrics_of_non_finite_predictions_are_nan_and_pass_no_budget() -> None:
    from registry.evaluation import compute_metrics

    truth = np.linspace(0.0, 1.0, 16)[:, None]
    metrics = compute_metrics(np.full_like(truth, np.nan), truth)
    assert all(np.isnan(v) for v in metrics.values())
    assert not metrics["rmse"] <= 0.001 and not metrics["r2"] >= 0.999
    partly = truth.copy()
    partly[3, 0] = np.inf
    assert np.isnan(compute_metrics(partly, truth)["nrmse"])


@pytest.mark.parametrize("text", ["hv@1\u0661.0.0", "hv@\u0661.0.0", "hv@^\u0661",
                                  "hv@~1.\u0662", "h\u0661v"])
def test_references_refuse_digits_of_other_scripts(text: str) -> None:
    from registry.core.reference import parse_reference

    with pytest.raises(NotFound):
        parse_reference(text)


def test_versions_and_tags_refuse_digits_of_other_scripts() -> None:
    from registry.core.manifest import parse_manifest
    from registry.core.reference import Version
    from registry.store.tags import parse_stage_tag, parse_version_tag

    text = yaml.safe_dump(dict(NAN_MODULE, version="1\u0661.0.0"), allow_unicode=True)
    with pytest.raises(ManifestError, match=r"version"):
        parse_manifest(text, source="hv/module.yaml")
    with pytest.raises(ValueError):
        Version.parse("1\u0661.0.0")
    assert parse_version_tag("hv@v1\u0661.0.0") is None
    assert parse_version_tag("hv@v11.0.0") == ("hv", "11.0.0")
    assert parse_stage_tag("hv#prod#\u0661") is None
