"""Hostile inputs (issue 13, findings 5 and 7): each is refused quickly, in one line.

5. A unit string such as `m^(9^9^9)` pinned a core: pint computes the power as a
   Python integer. `parse_unit` (the one unit parser of CLI, gate and server) now
   bounds exponents, parentheses, factors and numbers before pint sees the text.
7. YAML aliases expanded a "billion laughs" (a 3.85 MB error line at depth 5, out of
   memory at depth 9), and 10^4 nested brackets gave a RecursionError traceback.
   `load_yaml` (the one strict YAML reader) refuses aliases and nesting over 32 levels.

Property tests: random units, manifests, versions and references either parse or
raise one of the project's errors (`RegistryError`), each case within a time
(hypothesis `deadline`) and memory (`tracemalloc`) bound.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.composition.spec import load_spec, read_spec
from registry.core import manifest_file
from registry.core.manifest import parse_manifest
from registry.core.manifest_file import MAX_YAML_DEPTH, load_yaml
from registry.core.reference import parse_reference
from registry.core.semantics import validate_equations
from registry.core.units import MAX_UNIT_EXPONENT, MAX_UNIT_FACTORS, parse_unit
from registry.errors import CompositionError, ManifestError, RegistryError, UnitError
from registry.server.app import Settings, create_app
from tests.conftest import MODULES, make_repo

GRAVITY = (MODULES / "gravity" / "module.yaml").read_text(encoding="utf-8")
DRAG_NET = (MODULES / "drag-net" / "module.yaml").read_text(encoding="utf-8")
FAST_S = 1.0
MAX_PEAK_BYTES = 50 << 20

PROPERTIES = settings(
    max_examples=150,
    deadline=500,  # milliseconds per case
    derandomize=True,  # the same cases on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def bounded(call: Callable[[], Any]) -> Any:
    """`call()`'s result or its `RegistryError`; any other exception fails the test, and so
    does a peak of traced memory over MAX_PEAK_BYTES."""
    tracemalloc.start()
    try:
        return call()
    except RegistryError as exc:
        return exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MAX_PEAK_BYTES, f"peak {peak / 1e6:.1f} MB"


def one_line(exc: BaseException, *words: str) -> str:
    message = str(exc)
    assert "\n" not in message and len(message) < 300, message
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    for word in words:
        assert word in message, message
    return message


def named(exc: BaseException, source: str) -> None:
    """A validation error gives one line per problem; each names the source, none is huge."""
    lines = str(exc).splitlines()
    assert lines and all(line.startswith(source) and len(line) < 500 for line in lines), exc
    assert len(lines) <= 50


def timed(call: Callable[[], Any], error: type[Exception], limit_s: float = FAST_S) -> Exception:
    start = time.perf_counter()
    with pytest.raises(error) as caught:
        call()
    assert time.perf_counter() - start < limit_s
    return caught.value


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Build the pint registry and sympy's caches once, outside the per-case deadline."""
    validate_equations(parse_manifest(GRAVITY), source="module.yaml")


