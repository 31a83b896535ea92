"""The JSON API (/api/v1): reads, filters, files, uploads, stages, auth, errors, serve."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

import registry
from registry.cost.rationed import RationedMeter
from registry.server.app import Settings, create_app, settings_from_env
from registry.server.auth import load_tokens
from tests.conftest import MODULES, git, make_repo

TOKEN = "t0k"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def client(root: Path, **settings: Any) -> TestClient:
    options: dict[str, Any] = {"tokens": frozenset({TOKEN}), **settings}
    return TestClient(create_app(root, settings=Settings(**options)))


def meter(c: TestClient) -> RationedMeter:
    found: RationedMeter = c.app.state.meter  # type: ignore[attr-defined]
    return found


def assert_error(response: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "message"}, body
    assert isinstance(body["message"], str) and body["message"]
    if type_ is not None:
        assert body["type"] == type_, body
    return body


def tags(root: Path) -> list[str]:
    return sorted(git(root, "tag", "-l").split())


def snapshot(root: Path) -> tuple[list[str], list[str], str, list[str]]:
    """What a refused upload must leave unchanged: folders, tags, git status, staging."""
    uploads = root / ".registry" / "uploads"
    return (sorted(p.name for p in (root / "modules").iterdir()), tags(root),
            git(root, "status", "--porcelain", "--untracked-files=all"),
            sorted(p.name for p in uploads.iterdir()) if uploads.is_dir() else [])


def targz(folder: Path | None = None, *, arcname: str | None = None,
          extra: list[tuple[tarfile.TarInfo, bytes | None]] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        if folder is not None:
            tar.add(folder, arcname=arcname if arcname is not None else folder.name)
        for info, data in extra or []:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, data: bytes = b"x", **fields: Any) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    for key, value in fields.items():
        setattr(info, key, value)
    info.size = len(data) if info.isreg() else 0
    return info, (data if info.isreg() else None)


def upload(c: TestClient, archive: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return c.post("/api/v1/modules", files={"archive": ("module.tar.gz", archive)},
                  headers=AUTH if headers is None else headers)


# a registry with gravity and drag registered, gravity staged prod, drag-net unregistered

@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, TestClient]]:
    root = make_repo(tmp_path_factory.mktemp("served") / "repo", ["gravity", "drag", "drag-net"])
    reg = registry.open(root)
    reg.register(root / "modules" / "gravity")
    reg.register(root / "modules" / "drag")
    reg.promote("gravity@1.0.0", "prod")
    with client(root) as c:
        yield root, c


@pytest.fixture
def c(served: tuple[Path, TestClient]) -> TestClient:
    return served[1]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Module folders to upload (as `registry` would find them before registering)."""
    return make_repo(tmp_path / "source", ["drag", "drag-net"]) / "modules"


@pytest.fixture
def server_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "server", ["gravity"])


# reads -----------------------------------------------------------------------

def test_health(c: TestClient) -> None:
    data = c.get("/api/v1/health").json()
    assert data["status"] == "ok"
    assert data["version"] == registry.__version__
    assert data["modules"] == 2 and data["unregistered"] == 1
    assert data["index_backend"] == "sqlite"
    assert data["pid"] == os.getpid()


def test_the_list_is_paged_with_a_cursor(c: TestClient) -> None:
    """Issue 16: `limit` and `cursor`; every module once, unregistered on the first page."""
    names, cursor, pages = [], None, 0
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        data = c.get("/api/v1/modules", params=params).json()
        pages += 1
        names += [m["name"] for m in data["modules"]]
        assert (data["unregistered"] != []) == (pages == 1)
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert names == ["drag", "gravity"] and pages == 2
    whole = c.get("/api/v1/modules").json()
    assert [m["name"] for m in whole["modules"]] == names and whole["next_cursor"] is None
    for bad in ({"limit": 0}, {"limit": 1001}, {"cursor": "Not A Name"}):
        assert c.get("/api/v1/modules", params=bad).status_code == 422


