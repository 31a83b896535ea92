"""Issue 13, finding 6 ("memory before checks"): declared sizes are refused before allocating.

The probe passed `hidden: [65536, 65536]`, an 8 MB `test.npz` that inflates to
8 GiB, and 2,000 inputs with `sample.n: 10000000`; over HTTP a 70 KB upload
with `hidden: [16384, 16384]` took the server to 1.36 GB, and a 1 MB archive
whose GNU long-name header claims 1 GiB to 1.42 GB. Each is reproduced here and
must be refused with one line naming the file, the field, the limit and the fix,
while memory stays low.
"""

from __future__ import annotations

import gzip
import io
import os
import resource
import tarfile
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from numpy.lib import format as npy

from registry.core.arrays import check_npz, open_npz
from registry.core.integrity import sha256_bytes
from registry.core.limits import (
    MAX_EVALUATION_FLOATS,
    MAX_PARAMETERS,
    MAX_PORTS,
    mlp_parameters,
)
from registry.core.manifest import parse_manifest
from registry.errors import IntegrityError, ManifestError
from tests.conftest import MODULES, make_repo
from tests.test_server_api import client, targz, upload

MB = 1 << 20


@pytest.fixture
def peak() -> Iterator[Callable[[], int]]:
    """The peak of Python's allocations (bytes) since the test started measuring."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _seed(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((MODULES / name / "module.yaml").read_text())
    return data


def _refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(yaml.safe_dump(data, sort_keys=False), source="modules/x/module.yaml")
    message = str(caught.value)
    assert "\n" not in message, message  # one line
    return message


# parameters --------------------------------------------------------------------

def test_a_network_of_four_billion_parameters_is_refused_at_parse() -> None:
    data = _seed("drag-net")
    data["network"]["config"]["hidden"] = [65536, 65536]
    message = _refusal(data)
    assert message.startswith("modules/x/module.yaml: network.config.hidden: [65536, 65536] "
                              "declares 4,295,426,049 parameters"), message
    assert f"{MAX_PARAMETERS:,} (MAX_PARAMETERS in registry/core/limits.py)" in message
    assert "use fewer or narrower layers" in message


def test_parameters_are_counted_as_the_builder_builds_them() -> None:
    from registry.nn.network import NetworkModule

    data = _seed("drag-net")
    net = NetworkModule("mlp", data["network"]["config"], inputs=list(data["inputs"]),
                        outputs=list(data["outputs"]))
    built = sum(p.numel() for p in net.net.parameters())
    assert mlp_parameters(4, 1, [64, 64]) == built == data["cost"]["params"] == 4545
    assert mlp_parameters(3, 2, []) == 8


@pytest.mark.parametrize(("hidden", "limit"), [([8192], "MAX_HIDDEN_WIDTH"),
                                               ([8] * 33, "MAX_HIDDEN_LAYERS"),
                                               ([4096] * 4, "MAX_PARAMETERS")])
def test_widths_layers_and_parameters_each_have_a_limit(hidden: list[int], limit: str) -> None:
    data = _seed("drag-net")
    data["network"]["config"]["hidden"] = hidden
    message = _refusal(data)
    assert "module.yaml: network.config.hidden: " in message and limit in message


def test_the_builder_counts_before_it_allocates() -> None:
    """A network built in code (a composite's inline block) is bounded the same way."""
    from registry.nn.network import NetworkModule

    with pytest.raises(ManifestError, match=r"network\.config: .*268,550,145 parameters.*"
                                            r"MAX_PARAMETERS"):
        NetworkModule("mlp", {"hidden": [16384, 16384]}, inputs=["a", "b", "c", "d"],
                      outputs=["y"], where="network")


def test_the_seed_modules_are_within_the_limits() -> None:
    for folder in sorted(MODULES.iterdir()):
        parse_manifest((folder / "module.yaml").read_text(), source=str(folder))


# sample counts -----------------------------------------------------------------

def _sampled(n_inputs: int, n: int) -> dict[str, Any]:
    data = _seed("gravity")
    data["inputs"] = {f"x{i}": {"unit": "1", "range": [0.0, 1.0]} for i in range(n_inputs)}
    data["evaluation"]["sample"] = {"n": n, "seed": 0}
    return data


def test_two_thousand_inputs_sampled_ten_million_times_are_refused() -> None:
    message = _refusal(_sampled(2000, 10_000_000))
    assert message.startswith("modules/x/module.yaml: inputs: declares 2000 inputs, over the "
                              f"limit of {MAX_PORTS} (MAX_PORTS"), message
    message = _refusal(_sampled(1000, 10_000_000))
    assert message.startswith("modules/x/module.yaml: evaluation.sample.n: 10,000,000 points × "
                              "1001 ports (inputs and outputs) is 10,010,000,000 float64 "
                              "values (74.6 GiB)"), message
    assert f"{MAX_EVALUATION_FLOATS:,} (MAX_EVALUATION_FLOATS" in message
    most = MAX_EVALUATION_FLOATS // 1001
    assert f"lower `n` to at most {most:,}" in message
    parse_manifest(yaml.safe_dump(_sampled(1000, most)))  # the fix it names is accepted


# npz headers -------------------------------------------------------------------

def _npz(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    npy.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_an_npz_whose_header_declares_16_gib_is_refused_before_loading(
        peak: Callable[[], int]) -> None:
    bomb = _npz({"F.npy": _npy_header((2**31,)) + bytes(4096)})
    with pytest.raises(ManifestError) as caught, open_npz(bomb, where="test.npz") as arrays:
        arrays["F"]
    message = str(caught.value)
    assert message.startswith("test.npz: array 'F.npy': its header declares "
                              "17,179,869,184 bytes (shape [2147483648], float64)"), message
    assert "\n" not in message
    assert peak() < 50 * MB


def test_an_npz_that_inflates_past_the_limit_is_refused_from_its_directory(
        peak: Callable[[], int]) -> None:
    zeros = io.BytesIO()
    np.savez_compressed(zeros, F=np.zeros(4 * MB // 8))  # 4 MiB that deflate to a few KiB
    assert len(zeros.getvalue()) < 64 * 1024
    tracemalloc.reset_peak()
    with pytest.raises(ManifestError, match=r"^test\.npz: its arrays unpack to 4,194,[0-9]{3} "
                                            r"bytes, over the limit of 1,048,576 "
                                            r"\(MAX_ARRAY_BYTES in registry/core/limits\.py\)"):
        check_npz(zeros.getvalue(), where="test.npz", limit=MB)
    assert peak() < 2 * MB  # nothing was inflated
    assert check_npz(zeros.getvalue(), where="test.npz") == 4 * MB


@pytest.mark.parametrize(("members", "compression", "message"), [
    ({"F.npy": _npy_header((3,), "|O") + bytes(24)}, zipfile.ZIP_DEFLATED,
     "dtype object holds Python objects"),
    ({"F": np.zeros(3).tobytes()}, zipfile.ZIP_DEFLATED, "is not a stored or deflated .npy"),
    ({"F.npy": _npy_header((3,)) + bytes(24)}, zipfile.ZIP_BZIP2, "is not a stored or deflated"),
    ({"F.npy": b"\x93NUMPY\x01\x00\xff\xff" + b" " * 100}, zipfile.ZIP_STORED,
     "its .npy header declares 65,535 bytes, over the limit of 10,000"),
    ({"F.npy": np.zeros(3).tobytes()}, zipfile.ZIP_STORED, "not a .npy array"),
])
def test_npz_members_that_are_not_plain_arrays_are_refused(
        members: dict[str, bytes], compression: int, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        check_npz(_npz(members, compression), where="test.npz")
    with pytest.raises(ManifestError, match=r"not a readable \.npz"):
        check_npz(b"PK\x03\x04 not a zip", where="test.npz")


def test_evaluation_data_goes_through_the_header_check(reg, repo: Path) -> None:
    folder = repo / "modules" / "drag-net"
    bomb = _npz({"F.npy": _npy_header((2**31,)) + bytes(4096)})
    (folder / "test.npz").write_bytes(bomb)
    data = yaml.safe_load((folder / "module.yaml").read_text())
    data["evaluation"]["data"]["sha256"] = sha256_bytes(bomb)
    (folder / "module.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ManifestError, match=r"test\.npz: array 'F\.npy': its header declares "
                                            r"17,179,869,184 bytes"):
        reg.register(folder)
    assert reg.list() == []


def test_evaluation_runs_in_batches(reg, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import registry.evaluation as evaluation

    resolved = reg.store.resolve("drag-net@workspace")
    module = reg.loader.build(resolved)
    whole = reg.loader.evaluate(resolved, module)
    rows: list[int] = []

    def spy(_: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        rows.append(len(inputs[0]))

    module.register_forward_pre_hook(spy)
    monkeypatch.setattr(evaluation, "EVALUATION_BATCH", 512)
    assert reg.loader.evaluate(resolved, module) == pytest.approx(whole, rel=1e-5)
    assert max(rows) == 512 and sum(rows) == len(np.load(repo / "modules/drag-net/test.npz")["F"])


# safetensors headers -----------------------------------------------------------

def test_weights_headers_are_bounded_and_checked_against_the_architecture() -> None:
    import torch

    from registry.nn.network import NetworkModule
    from registry.nn.weights import load_weights

    net = NetworkModule("mlp", {"hidden": [4]}, inputs=["a"], outputs=["y"])
    huge = (1 << 40).to_bytes(8, "little") + b"{}"
    with pytest.raises(IntegrityError, match=r"w\.safetensors: the safetensors header declares "
                                             r"1,099,511,627,776 bytes, over the limit of "
                                             r"1,048,576 \(MAX_SAFETENSORS_HEADER_BYTES"):
        load_weights(net, huge, sha256=sha256_bytes(huge), where="w.safetensors")
    from safetensors.torch import save

    state = dict(net.state_dict(), **{"net.0.weight": torch.zeros(1)})
    wrong = save({k: v.contiguous() for k, v in state.items()})
    with pytest.raises(ManifestError, match=r"weights do not fit the declared architecture: "
                                            r"`net\.0\.weight` has shape \[1\], the "
                                            r"architecture \[4, 1\]"):
        load_weights(net, wrong, sha256=sha256_bytes(wrong), where="w.safetensors")


# uploads -----------------------------------------------------------------------

def _one_line_refusal(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "message"} and "\n" not in body["message"], body
    message: str = body["message"]
    return message


def test_a_gnu_long_name_header_claiming_1_gib_is_refused_before_it_is_read(
        tmp_path: Path, peak: Callable[[], int]) -> None:
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, 1 << 30
    archive = gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT) + os.urandom(MB))
    assert MB < len(archive) < 2 * MB
    root = make_repo(tmp_path / "server", ["gravity"])
    with client(root) as c:
        tracemalloc.reset_peak()
        message = _one_line_refusal(upload(c, archive), 422)
        assert peak() < 50 * MB
    assert message.startswith("archive: the GNU long-name header at byte 0 declares "
                              "1,073,741,824 bytes, over the limit of 65,536 "
                              "(MAX_TAR_HEADER_BYTES in registry/server/uploads.py)"), message
    assert list((root / ".registry" / "uploads").iterdir()) == []


def test_an_upload_of_a_network_too_large_is_refused_before_it_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.nn import network

    source = make_repo(tmp_path / "source", ["drag-net"]) / "modules" / "drag-net"
    data = yaml.safe_load((source / "module.yaml").read_text())
    data["network"]["config"]["hidden"] = [16384, 16384]
    (source / "module.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    archive = targz(source)
    assert len(archive) < 150 * 1024
    built: list[Any] = []
    real = network.ARCHITECTURES["mlp"]
    monkeypatch.setitem(network.ARCHITECTURES, "mlp",
                        lambda *a, **k: built.append(k) or real(*a, **k))
    root = make_repo(tmp_path / "server", ["gravity"])
    with client(root) as c:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, the peak so far
        message = _one_line_refusal(upload(c, archive), 422)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert message.startswith("upload:module.yaml: network.config.hidden: [16384, 16384] "
                              "declares 268,550,145 parameters"), message
    assert built == [] and grown < 256 * 1024  # nothing built; the peak grew < 256 MiB
