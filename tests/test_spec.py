"""The manifest schema: a valid module parses; every error names file, field and fix."""

from __future__ import annotations

import json

import pytest

from registry.core.manifest import Manifest, dump_manifest, load_manifest, parse_manifest
from registry.errors import ManifestError

SOURCE = "modules/gravity/module.yaml"

# modules/gravity/module.yaml as first written (inline: the file on disk changes as the
# module is registered and evaluated).
GRAVITY = """\
schema: 1
name: gravity
version: 1.0.0
kind: equation
summary: Newtonian attraction between two point masses
inputs:
  m1: {unit: kg, range: [0.1, 10.0]}
  m2: {unit: kg, range: [0.1, 10.0]}
  r: {unit: m, range: [0.5, 5.0]}
outputs:
  F: {unit: N}
equation:
  F: G*m1*m2/r**2
constants:
  G: {value: 6.6743e-11, unit: m^3 kg^-1 s^-2, trainable: false}
evaluation:
  reference:
    equation: {F: G*m1*m2/r**2}
  sample: {n: 4096, seed: 0}
budget:
  max_flops_per_sample: 10
  min_r2: 0.9999
provenance:
  source: hand-written
"""

SHA = "a" * 64
# The gravity manifest turned into a network module, for the `network` section's fields.
NETWORK = GRAVITY.replace("kind: equation", "kind: network").replace(
    "equation:\n  F: G*m1*m2/r**2\n", ""
) + "network:\n  arch: mlp\n  weights: {path: weights.safetensors, sha256: " + SHA + "}\n"


def _edit(old: str, new: str, *, base: str = GRAVITY) -> str:
    """`base` with `old` replaced once; fails loudly if `old` is not there."""
    assert base.count(old) == 1, f"{old!r} is not in the manifest exactly once"
    return base.replace(old, new)


def _error(text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source=SOURCE)
    return str(caught.value)


# --------------------------------------------------------------------------- valid


def test_parse_manifest_reads_the_gravity_module() -> None:
    manifest = parse_manifest(GRAVITY, source=SOURCE)

    assert (
        manifest.ref,
        manifest.kind,
        list(manifest.inputs),
        manifest.inputs["r"].range,
        manifest.outputs["F"].unit,
        manifest.equation,
        manifest.constants["G"].value,
        manifest.evaluation and manifest.evaluation.sample and manifest.evaluation.sample.n,
        manifest.budget.min_r2,
        manifest.provenance.source,
    ) == (
        "gravity@1.0.0",
        "equation",
        ["m1", "m2", "r"],
        (0.5, 5.0),
        "N",
        {"F": "G*m1*m2/r**2"},
        6.6743e-11,
        4096,
        0.9999,
        "hand-written",
    )


def test_a_network_manifest_parses() -> None:
    manifest = parse_manifest(NETWORK, source=SOURCE)

    assert manifest.network is not None and manifest.network.weights.path == "weights.safetensors"


@pytest.mark.parametrize("text", [GRAVITY, NETWORK])
def test_dump_manifest_round_trips(text: str) -> None:
    manifest = parse_manifest(text, source=SOURCE)

    again = parse_manifest(dump_manifest(manifest), source=SOURCE)

    assert again == manifest


def test_dump_manifest_keeps_the_file_order_and_drops_empty_fields() -> None:
    dumped = dump_manifest(parse_manifest(GRAVITY, source=SOURCE))

    assert [line.split(":")[0] for line in dumped.splitlines() if not line.startswith(" ")] == [
        "schema", "name", "version", "kind", "summary", "inputs", "outputs", "equation",
        "constants", "evaluation", "budget", "provenance",
    ]


# --------------------------------------------------------------------------- errors