def test_list_registered_latest_with_stages_and_unregistered(c: TestClient) -> None:
    data = c.get("/api/v1/modules").json()
    assert [(m["name"], m["version"]) for m in data["modules"]] == [("drag", "1.0.0"),
                                                                   ("gravity", "1.0.0")]
    gravity = data["modules"][1]
    assert gravity["stages"] == ["prod"] and gravity["tag"] == "gravity@v1.0.0"
    assert gravity["outputs"] == {"F": "N"} and gravity["inputs"]["r"] == "m"
    assert [u["name"] for u in data["unregistered"]] == ["drag-net"]
    assert data["unregistered"][0]["kind"] == "network"


@pytest.mark.parametrize(("query", "registered", "unregistered"), [
    ({"kind": "equation"}, ["drag", "gravity"], []),
    ({"kind": "network"}, [], ["drag-net"]),
    ({"output_unit": "N"}, ["drag", "gravity"], ["drag-net"]),
    ({"output_unit": "kg m/s^2"}, ["drag", "gravity"], ["drag-net"]),
    ({"output_unit": "kN"}, [], []),
    ({"output_unit": "J"}, [], []),
    ({"input_unit": "m/s"}, ["drag"], ["drag-net"]),
    ({"input_unit": "kg"}, ["gravity"], []),
    ({"input_unit": "m/s", "output_unit": "N", "kind": "equation"}, ["drag"], []),
    ({"q": "ATTRACTION"}, ["gravity"], []),
    ({"q": "drag"}, ["drag"], ["drag-net"]),
])
def test_list_filters(c: TestClient, query: dict[str, str], registered: list[str],
                      unregistered: list[str]) -> None:
    response = c.get("/api/v1/modules", params=query)
    assert response.status_code == 200, response.text
    data = response.json()
    assert [m["name"] for m in data["modules"]] == registered
    assert [m["name"] for m in data["unregistered"]] == unregistered


def test_list_filter_errors(c: TestClient) -> None:
    assert "unknown unit" in assert_error(c.get("/api/v1/modules?output_unit=furlongz"), 422,
                                          "unit_error")["message"]
    assert_error(c.get("/api/v1/modules?kind=spline"), 422, "validation_error")


@pytest.mark.parametrize("ref", ["gravity", "gravity@1.0.0", "gravity@%5E1", "gravity@~1.0",
                                 "gravity%23prod", "gravity@v1.0.0"])
def test_module_by_reference(c: TestClient, ref: str) -> None:
    data = c.get(f"/api/v1/modules/{ref}").json()
    assert data["ref"] == "gravity@1.0.0" and data["tag"] == "gravity@v1.0.0"
    assert data["stages"] == ["prod"] and data["stage_map"] == {"prod": "1.0.0"}
    assert data["versions"] == ["1.0.0"]
    assert data["manifest"]["equation"] == {"F": "G*m1*m2/r**2"}


def test_workspace_module(c: TestClient) -> None:
    data = c.get("/api/v1/modules/drag-net@workspace").json()
    assert data["ref"] == "drag-net@workspace" and data["commit"] is None
    assert data["versions"] == [] and data["kind"] == "network"
    body = assert_error(c.get("/api/v1/modules/drag-net"), 404, "not_found")
    assert "drag-net@workspace" in body["message"]


@pytest.mark.parametrize("ref", ["Gravity", "gravity@1.x", "gravity@", "gravity%23", "1gravity",
                                 "gravity@1.0.0%231", "gravity@%5E1.x", "gravity@workspace%23a"])
def test_bad_reference_is_422_with_the_parser_message(c: TestClient, ref: str) -> None:
    body = assert_error(c.get(f"/api/v1/modules/{ref}/manifest"), 422, "invalid_reference")
    assert "reference" in body["message"] or "version" in body["message"]


def test_overlong_reference_is_422(c: TestClient) -> None:
    assert_error(c.get(f"/api/v1/modules/{'g' * 300}/manifest"), 422, "validation_error")


def test_unknown_module_and_version_are_404(c: TestClient) -> None:
    assert_error(c.get("/api/v1/modules/nothing"), 404, "not_found")
    assert_error(c.get("/api/v1/modules/gravity@9.9.9/manifest"), 404, "not_found")
    assert_error(c.get("/api/v1/modules/gravity%23staging"), 404, "not_found")
    assert_error(c.get("/api/v1/modules/nothing/versions"), 404, "not_found")
    assert_error(c.get("/api/v1/no/such/route"), 404, "not_found")