@pytest.fixture(params=["libyaml", "python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both readers `load_yaml` may run on: libyaml's when installed, PyYAML's Python one."""
    if request.param == "python":
        monkeypatch.setattr(manifest_file, "_FAST", manifest_file._PyStrictLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML is built without libyaml")
    return str(request.param)


# --------------------------------------------------------------------------- finding 5

@pytest.mark.parametrize(("text", "problem"), [
    ("m^(9^9^9)", "exponents are numbers within ±12"),
    ("m^99", "exponents are numbers within ±12"),
    ("m**-13", "exponents are numbers within ±12"),
    ("m^(1/0)", "exponents are numbers within ±12"),
    ("m^2^3", "chained exponents"),
    ("cubic m^4", "chained exponents"),  # pint rewrites it to m**3**4
    ("(m^3)^5", "a power of 15"),
    ("((((((m))))))", "parentheses nest more than 4 deep"),
    ("1e999 m", "number '1e999' is too long or too large"),
    ("1234567890123456 m", "is too long or too large"),
    (" ".join(["m"] * 17), f"more than {MAX_UNIT_FACTORS} factors"),
    ("m)", "unbalanced `)`"),
    ("(m", "unclosed `(`"),
])
def test_hostile_unit_strings_are_refused_at_once(text: str, problem: str) -> None:
    exc = timed(lambda: parse_unit(text, where="inputs.m1.unit"), UnitError)

    message = one_line(exc, "inputs.m1.unit: ", repr(text), problem)
    assert message.count("; ") >= 1  # the problem, then the fix


@pytest.mark.parametrize("text", ["m^3 kg^-1 s^-2", "m^(1/2)", "m^(-2)", "(m/s)^2", "(m^3)^4",
                                  "((((m))))", "square meter", "1/s", "m^12"])
def test_honest_unit_strings_within_the_bounds_still_parse(text: str) -> None:
    assert parse_unit(text) is not None


def test_register_refuses_a_hostile_unit_at_once(reg, repo: Path) -> None:
    manifest = repo / "modules" / "gravity" / "module.yaml"
    manifest.write_text(manifest.read_text().replace("unit: kg", "unit: m^(9^9^9)", 1))

    # (the first register imports the heavy libraries; the bug never returned at all)
    exc = timed(lambda: reg.register(manifest.parent), UnitError, limit_s=30.0)

    one_line(exc, "inputs.m1.unit", "'m^(9^9^9)'", "exponents are numbers")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestClient]:
    root = make_repo(tmp_path / "server", ["gravity"])
    with TestClient(create_app(root, settings=Settings())) as client:
        yield client


@pytest.mark.parametrize("param", ["output_unit", "input_unit"])
def test_the_server_refuses_a_hostile_unit_query_and_keeps_answering(
        server: TestClient, param: str) -> None:
    start = time.perf_counter()
    response = server.get(f"/api/v1/modules?{param}=m%5E(9%5E9%5E9)")

    assert time.perf_counter() - start < FAST_S
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == "unit_error"
    assert f"{param}: 'm^(9^9^9)': exponents are numbers" in body["message"]
    assert server.get("/api/v1/health").status_code == 200


# --------------------------------------------------------------------------- finding 7

def laughs(depth: int) -> str:
    """`hidden:` a flow list of anchors each aliasing the one before ten times."""
    levels = ["&a0 [" + ", ".join(["lol"] * 10) + "]"]
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, depth + 1)]
    return DRAG_NET.replace("hidden: [64, 64]", "hidden: [" + ", ".join(levels) + "]")


@pytest.mark.parametrize("depth", [5, 9])
def test_a_billion_laughs_manifest_is_refused_before_it_expands(yaml_parser: str,
                                                                 depth: int) -> None:
    text = laughs(depth)
    assert f"*a{depth - 1}" in text

    exc = timed(lambda: parse_manifest(text, source="drag-net/module.yaml"), ManifestError)

    one_line(exc, "drag-net/module.yaml: YAML aliases are not allowed", "write the value out")


@pytest.mark.parametrize("text", [
    "a: " + "[" * 10_000 + "]" * 10_000,
    "a: " + "[" * 100_000,
    "a: " + "{b: " * 10_000 + "}" * 10_000,
    "a: " + "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH,
    "".join(" " * i + "k:\n" for i in range(MAX_YAML_DEPTH + 1)),
    "- " * 5_000 + "x",
], ids=["brackets-1e4", "unclosed-1e5", "braces-1e4", "brackets-33", "block-33", "dashes"])
def test_deep_nesting_is_refused_in_one_line(yaml_parser: str, text: str) -> None:
    exc = timed(lambda: parse_manifest(text, source="m.yaml"), ManifestError)

    one_line(exc, "m.yaml: YAML nests deeper than 32 levels", "flatten the structure")


def test_nesting_up_to_the_limit_is_read(yaml_parser: str) -> None:
    depth = MAX_YAML_DEPTH - 1  # under the top-level mapping
    assert load_yaml("a: " + "[" * depth + "]" * depth, source="m.yaml") is not None