_TOP_KEYS = ("budget, composition, constants, cost, equation, evaluation, inputs, kind, name, "
             "network, outputs, provenance, schema, summary, version")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            _edit("summary:", "summry:"),
            f"{SOURCE}: summry: Extra inputs are not permitted; remove it or fix its spelling "
            f"(allowed keys: {_TOP_KEYS})",
            id="unknown-top-level-key",
        ),
        pytest.param(
            _edit("m1: {unit: kg,", "m1: {units: kg,"),
            f"{SOURCE}: inputs.m1.units: Extra inputs are not permitted; remove it or fix its "
            "spelling (allowed keys: description, range, unit)",
            id="unknown-port-key",
        ),
        pytest.param(
            _edit("sample: {n: 4096", "sample: {m: 4096"),
            f"{SOURCE}: evaluation.sample.m: Extra inputs are not permitted; remove it or fix its "
            "spelling (allowed keys: n, seed)",
            id="unknown-nested-key",
        ),
        pytest.param(
            _edit("  source: hand", "  sorce: hand"),
            f"{SOURCE}: provenance.sorce: Extra inputs are not permitted; remove it or fix its "
            "spelling (allowed keys: created, data, derivation, derived_from, distilled_from, "
            "git, mlflow, parents, recorded, source)",
            id="unknown-provenance-key",
        ),
        pytest.param(
            _edit("name: gravity", "name: Gravity"),
            f"{SOURCE}: name: String should match pattern '^[a-z][a-z0-9-]{{0,62}}$'; names are "
            "lower-case letters, digits and '-', starting with a letter",
            id="name-upper-case",
        ),
        pytest.param(
            _edit("name: gravity", "name: grav_ity"),
            f"{SOURCE}: name: String should match pattern",
            id="name-underscore",
        ),
        pytest.param(
            _edit("name: gravity", "name: 1gravity"),
            "names are lower-case letters, digits and '-', starting with a letter",
            id="name-digit-first",
        ),
        pytest.param(
            _edit("name: gravity\n", ""),
            f"{SOURCE}: name: Field required; add it",
            id="name-missing",
        ),
        pytest.param(
            _edit("version: 1.0.0", "version: '1.0'"),
            f"{SOURCE}: version: String should match pattern",
            id="version-two-parts",
        ),
        pytest.param(
            _edit("version: 1.0.0", "version: '01.0.0'"),
            "; versions are semantic versions such as 1.0.0",
            id="version-leading-zero",
        ),
        pytest.param(
            _edit("version: 1.0.0", "version: v1.0.0"),
            "; versions are semantic versions such as 1.0.0",
            id="version-v-prefix",
        ),
        pytest.param(
            # YAML reads 1.0 as a float: the message names the field but suggests no fix.
            _edit("version: 1.0.0", "version: 1.0"),
            f"{SOURCE}: version: Input should be a valid string",
            id="version-yaml-float",
        ),
        pytest.param(
            _edit("kind: equation", "kind: banana"),
            f"{SOURCE}: kind: Input should be 'equation', 'network' or 'composite'; use one of the "
            "allowed values",
            id="kind-unknown",
        ),
        pytest.param(
            _edit("schema: 1", "schema: 2"),
            f"{SOURCE}: schema: Input should be 1; use one of the allowed values",
            id="schema-2",
        ),
        pytest.param(
            _edit("equation:\n  F: G*m1*m2/r**2\n", ""),
            f"{SOURCE}: (top level): a module of kind `equation` needs an `equation` section",
            id="equation-kind-without-equation",
        ),
        pytest.param(
            GRAVITY + f"network:\n  arch: mlp\n  weights: {{path: w.safetensors, sha256: {SHA}}}\n",
            f"{SOURCE}: (top level): `network` belongs to kind `network`, not `equation`; "
            "remove it",
            id="network-section-on-equation-kind",
        ),
        pytest.param(
            _edit("kind: equation", "kind: network"),
            f"{SOURCE}: (top level): `equation` belongs to kind `equation`, not `network`; "
            "remove it",
            id="equation-section-on-network-kind",
        ),
        pytest.param(
            _edit("  F: G*m1*m2/r**2\nconstants", "  Fx: G*m1*m2/r**2\nconstants"),
            f"{SOURCE}: (top level): `equation` must give one expression per output: outputs are "
            "['F'], equations are ['Fx']",
            id="equation-outputs-mismatch",
        ),
        pytest.param(
            _edit("  F: {unit: N}\n", "  F: {unit: N}\n  P: {unit: W}\n"),
            "`equation` must give one expression per output: outputs are ['F', 'P'], equations "
            "are ['F']",
            id="output-without-equation",
        ),
        pytest.param(
            _edit("inputs:\n", "inputs:\n  F: {unit: N}\n"),
            f"{SOURCE}: (top level): names ['F'] are used twice (inputs, outputs and constants "
            "must have distinct names)",
            id="input-named-like-output",
        ),
        pytest.param(
            _edit("outputs:\n  F: {unit: N}\n", "outputs: {}\n"),
            f"{SOURCE}: outputs: Dictionary should have at least 1 item after validation, not 0",
            id="no-outputs",
        ),
        pytest.param(
            _edit("m1: {unit: kg", "m 1: {unit: kg"),
            f"{SOURCE}: inputs.m 1.[key]: String should match pattern "
            "'^[A-Za-z_][A-Za-z0-9_]{0,63}$'; port and constant names are identifiers such as "
            "`m1` or `C_d`",
            id="port-name-with-space",
        ),
        pytest.param(
            _edit("range: [0.1, 10.0]}\n  m2", "range: [10.0, 0.1]}\n  m2"),
            f"{SOURCE}: inputs.m1.range: range must be [low, high] with low < high, "
            "got [10.0, 0.1]",
            id="range-reversed",
        ),
        pytest.param(
            _edit("range: [0.1, 10.0]}\n  m2", "range: [1.0, 1.0]}\n  m2"),
            f"{SOURCE}: inputs.m1.range: range must be [low, high] with low < high, got [1.0, 1.0]",
            id="range-empty",
        ),
        pytest.param(
            _edit("range: [0.1, 10.0]}\n  m2", "range: [0.1, .nan]}\n  m2"),
            "inputs.m1.range: range must be [low, high] with low < high, got [0.1, nan]",
            id="range-nan",
        ),
        pytest.param(
            _edit("sample: {n: 4096", "sample: {n: 4"),
            f"{SOURCE}: evaluation.sample.n: Input should be greater than or equal to 16",
            id="sample-too-small",
        ),
        pytest.param(
            _edit("  sample: {n: 4096, seed: 0}\n",
                  f"  sample: {{n: 4096, seed: 0}}\n  data: {{path: d.csv, sha256: {SHA}}}\n"),
            f"{SOURCE}: evaluation: give exactly one of `data` (a file with its sha256) or "
            "`reference`",
            id="evaluation-data-and-reference",
        ),
        pytest.param(
            _edit("path: weights.safetensors", "path: ../weights.safetensors", base=NETWORK),
            f"{SOURCE}: network.weights.path: path '../weights.safetensors' must stay inside the "
            "module folder (relative, no `..`)",
            id="weights-path-dotdot",
        ),
        pytest.param(
            _edit("path: weights.safetensors", "path: a/../../weights", base=NETWORK),
            "network.weights.path: path 'a/../../weights' must stay inside the module folder",
            id="weights-path-dotdot-inside",
        ),
        pytest.param(
            _edit("path: weights.safetensors", "path: /etc/passwd", base=NETWORK),
            "network.weights.path: path '/etc/passwd' must stay inside the module folder",
            id="weights-path-absolute",
        ),
        pytest.param(
            _edit("path: weights.safetensors", "path: 'my weights'", base=NETWORK),
            f"{SOURCE}: network.weights.path: String should match pattern "
            "'^[A-Za-z0-9_.\\-/]{1,200}$'; paths use letters, digits, `_`, `-`, `.` and `/`",
            id="weights-path-space",
        ),
        pytest.param(
            _edit(f"sha256: {SHA}", f"sha256: {'A' * 64}", base=NETWORK),
            f"{SOURCE}: network.weights.sha256: String should match pattern '^[0-9a-f]{{64}}$'; "
            "write the file's sha256 as 64 lower-case hex digits",
            id="sha256-upper-case",
        ),
        pytest.param(
            _edit(f"sha256: {SHA}", f"sha256: {'a' * 63}", base=NETWORK),
            "network.weights.sha256: String should match pattern '^[0-9a-f]{64}$'",
            id="sha256-short",
        ),
        pytest.param(
            _edit(f"sha256: {SHA}", f"sha256: {'g' * 64}", base=NETWORK),
            "write the file's sha256 as 64 lower-case hex digits",
            id="sha256-not-hex",
        ),
        pytest.param(
            _edit("kind: equation", "kind: equation\n  bad: [\n"),
            f"{SOURCE}: invalid YAML (line 5, column 6): mapping values are not allowed here; "
            "fix the syntax",
            id="invalid-yaml",
        ),
        pytest.param(
            "name: gravity\ninputs: [1\n",
            f"{SOURCE}: invalid YAML (line 3, column 1): expected ',' or ']', but got "
            "'<stream end>'; fix the syntax",
            id="invalid-yaml-unclosed",
        ),
        pytest.param(
            "\tname: gravity",
            f"{SOURCE}: invalid YAML (line 1, column 1): found character '\\t' that cannot start "
            "any token; fix the syntax",
            id="invalid-yaml-tab",
        ),
        pytest.param(
            "- a\n- b\n",
            f"{SOURCE}: expected a mapping of manifest fields at the top level, got list; see "
            "`registry schema`",
            id="top-level-list",
        ),
        pytest.param(
            "just text",
            f"{SOURCE}: expected a mapping of manifest fields at the top level, got str",
            id="top-level-string",
        ),
        pytest.param(
            "",
            f"{SOURCE}: expected a mapping of manifest fields at the top level, got NoneType",
            id="empty-file",
        ),
        pytest.param(
            GRAVITY + "#" * (1 << 20),
            f"{SOURCE}: file is over 1048576 bytes; manifests are small, keep data and weights in "
            "separate files",
            id="too-big",
        ),
    ],
)
def test_parse_manifest_refuses(text: str, message: str) -> None:
    assert message in _error(text)