def test_versions(c: TestClient) -> None:
    data = c.get("/api/v1/modules/gravity/versions").json()
    assert [v["version"] for v in data["versions"]] == ["1.0.0"]
    assert data["stages"] == {"prod": "1.0.0"} and data["in_workspace"] is True
    unregistered = c.get("/api/v1/modules/drag-net/versions").json()
    assert unregistered["versions"] == [] and unregistered["in_workspace"] is True
    assert_error(c.get("/api/v1/modules/gravity@1.0.0/versions"), 422, "invalid_reference")


def test_manifest_is_the_models_json(served: tuple[Path, TestClient]) -> None:
    root, c = served
    expected = registry.open(root).get("drag@1.0.0").model_dump(mode="json", by_alias=True)
    assert c.get("/api/v1/modules/drag@1.0.0/manifest").json() == expected
    assert c.get("/api/v1/modules/drag/manifest").json()["schema"] == 1


def test_manifest_has_a_content_etag_and_answers_304(served: tuple[Path, TestClient]) -> None:
    import hashlib

    _, c = served
    first = c.get("/api/v1/modules/drag@1.0.0/manifest")
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert first.headers["etag"] == f'"{hashlib.sha256(first.content).hexdigest()}"'
    again = c.get("/api/v1/modules/drag@1.0.0/manifest",
                  headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = c.get("/api/v1/modules/gravity@1.0.0/manifest",
                  headers={"If-None-Match": first.headers["etag"]})
    assert other.status_code == 200 and other.json()["name"] == "gravity"


# files -----------------------------------------------------------------------

def test_file_download_with_etag_and_304(served: tuple[Path, TestClient]) -> None:
    root, c = served
    response = c.get("/api/v1/modules/gravity@1.0.0/files/module.yaml")
    assert response.status_code == 200
    expected = git(root, "show", "gravity@v1.0.0:modules/gravity/module.yaml").encode()
    assert response.content == expected
    sha = hashlib.sha256(expected).hexdigest()
    assert response.headers["etag"] == f'"{sha}"'
    assert response.headers["x-content-sha256"] == sha
    assert response.headers["x-content-type-options"] == "nosniff"
    again = c.get("/api/v1/modules/gravity@1.0.0/files/module.yaml",
                  headers={"If-None-Match": f'"{sha}"'})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == f'"{sha}"'
    other = c.get("/api/v1/modules/gravity@1.0.0/files/module.yaml",
                  headers={"If-None-Match": '"0000", W/"1111"'})
    assert other.status_code == 200


def test_weights_download_matches_the_manifest_sha(c: TestClient) -> None:
    manifest = c.get("/api/v1/modules/drag-net@workspace/manifest").json()
    response = c.get("/api/v1/modules/drag-net@workspace/files/weights.safetensors")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert "attachment" in response.headers["content-disposition"]
    sha = hashlib.sha256(response.content).hexdigest()
    assert sha == manifest["network"]["weights"]["sha256"] == response.headers["x-content-sha256"]
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize("path", [
    "..%2F..%2Fetc%2Fpasswd", "..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
    "..%5C..%5Cetc%5Cpasswd", "a%2F..%2F..%2Fdrag%2Fmodule.yaml", ".%2Fmodule.yaml",
    "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", ".git%2Fconfig", "module.yaml%00", "x" * 300,
    "a//b", "module.yaml%3Bls", "%20module.yaml", "module.yaml%0Ax",
])
def test_file_traversal_is_refused_as_json(c: TestClient, path: str) -> None:
    response = c.get(f"/api/v1/modules/gravity@1.0.0/files/{path}")
    assert 400 <= response.status_code < 500
    body = response.json()
    assert set(body) == {"type", "message"}
    assert "root:" not in response.text


@pytest.mark.parametrize("raw", ["/api/v1/modules/gravity@1.0.0/files/../../../../etc/passwd",
                                 "/api/v1/modules/gravity@1.0.0/files/../../drag/files/x"])
def test_raw_dot_segments_do_not_escape(c: TestClient, raw: str) -> None:
    response = c.get(raw)
    assert 400 <= response.status_code < 500
    assert set(response.json()) == {"type", "message"}


def test_missing_file_is_404(c: TestClient) -> None:
    assert_error(c.get("/api/v1/modules/gravity@1.0.0/files/weights.safetensors"), 404,
                 "not_found")


def test_workspace_symlinks_are_not_followed(repo: Path) -> None:
    (repo / "modules" / "drag-net" / "passwd").symlink_to("/etc/passwd")
    with client(repo) as c:
        body = assert_error(c.get("/api/v1/modules/drag-net@workspace/files/passwd"), 422,
                            "manifest_error")
    assert "passwd: is a symbolic link" in body["message"] and "root:" not in body["message"]


# cost ------------------------------------------------------------------------

def test_cost_recorded_and_measured(c: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meter(c), "cache", {})
    data = c.get("/api/v1/modules/gravity/cost").json()
    assert data["ref"] == "gravity@1.0.0" and data["measured"] is None
    assert data["recorded"]["flops_per_sample"] == 4 and data["recorded"]["params"] == 0
    fresh = c.get("/api/v1/modules/gravity/cost?measure=true").json()
    assert fresh["measured"]["flops"]["forward"] == 4 and fresh["measured_cached"] is False
    assert fresh["measured"]["params"] == 0
    cached = c.get("/api/v1/modules/gravity%23prod/cost", params={"measure": "true"}).json()
    assert cached["measured_cached"] is True and cached["measured"] == fresh["measured"]


def test_measuring_is_rationed(c: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meter(c), "cache", {})
    assert meter(c).lock.acquire(blocking=False)
    try:
        busy = c.get("/api/v1/modules/drag/cost?measure=true")
    finally:
        meter(c).lock.release()
    assert_error(busy, 429, "too_many_requests")
    assert busy.headers["retry-after"] == "5"
    monkeypatch.setattr(meter(c), "max_params", -1)
    assert_error(c.get("/api/v1/modules/drag/cost?measure=true"), 422, "measure_refused")


# uploads ---------------------------------------------------------------------

def test_upload_tar_gz_registers_the_module(server_repo: Path, source: Path) -> None:
    before = tags(server_repo)
    with client(server_repo) as c:
        response = upload(c, targz(source / "drag-net"))
        assert response.status_code == 201, response.text
        data = response.json()
        assert data["tag"] == "drag-net@v1.0.0" and data["created"] is True
        assert response.headers["location"] == "/api/v1/modules/drag-net@1.0.0"
        assert tags(server_repo) == sorted([*before, "drag-net@v1.0.0"])
        assert git(server_repo, "rev-list", "-n1", "drag-net@v1.0.0").strip() == data["commit"]
        assert c.get("/api/v1/modules/drag-net").json()["tag"] == "drag-net@v1.0.0"
        weights = c.get("/api/v1/modules/drag-net@1.0.0/files/weights.safetensors").content
    assert weights == (source / "drag-net" / "weights.safetensors").read_bytes()
    assert git(server_repo, "status", "--porcelain") == ""
    assert list((server_repo / ".registry" / "uploads").iterdir()) == []


def test_upload_archive_of_the_folder_contents_and_as_files(server_repo: Path,
                                                            source: Path) -> None:
    with client(server_repo) as c:
        flat = targz(source / "drag", arcname=".")
        assert upload(c, flat).status_code == 201
        head = git(server_repo, "rev-parse", "HEAD")
        again = upload(c, flat)
        # the registered manifest was filled in (cost, provenance), but the declared content
        # is the same: a retry is the documented no-op, and the working tree is left clean
        assert again.status_code == 200, again.text
        assert again.json()["created"] is False and again.json()["tag"] == "drag@v1.0.0"
        assert git(server_repo, "rev-parse", "HEAD") == head
        assert git(server_repo, "status", "--porcelain") == ""
        changed = _manifest(source, "drag", summary="the same version, other content")
        conflict = c.post("/api/v1/modules", headers=AUTH, files=[
            ("files", ("module.yaml", changed)),
            *[("files", (p.name, p.read_bytes())) for p in sorted((source / "drag").iterdir())
              if p.is_file() and p.name != "module.yaml"]])
        assert_error(conflict, 409, "version_conflict")
        assert str(server_repo) not in conflict.json()["message"]
        files = [("files", (p.relative_to(source / "drag-net").as_posix(), p.read_bytes()))
                 for p in sorted((source / "drag-net").rglob("*")) if p.is_file()]
        response = c.post("/api/v1/modules", files=files, headers=AUTH)
        assert response.status_code == 201, response.text
    assert {"drag@v1.0.0", "drag-net@v1.0.0"} <= set(tags(server_repo))


def test_upload_of_a_new_version_replaces_the_folder(server_repo: Path) -> None:
    reg = registry.open(server_repo)
    reg.register(server_repo / "modules" / "gravity")
    folder = server_repo / "modules" / "gravity"
    data = yaml.safe_load((folder / "module.yaml").read_text())
    data["version"] = "1.1.0"
    data.pop("cost", None)
    staging = server_repo.parent / "gravity"
    staging.mkdir()
    (staging / "module.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with client(server_repo) as c:
        response = upload(c, targz(staging))
        assert response.status_code == 201, response.text
        assert c.get("/api/v1/modules/gravity").json()["version"] == "1.1.0"
    assert "gravity@v1.1.0" in tags(server_repo)


def test_upload_needs_a_token(server_repo: Path, source: Path) -> None:
    archive = targz(source / "drag")
    before = snapshot(server_repo)
    with client(server_repo) as c:
        missing = upload(c, archive, headers={})
        assert_error(missing, 401, "unauthorized")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_error(upload(c, archive, headers={"Authorization": "Basic dTpw"}), 401)
        assert_error(upload(c, archive, headers={"Authorization": "Bearer wrong"}), 403,
                     "forbidden")
        assert_error(upload(c, archive, headers={"Authorization": f"Bearer {TOKEN}x"}), 403)
    with client(server_repo, tokens=frozenset()) as c:
        body = assert_error(upload(c, archive), 403, "writes_disabled")
        assert "REGISTRY_TOKENS" in body["message"]
    assert snapshot(server_repo) == before


def test_auth_is_checked_before_the_body(server_repo: Path) -> None:
    with client(server_repo) as c:
        assert_error(c.post("/api/v1/modules", content=b"{not json"), 401)
        assert_error(c.post("/api/v1/modules/gravity/stages", content=b"{not json",
                            headers={"Content-Type": "application/json"}), 401)


def _manifest(source: Path, name: str, **changes: Any) -> bytes:
    data = yaml.safe_load((source / name / "module.yaml").read_text())
    data.update(changes)
    return yaml.safe_dump(data, sort_keys=False).encode()


MALICIOUS = {
    "symlink": lambda s: targz(extra=[member("module.yaml", type=tarfile.SYMTYPE,
                                             linkname="/etc/passwd")]),
    "hardlink": lambda s: targz(extra=[member("module.yaml", _manifest(s, "drag")),
                                       member("x", type=tarfile.LNKTYPE,
                                              linkname="module.yaml")]),
    "dotdot": lambda s: targz(extra=[member("module.yaml", _manifest(s, "drag")),
                                     member("../x")]),
    "dotdot-deep": lambda s: targz(extra=[member("drag/module.yaml", _manifest(s, "drag")),
                                          member("drag/../../x")]),
    "absolute": lambda s: targz(extra=[member("module.yaml", _manifest(s, "drag")),
                                       member("/tmp/x")]),
    "backslash": lambda s: targz(extra=[member("module.yaml", _manifest(s, "drag")),
                                        member("..\\x")]),
    "device": lambda s: targz(extra=[member("module.yaml", _manifest(s, "drag")),
                                     member("null", type=tarfile.CHRTYPE)]),
    "fifo": lambda s: targz(extra=[member("module.yaml", _manifest(s, "drag")),
                                   member("pipe", type=tarfile.FIFOTYPE)]),
    "git-dir": lambda s: targz(extra=[member("module.yaml", _manifest(s, "drag")),
                                      member(".git/config")]),
    "oversize": lambda s: targz(extra=[member("module.yaml", _manifest(s, "drag")),
                                       member("big.bin", b"\0" * 300_000)]),
    "too-many": lambda s: targz(extra=[member("module.yaml", _manifest(s, "drag")),
                                       *[member(f"f{i}") for i in range(300)]]),
    "not-a-tar": lambda s: b"\x1f\x8b\x08garbage",
    "no-manifest": lambda s: targz(extra=[member("readme.txt")]),
    "bad-manifest": lambda s: targz(extra=[member("module.yaml", b"name: [unclosed")]),
    "name-mismatch": lambda s: targz(s / "drag", arcname="gravity2"),
    "missing-weights": lambda s: targz(extra=[member("module.yaml",
                                                     _manifest(s, "drag-net"))]),
    "bad-weights": lambda s: targz(extra=[
        member("drag-net/module.yaml", _manifest(s, "drag-net")),
        member("drag-net/weights.safetensors", b"not safetensors"),
        member("drag-net/test.npz", (s / "drag-net" / "test.npz").read_bytes())]),
    "bad-equation": lambda s: targz(extra=[member("module.yaml", _manifest(
        s, "drag", equation={"F": "__import__('os').system('true')"}))]),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_or_broken_uploads_leave_nothing_behind(server_repo: Path, source: Path,
                                                          case: str) -> None:
    archive = MALICIOUS[case](source)
    before = snapshot(server_repo)
    with client(server_repo, max_upload_bytes=200_000) as c:
        response = upload(c, archive)
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"type", "message"}
    assert snapshot(server_repo) == before
    assert not (server_repo / "tmp").exists()


def test_failed_registration_restores_the_previous_folder(repo: Path, source: Path) -> None:
    weights = repo / "modules" / "drag-net" / "weights.safetensors"
    original = weights.read_bytes()
    before = snapshot(repo)
    with client(repo) as c:
        response = upload(c, MALICIOUS["bad-weights"](source))
    assert response.status_code in (409, 422), response.text
    assert weights.read_bytes() == original
    assert snapshot(repo) == before


def test_upload_refuses_a_dirty_working_tree(repo: Path, source: Path) -> None:
    (repo / "modules" / "drag" / "notes.txt").write_text("uncommitted")
    with client(repo) as c:
        body = assert_error(upload(c, targz(source / "drag")), 409, "working_tree_dirty")
    assert "modules/drag" in body["message"]
    assert (repo / "modules" / "drag" / "notes.txt").read_text() == "uncommitted"
    assert tags(repo) == []


def test_upload_shape_errors(server_repo: Path, source: Path) -> None:
    with client(server_repo) as c:
        assert_error(c.post("/api/v1/modules", content=b"x", headers={
            **AUTH, "Content-Type": "application/gzip"}), 415, "unsupported_media_type")
        assert_error(c.post("/api/v1/modules", files={"other": ("a", b"x")}, headers=AUTH), 422,
                     "invalid_upload")
        both = {"archive": ("a.tar.gz", targz(source / "drag")),
                "files": ("module.yaml", b"x")}
        assert_error(c.post("/api/v1/modules", files=both, headers=AUTH), 422, "invalid_upload")
        named = c.post("/api/v1/modules", files={"archive": ("a", targz(source / "drag"))},
                       data={"name": "gravity"}, headers=AUTH)
        assert_error(named, 422, "invalid_upload")
    assert tags(server_repo) == []


def test_body_limit(server_repo: Path) -> None:
    with client(server_repo, max_body_bytes=1000) as c:
        declared = c.post("/api/v1/modules", content=b"x" * 2000, headers=AUTH)
        assert_error(declared, 413, "payload_too_large")

        def chunked() -> Iterator[bytes]:
            for _ in range(10):
                yield b"y" * 500

        streamed = c.post("/api/v1/modules", content=chunked(), headers={
            **AUTH, "Content-Type": "multipart/form-data; boundary=xyz"})
        assert_error(streamed, 413, "payload_too_large")
        streamed_json = c.post("/api/v1/modules/gravity/stages", content=chunked(),
                               headers={**AUTH, "Content-Type": "application/json"})
        assert_error(streamed_json, 413, "payload_too_large")
        assert c.get("/api/v1/health").status_code == 200


# stages ----------------------------------------------------------------------

def test_stage_assignment(repo: Path) -> None:
    registry.open(repo).register(repo / "modules" / "gravity")
    with client(repo) as c:
        url = "/api/v1/modules/gravity/stages"
        assert_error(c.post(url, json={"version": "1.0.0", "stage": "prod"}), 401)
        response = c.post(url, json={"version": "1.0.0", "stage": "prod"}, headers=AUTH)
        assert response.status_code == 201, response.text
        assert response.json() == {"name": "gravity", "version": "1.0.0", "stage": "prod",
                                   "tag": "gravity#prod#1"}
        assert "gravity#prod#1" in tags(repo)
        assert c.get("/api/v1/modules/gravity%23prod").json()["stages"] == ["prod"]
        assert_error(c.post(url, json={"version": "9.9.9", "stage": "prod"}, headers=AUTH), 404,
                     "not_found")
        assert_error(c.post(url, json={"version": "1.0.0", "stage": "Prod#1"}, headers=AUTH),
                     422, "validation_error")
        assert_error(c.post(url, json={"version": "^1", "stage": "dev"}, headers=AUTH), 422,
                     "invalid_version")
        assert_error(c.post(url, json={"stage": "dev"}, headers=AUTH), 422, "validation_error")
        assert_error(c.post("/api/v1/modules/gravity@1.0.0/stages",
                            json={"version": "1.0.0", "stage": "dev"}, headers=AUTH), 422,
                     "invalid_reference")
        assert_error(c.post("/api/v1/modules/drag/stages",
                            json={"version": "1.0.0", "stage": "dev"}, headers=AUTH), 404)
    assert [t for t in tags(repo) if "#" in t] == ["gravity#prod#1"]


# error shapes ----------------------------------------------------------------

def test_error_shapes(served: tuple[Path, TestClient], server_repo: Path,
                      source: Path) -> None:
    _, c = served
    assert_error(c.get("/api/v1/modules/nothing/manifest"), 404, "not_found")
    assert_error(c.get("/api/v1/modules/gravity@1..0/manifest"), 422, "invalid_reference")
    assert_error(c.get("/api/v1/modules/gravity/cost?measure=maybe"), 422, "validation_error")
    assert_error(c.delete("/api/v1/health"), 405, "method_not_allowed")
    with client(server_repo) as writer:
        assert upload(writer, targz(source / "drag")).status_code == 201
        (source / "drag" / "module.yaml").write_bytes(
            _manifest(source, "drag", summary="the same version, other content"))
        assert_error(upload(writer, targz(source / "drag")), 409, "version_conflict")


def test_unexpected_errors_are_500_without_a_trace(served: tuple[Path, TestClient],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, c = served

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail /etc/shadow")

    monkeypatch.setattr(c.app.state.registry, "search", boom)  # type: ignore[attr-defined]
    response = c.get("/api/v1/modules")
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in body["message"]


def test_registry_error_statuses() -> None:
    from registry import errors
    from registry.errors import wire_status as registry_status

    assert registry_status(errors.NotFound("x")) == (404, "not_found")
    assert registry_status(errors.VersionConflict("x")) == (409, "version_conflict")
    assert registry_status(errors.IntegrityError("x")) == (409, "integrity_error")
    for cls in (errors.ManifestError, errors.ExpressionError, errors.UnitError,
                errors.CompositionError, errors.BudgetExceeded):
        assert registry_status(cls("x"))[0] == 422
    assert registry_status(errors.DistillationError("x"))[0] == 400
    assert registry_status(errors.RegistryError("x")) == (400, "registry_error")


# tokens and serve ------------------------------------------------------------

def test_tokens_from_env_and_file(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("# writers\nalpha\n\n  beta  \n")
    assert load_tokens({"REGISTRY_TOKENS": "one, two,,"}) == {"one", "two"}
    assert load_tokens({"REGISTRY_TOKENS": "one"}, token_file) == {"one", "alpha", "beta"}
    assert load_tokens({"REGISTRY_TOKEN_FILE": str(token_file)}) == {"alpha", "beta"}
    assert load_tokens({}) == frozenset()
    with pytest.raises(registry.RegistryError, match="token file"):
        load_tokens({}, tmp_path / "missing")
    settings = settings_from_env({"REGISTRY_TOKENS": "x", "REGISTRY_MAX_UPLOAD_BYTES": "10"})
    assert settings.tokens == {"x"} and settings.max_upload_bytes == 10


def test_cli_does_not_import_the_server() -> None:
    code = ("import sys, registry.cli; bad = [m for m in ('fastapi', 'uvicorn', 'torch') "
            "if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(proc: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)


def test_serve_with_two_workers(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", ["gravity"])
    shutil.copytree(MODULES / "drag", root / "modules" / "drag")
    (tmp_path / "tokens").write_text("s3cret\n")
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}
    env.pop("REGISTRY_TOKENS", None)
    env.pop("REGISTRY_ROOT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry.cli", "serve", "--port", str(port), "--workers", "2",
         "--token-file", str(tmp_path / "tokens")],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        _wait_healthy(proc, base)

        def health(_: int) -> dict[str, Any]:
            response = httpx.get(f"{base}/health", timeout=10)
            assert response.status_code == 200
            return dict(response.json())

        pids: set[int] = set()
        with ThreadPoolExecutor(8) as pool:
            for _ in range(10):
                pids |= {h["pid"] for h in pool.map(health, range(24))}
                if len(pids) >= 2:
                    break
        assert proc.pid not in pids
        assert len(pids) == 2, pids
        data = health(0)
        assert data["unregistered"] == 2 and data["modules"] == 0
        refused = httpx.post(f"{base}/modules/gravity/stages",
                             json={"version": "1.0.0", "stage": "prod"},
                             headers={"Authorization": "Bearer nope"}, timeout=10)
        assert refused.status_code == 403
        accepted = httpx.post(f"{base}/modules/gravity/stages",
                              json={"version": "1.0.0", "stage": "prod"},
                              headers={"Authorization": "Bearer s3cret"}, timeout=10)
        assert accepted.status_code == 404  # authorised; gravity is not registered yet
        assert json.loads(accepted.text)["type"] == "not_found"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_sigterm_stops_the_server_with_a_request_in_flight(tmp_path: Path) -> None:
    """Issue 13, finding 11: an upload queued on the registration lock kept a served
    process alive after SIGTERM until it was killed."""
    from filelock import FileLock

    from registry.server.app import GRACE_S

    root = make_repo(tmp_path / "repo", ["gravity", "drag"])
    port = _free_port()
    env = {**os.environ, "REGISTRY_TOKENS": TOKEN}
    env.pop("REGISTRY_ROOT", None)
    proc = subprocess.Popen([sys.executable, "-m", "registry.cli", "serve", "--port", str(port)],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api/v1"
    lock = FileLock(str(root / ".git" / "registry-upload.lock"))
    try:
        _wait_healthy(proc, base)
        lock.acquire()  # another registration holds the lock: the upload below waits for it

        def post() -> int:
            try:
                return httpx.post(f"{base}/modules", files={"archive": (
                    "m.tar.gz", targz(root / "modules" / "drag"))}, headers=AUTH,
                    timeout=120).status_code
            except httpx.TransportError:
                return 0

        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(post)
            time.sleep(2)
            assert not waiting.done()
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=GRACE_S + 20)
            stopped_after = time.monotonic() - started
            assert waiting.result(timeout=30) in (0, 500, 503)
        assert stopped_after < GRACE_S + 10, stopped_after
        assert git(root, "tag", "-l") == ""  # the queued upload registered nothing
    finally:
        lock.release()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_every_connection_gets_tcp_nodelay_with_any_number_of_workers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: with --workers N the children's listening socket has protocol 0, asyncio
    leaves Nagle on, and each response waits ~40 ms for a delayed ACK."""
    from typer.testing import CliRunner

    from registry.cli.main import app
    from registry.server.nodelay import NoDelayHTTPProtocol, set_no_delay

    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    try:
        class Transport:
            def get_extra_info(self, name: str) -> Any:
                return conn if name == "socket" else None

        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        set_no_delay(Transport())  # type: ignore[arg-type]
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        for s in (client, conn, listener):
            s.close()
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    # `serve` hands uvicorn's workers the root through the environment: keep it from
    # leaking into later tests' subprocesses.
    monkeypatch.setenv("REGISTRY_ROOT", "unset-by-the-test")
    monkeypatch.delenv("REGISTRY_ROOT")
    monkeypatch.setenv("REGISTRY_TOKEN_FILE", "unset-by-the-test")
    monkeypatch.delenv("REGISTRY_TOKEN_FILE")
    result = CliRunner().invoke(app, ["serve", "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert seen["workers"] == 3
    assert seen["http"] == "registry.server.nodelay:NoDelayHTTPProtocol"
    from uvicorn.importer import import_from_string

    assert import_from_string(seen["http"]) is NoDelayHTTPProtocol
