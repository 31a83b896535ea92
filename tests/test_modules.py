"""Generated over every module in `modules/`: load, forward, backward, round trip, accuracy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import registry
from registry.core.manifest import Sample, load_manifest
from registry.evaluation import sample_inputs
from tests.conftest import MODULES, PROJECT, git, make_repo

NAMES = sorted(p.parent.name for p in MODULES.glob("*/module.yaml"))


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    """The working tree's modules, each tagged as the version its manifest declares.

    A throwaway repository, so the tests do not depend on the checkout carrying
    tags (CI checkouts may not): composites and distilled modules then resolve
    their pinned parents to exactly what is in `modules/`. That the working tree
    equals the registered versions is checked in
    `test_registered_modules_are_committed_as_they_are`, against the tags
    `restore-tags` recreates from the project's history.
    """
    root = tmp_path_factory.mktemp("project")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test Author")
    git(root, "config", "user.email", "test@example.com")
    (root / ".gitignore").write_text(".registry/\n")
    shutil.copytree(MODULES, root / "modules")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "modules as in the working tree")
    for name in NAMES:
        version = load_manifest(MODULES / name).version
        git(root, "tag", "-a", f"{name}@v{version}", "-m", f"{name} {version} (test copy)")
    return registry.open(root)


def batch(name: str, n: int = 64) -> torch.Tensor:
    manifest = load_manifest(MODULES / name)
    return torch.as_tensor(sample_inputs(manifest, Sample(n=n, seed=1), where=name),
                           dtype=torch.float32)


def test_modules_are_found() -> None:
    assert {"gravity", "drag", "drag-net"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_forward_gives_finite_outputs_of_the_declared_shape(reg, name: str) -> None:
    module = reg.load(f"{name}@workspace")
    out = module(batch(name))
    assert out.shape == (64, len(load_manifest(MODULES / name).outputs))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_backward_reaches_every_input(reg, name: str) -> None:
    module = reg.load(f"{name}@workspace")
    x = batch(name).requires_grad_(True)
    module(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.abs().sum(0) > 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_dict_call_matches_tensor_call(reg, name: str) -> None:
    module = reg.load(f"{name}@workspace")
    x = batch(name)
    by_name = module({n: x[:, i] for i, n in enumerate(module.input_names)})
    stacked = torch.stack([by_name[n] for n in module.output_names], dim=1)
    assert torch.equal(stacked, module(x))


@pytest.mark.parametrize("name", [n for n in NAMES
                                  if load_manifest(MODULES / n).kind == "equation"])
def test_sympy_round_trip(reg, name: str) -> None:
    from registry.core.expr import format_expression, parse_expression
    from registry.nn.equation import EquationModule

    module = reg.load(f"{name}@workspace")
    names = [*module.input_names, *module.constant_names]
    texts = {k: format_expression(v) for k, v in module.sympy().items()}
    rebuilt = EquationModule({k: parse_expression(t, names=names) for k, t in texts.items()},
                             inputs=module.input_names,
                             constants={c: (v, False) for c, v in module.constant_values().items()})
    assert rebuilt.sympy() == module.sympy()
    assert torch.equal(rebuilt(batch(name)), module(batch(name)))


@pytest.mark.parametrize("name", NAMES)
def test_recorded_metrics_reproduce(reg, name: str) -> None:
    manifest = load_manifest(MODULES / name)
    assert manifest.evaluation is not None, f"{name} has no evaluation section"
    recorded = manifest.evaluation.metrics
    measured = reg.evaluate(f"{name}@workspace")
    assert measured["r2"] == pytest.approx(recorded["r2"], abs=1e-6)
    # Float32 round-off may differ between torch builds: tolerate it, not a real change.
    assert measured["nrmse"] == pytest.approx(recorded["nrmse"], rel=1e-3, abs=1e-6)


def test_every_module_folder_is_named_after_its_manifest() -> None:
    assert all(load_manifest(MODULES / n).name == n for n in NAMES)


def _tagged_clone(source: Path, dest: Path) -> tuple[registry.Registry, list[str]]:
    """A full clone of `source` without its tags, with `registry restore-tags` run in it."""
    subprocess.run(["git", "clone", "-q", "--no-tags", str(source), str(dest)], check=True,
                   capture_output=True)
    git(dest, "config", "user.name", "Test Author")
    git(dest, "config", "user.email", "test@example.com")
    assert not git(dest, "tag").strip()
    clone = registry.open(dest)
    return clone, clone.restore_tags()


def _has_registrations(root: Path) -> bool:
    """Whether `root` is a git checkout with `Register <name>@<version>` commits in it."""
    log = subprocess.run(["git", "-C", str(root), "log", "--format=%s", "--grep=^Register "],
                         capture_output=True, text=True)
    return log.returncode == 0 and bool(log.stdout.strip())


def test_registered_modules_are_committed_as_they_are(tmp_path: Path) -> None:
    """The committed `modules/` equal their latest registered versions.

    The tags are made here, not taken from the checkout (CI clones carry none):
    a clone of the project without tags gets them back from its `Register
    name@version` commits (`registry restore-tags`), then each module's latest
    registered version must equal its folder, in the clone (the committed tree)
    and in the checkout (the working tree the other tests load). A checkout
    without that history (shallow, or not a git checkout) cannot say which
    versions were registered: then the seed modules are registered in a scratch
    repository, and restore-tags and the comparison run on a clone of that.
    """
    if _has_registrations(PROJECT):
        clone, restored = _tagged_clone(PROJECT, tmp_path / "clone")
        checkouts = [clone.store.repo, registry.open(PROJECT).store.repo]
        names = NAMES
    else:
        scratch = make_repo(tmp_path / "scratch", ["gravity", "drag", "drag-net"])
        made = [registry.open(scratch).register(scratch / "modules" / n).tag
                for n in ("gravity", "drag", "drag-net")]
        clone, restored = _tagged_clone(scratch, tmp_path / "clone")
        assert sorted(restored) == sorted(made)
        checkouts = [clone.store.repo]
        names = ["gravity", "drag", "drag-net"]
    assert restored, "restore-tags made no tags"
    latest = {row.name: row for row in clone.list()}
    assert all(f"{row.name}@v{row.version}" in restored for row in latest.values())
    checked = [name for name in names if name in latest]
    for name in checked:
        row = latest[name]
        assert row.version == load_manifest(Path(checkouts[0].root) / "modules" / name).version
        for repo in checkouts:
            assert repo.folder_matches(row.commit, f"modules/{name}"), (
                f"{repo.root}/modules/{name} differs from {name}@v{row.version} "
                f"({row.commit[:12]})")
    assert checked, "no module of modules/ has a registered version to compare"