def test_every_problem_gets_its_own_line() -> None:
    text = _edit("summary:", "summry:", base=_edit("name: gravity\n", ""))

    assert _error(text).splitlines() == [
        f"{SOURCE}: name: Field required; add it",
        f"{SOURCE}: summry: Extra inputs are not permitted; remove it or fix its spelling "
        f"(allowed keys: {_TOP_KEYS})",
    ]


def test_duplicate_keys_are_refused() -> None:
    text = _edit("summary:", "summary: first\nsummary:")

    assert "summary" in _error(text)


# --------------------------------------------------------------------------- files


def test_load_manifest_reads_a_module_folder(tmp_path) -> None:
    (tmp_path / "module.yaml").write_text(GRAVITY, encoding="utf-8")

    assert load_manifest(tmp_path) == parse_manifest(GRAVITY)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "module.yaml: no such file; create it with `registry new`"),
        (b"\xff\xfe name", "module.yaml: not UTF-8 text; save the manifest as UTF-8"),
        (b"summry: x\n", "module.yaml: summry: Extra inputs are not permitted"),
    ],
)
def test_load_manifest_errors_name_the_path(tmp_path, content: bytes | None, message: str) -> None:
    path = tmp_path / "module.yaml"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(ManifestError) as caught:
        load_manifest(path)

    assert f"{tmp_path}/{message}" in str(caught.value)


# --------------------------------------------------------------------------- JSON Schema


def test_json_schema_forbids_unknown_keys_everywhere() -> None:
    schema = Manifest.json_schema()

    assert [schema["additionalProperties"]] + [
        definition.get("additionalProperties") for definition in schema["$defs"].values()
    ] == [False] * (1 + len(schema["$defs"]))


def test_json_schema_is_plain_json() -> None:
    schema = Manifest.json_schema()

    assert json.loads(json.dumps(schema)) == schema


def test_json_schema_is_a_valid_json_schema_that_accepts_gravity() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = Manifest.json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)

    errors = list(validator.iter_errors(parse_manifest(GRAVITY).to_dict()))

    assert errors == []