@pytest.mark.parametrize(("text", "words"), [
    ("a: 1\na: 2\n", ["duplicate key 'a': give it once"]),
    ("a: &x 1\nb: *x\n", ["YAML aliases are not allowed"]),
    ("a: &x [*x]\n", ["YAML aliases are not allowed"]),
    ("a: b: c", ["invalid YAML (line 1, column 5): mapping values are not allowed here"]),
    ("x: 1" + ":1" * 100_000, ["more than 8 `:` groups"]),  # built in quadratic time
    ("x: " + "1" * 5_000, ["invalid YAML value"]),
    ("x: 2024-13-01", ["invalid YAML value: month must be in 1..12"]),
    ("? [a]\n: b", ["found unhashable key"]),
    ("a: \x01", ["invalid YAML: unacceptable character #x0001"]),
    ("a: !!python/object:os.system x", ["could not determine a constructor"]),
], ids=["duplicate", "alias", "recursive-alias", "syntax", "sexagesimal", "long-int",
        "bad-date", "unhashable", "control-character", "python-tag"])
def test_the_strict_reader_refuses_in_one_line(yaml_parser: str, text: str,
                                               words: list[str]) -> None:
    exc = timed(lambda: load_yaml(text, source="m.yaml"), ManifestError)

    one_line(exc, "m.yaml: ", *words)


def test_anchors_without_aliases_are_read() -> None:
    assert load_yaml("a: &x 1\nb: 2\n", source="m.yaml") == {"a": 1, "b": 2}


def test_a_compose_spec_with_aliases_is_refused(tmp_path: Path) -> None:
    text = "nodes: &n {g: {module: gravity@^1}}\nmore: *n\noutputs: {F: {unit: N}}\n"
    exc = timed(lambda: read_spec(text.encode(), source="compose.yaml"), CompositionError)
    one_line(exc, "compose.yaml: YAML aliases are not allowed")

    path = tmp_path / "compose.yaml"
    path.write_text("a: " + "[" * 10_000)
    exc = timed(lambda: load_spec(path), CompositionError)
    one_line(exc, f"{path}: YAML nests deeper than 32 levels")


# --------------------------------------------------------------------------- properties

UNIT_ALPHABET = "m kg s ^ ( ) * / - . 0123456789 e"
UNIT_PIECES = ["m", "kg", "s", "N", "^", "**", "(", ")", "*", "/", "-", "+", ".", " ", "e",
               "9", "12", "0.5", "1e999", "(1/2)", "square ", " cubed", "°"]


@PROPERTIES
@given(st.one_of(st.text(alphabet=UNIT_ALPHABET, max_size=60),
                 st.lists(st.sampled_from(UNIT_PIECES), max_size=30).map("".join)))
def test_unit_strings_parse_or_raise_unit_error_within_bounds(text: str) -> None:
    outcome = bounded(lambda: parse_unit(text))

    if not isinstance(outcome, RegistryError):
        powers = [abs(float(p)) for p in outcome._units.values()]
        assert all(p <= MAX_UNIT_EXPONENT * MAX_UNIT_FACTORS for p in powers), (text, outcome)
    else:
        assert isinstance(outcome, UnitError) and "\n" not in str(outcome)


YAML_PIECES = ["&a ", "*a", "[", "]", "{", "}", ": ", "- ", "\n", "  ", "a", "b", "<<: ",
               "!!int ", "!!binary ", "!!set ", "? ", "'", '"', "#", "1:2", "1e999", "0x1F",
               "2024-13-01", "\t", "|\n", ">\n", "---\n", "...\n", "%YAML 1.1\n", "\x00",
               "\ufeff", "name: gravity\n", "version: 1.0.0\n", "~", "null", "é", "١"]


@PROPERTIES
@given(st.one_of(st.text(max_size=200),
                 st.lists(st.sampled_from(YAML_PIECES), max_size=60).map("".join)))
def test_yaml_ish_text_gives_a_manifest_or_a_manifest_error(text: str) -> None:
    outcome = bounded(lambda: parse_manifest(text, source="m.yaml"))

    if isinstance(outcome, RegistryError):
        assert isinstance(outcome, ManifestError)
        named(outcome, "m.yaml: ")


def _constructed_by_pyyaml(text: str) -> Any:
    """What the strict loader's nodes give through PyYAML's own constructor (the reference
    for `_construct`, the index's fast path), or the error it raises."""
    loader = manifest_file._FAST(text)
    try:
        return loader.get_single_data()
    except Exception as exc:  # the outcome compared
        return exc
    finally:
        loader.dispose()


def _outcome(text: str) -> Any:
    try:
        return manifest_file._load(manifest_file._FAST, text)
    except Exception as exc:
        return exc


def _same(fast: Any, reference: Any) -> None:
    if isinstance(reference, Exception):
        assert type(fast) is type(reference) and str(fast) == str(reference)
    else:
        assert not isinstance(fast, Exception), fast
        assert repr(fast) == repr(reference)  # repr: nan equals itself, types are kept


@pytest.mark.parametrize("text", [
    *(p.read_text() for p in sorted(MODULES.glob("*/module.yaml"))),
    "a: {b: [1, 2.5, true, null, ~, 0x1F, 1_000, '3'], c: 2024-01-02 03:04:05}\n",
    "a: !!binary aGVsbG8=\nb: !!set {x, y}\nc: !!omap [{k: 1}]\nd: !!str 12\n",
    "base: {x: 1}\nm: {<<: {x: 2, y: 3}, z: 4}\n",
    "? [a]\n: b", "{1: a, true: b}", "{.nan: 1, .nan: 2}", "a: {b: 1, b: 2}\na: 3",
    "a: !!str {b: 1}", "a: !!int x", "- !!float 1e999\n- .inf\n- -.nan\n", "", "---\n...",
    "a: !!timestamp 2024-13-01",
], ids=lambda t: t[:24])
def test_the_fast_constructor_builds_what_pyyaml_builds(yaml_parser: str, text: str) -> None:
    _same(_outcome(text), _constructed_by_pyyaml(text))


@PROPERTIES
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=60).map("".join))
def test_the_fast_constructor_agrees_with_pyyaml_on_yaml_ish_text(text: str) -> None:
    _same(_outcome(text), _constructed_by_pyyaml(text))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=5),
    max_leaves=40,
)
FIELDS = [("version",), ("name",), ("summary",), ("kind",), ("schema",), ("inputs", "m1"),
          ("inputs", "m1", "unit"), ("inputs", "r", "range"), ("outputs", "F", "unit"),
          ("equation", "F"), ("constants", "G", "value"), ("constants", "G", "unit"),
          ("evaluation", "sample", "n"), ("cost", "flops_per_sample"), ("provenance",)]


def _replace(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@PROPERTIES
@given(st.sampled_from(FIELDS),
       st.one_of(JSONISH, st.text(alphabet=UNIT_ALPHABET + "١٣𝟙", max_size=30)))
def test_random_field_values_give_a_manifest_or_a_registry_error(path: tuple[str, ...],
                                                                   value: Any) -> None:
    text = yaml.safe_dump(_replace(yaml.safe_load(GRAVITY), path, value), allow_unicode=True)

    def parse_and_check() -> Any:
        manifest = parse_manifest(text, source="m.yaml")
        validate_equations(manifest, source="m.yaml")
        return manifest

    outcome = bounded(parse_and_check)

    if not isinstance(outcome, RegistryError):
        assert outcome.version.isascii() and outcome.name.isascii()


VERSION_PIECES = [*"0123456789.-+^~@#v ab_", "١", "٣", "𝟙", "٠", "۱", "੧", "gravity",
                  "workspace", "\n"]  # non-ASCII digits: Arabic-Indic, mathematical, Gurmukhi
VERSION_TEXT = st.one_of(st.text(max_size=30),
                         st.lists(st.sampled_from(VERSION_PIECES), max_size=20).map("".join))


@PROPERTIES
@given(VERSION_TEXT)
def test_references_parse_to_ascii_or_raise_a_registry_error(text: str) -> None:
    outcome = bounded(lambda: parse_reference(text))

    if not isinstance(outcome, RegistryError):
        assert str(outcome).isascii(), (text, outcome)
        assert all(part is None or part.isascii()
                   for part in (outcome.name, outcome.spec, outcome.stage))


@PROPERTIES
@given(VERSION_TEXT)
def test_manifest_versions_are_ascii_or_a_manifest_error(version: str) -> None:
    text = yaml.safe_dump(_replace(yaml.safe_load(GRAVITY), ("version",), version),
                          allow_unicode=True)

    outcome = bounded(lambda: parse_manifest(text, source="m.yaml"))

    if isinstance(outcome, RegistryError):
        assert isinstance(outcome, ManifestError)
    else:
        assert outcome.version.isascii() and outcome.version == version
