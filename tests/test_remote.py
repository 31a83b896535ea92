"""The remote client against the real server: CLI over HTTP, the verified cache, uploads, errors."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import registry
from registry.api import Registry
from registry.errors import (
    IntegrityError,
    NotFound,
    RegistryError,
    ServerUnreachable,
    Unauthorized,
    VersionConflict,
)
from registry.store.http import HttpStore
from tests.conftest import git, make_repo

TOKEN = "test-token-0123456789"
COMPOSITE = "falling-net"


def falling_spec() -> dict[str, Any]:
    """gravity (equation) + drag-net (network): a composite whose parents need their files."""
    return {
        "schema": 1, "name": COMPOSITE,
        "constants": {"M_earth": {"value": 5.972e24, "unit": "kg"},
                      "R_earth": {"value": 6.371e6, "unit": "m"}},
        "nodes": {
            "gravity": {"module": "gravity@^1",
                        "inputs": {"m1": "M_earth", "m2": "m", "r": "R_earth + y"},
                        "outputs": {"F": "F_g"}},
            "drag": {"module": "drag-net@^1", "outputs": {"F": "F_d"}},
        },
        "inputs": {"y": {"unit": "m", "range": [0.0, 100.0]},
                   "m": {"unit": "kg", "range": [0.1, 10.0]}},
        "outputs": {"a": {"unit": "m/s^2", "value": "(F_d - F_g)/m"}},
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A registry with gravity, drag, drag-net and a composite, served on a free port."""
    import uvicorn

    from registry.composition import parse_spec
    from registry.server.app import Settings, create_app

    root = make_repo(tmp_path_factory.mktemp("served") / "repo", ["gravity", "drag", "drag-net"])
    reg = registry.open(root)
    for name in ("gravity", "drag", "drag-net"):
        reg.register(root / "modules" / name)
    reg.register_composite(reg.compose(parse_spec(falling_spec())), name=COMPOSITE)

    app = create_app(root, settings=Settings(tokens=frozenset({TOKEN})))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", root
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def url(served: tuple[str, Path]) -> str:
    return served[0]


@pytest.fixture
def root(served: tuple[str, Path]) -> Path:
    return served[1]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("REGISTRY_URL", "REGISTRY_TOKEN", "REGISTRY_INDEX_URL")}
    return subprocess.run([sys.executable, "-m", "registry.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**environ, **(env or {})})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# the command line ------------------------------------------------------------------------------


def test_cli_list_remote_shows_the_servers_modules(url: str, tmp_path: Path) -> None:
    # Run outside any git repository: the server's registry is all there is.
    result = cli("list", "--remote", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "KIND", "STAGES", "SUMMARY"]
    listed = {line.split()[0]: line.split()[1:3] for line in lines[1:] if line.strip()}
    assert listed["gravity"] == ["1.0.0", "equation"]
    assert listed["drag-net"] == ["1.0.0", "network"]
    assert listed[COMPOSITE] == ["1.0.0", "composite"]

    data = json.loads(cli("list", "--json", cwd=tmp_path, env={"REGISTRY_URL": url}).stdout)
    assert {m["name"] for m in data["modules"]} >= {"gravity", "drag", "drag-net", COMPOSITE}
    assert set(data["modules"][0]) == {"name", "version", "kind", "summary", "tag", "commit",
                                       "created", "stages"}
    every = json.loads(cli("list", "--all", "--kind", "network", "--json", "--remote", url,
                           cwd=tmp_path).stdout)
    assert [(m["name"], m["version"]) for m in every["modules"]] == [("drag-net", "1.0.0")]


def test_promote_and_resolve_a_stage_remotely(url: str, tmp_path: Path) -> None:
    remote = registry.open(url, token=TOKEN, cache_dir=tmp_path / "cache")
    assert remote.promote("drag@^1", "staging").startswith("drag#staging#")
    resolved = remote.resolve("drag#staging")
    assert (resolved.exact, resolved.tag, resolved.stages) == ("drag@1.0.0", "drag@v1.0.0",
                                                               ("staging",))


def test_cli_show_remote_equals_local(url: str, root: Path, tmp_path: Path) -> None:
    remote = cli("show", "drag-net@^1", "--json", "--remote", url, cwd=tmp_path)
    local = cli("show", "drag-net@^1", "--json", cwd=root)
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == json.loads(local.stdout)


def test_cli_load_remote_fills_the_cache_with_verified_files(
    url: str, root: Path, tmp_path: Path, cache: Path
) -> None:
    env = {"REGISTRY_CACHE_DIR": str(cache)}
    result = cli("load", "gravity@1.0.0", "--json", "--remote", url, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(cli("load", "gravity@1.0.0", "--json",
                                                       cwd=root).stdout)

    result = cli("load", "drag-net@1.0.0", "--json", "--remote", url, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parameters"] > 1000
    recorded = registry.open(root).get("drag-net@1.0.0").network.weights.sha256  # type: ignore[union-attr]
    cached = cache / recorded
    assert cached.is_file() and sha256(cached) == recorded
    assert [p.name for p in cache.iterdir()] == [recorded]  # no leftover temporary files


def test_cli_register_remote_uploads_with_the_token(url: str, root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "work" / "gravity-two"
    shutil.copytree(root / "modules" / "gravity", folder)
    path = folder / "module.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(name="gravity-two", version="2.0.0")
    data["provenance"] = {"source": "hand-written"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    refused = cli("register", str(folder), "--remote", url, cwd=tmp_path)
    assert refused.returncode == 1 and "REGISTRY_TOKEN" in refused.stderr
    wrong = cli("register", str(folder), "--remote", url, cwd=tmp_path,
                env={"REGISTRY_TOKEN": "not-a-token"})
    assert wrong.returncode == 1 and "REGISTRY_TOKEN" in wrong.stderr
    assert "Traceback" not in refused.stderr + wrong.stderr

    done = cli("register", str(folder), "--remote", url, cwd=tmp_path,
               env={"REGISTRY_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("registered: gravity-two@v2.0.0 at ")
    assert "gravity-two@v2.0.0" in git(root, "tag", "--list").split()
    again = cli("register", str(folder), "--remote", url, "--json", cwd=tmp_path,
                env={"REGISTRY_TOKEN": TOKEN})
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["created"] is False
    assert registry.open(url).get("gravity-two").version == "2.0.0"


def test_server_down_is_one_line_naming_the_url(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for command in (["list"], ["show", "gravity"], ["load", "gravity@1.0.0"],
                    ["register", str(tmp_path)]):
        result = cli(*command, "--remote", dead, cwd=tmp_path)
        assert result.returncode == 1, command
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        if command[0] != "register":  # register checks the folder first
            assert dead in lines[0] and "registry serve" in lines[0]


def test_remote_errors_are_the_registrys_errors(url: str, tmp_path: Path) -> None:
    result = cli("show", "nothing", "--remote", url, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: no module `nothing`; `registry list` shows what "
                                     "exists")
    remote = registry.open(url, cache_dir=tmp_path / "cache")
    with pytest.raises(NotFound, match=r"no version of `gravity` matches `gravity@9\.9\.9`"):
        remote.get("gravity@9.9.9")
    with pytest.raises(NotFound, match="is not a module reference"):
        remote.get("Gravity!")
    with pytest.raises(RegistryError, match="must start with http"):
        HttpStore("localhost:8000")


def test_a_changed_version_is_a_conflict(url: str, root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "gravity"
    shutil.copytree(root / "modules" / "gravity", folder)
    path = folder / "module.yaml"
    path.write_text(path.read_text().replace("Newtonian attraction", "Attraction"))
    remote = registry.open(url, token=TOKEN, cache_dir=tmp_path / "cache")
    with pytest.raises(VersionConflict, match=r"gravity@1\.0\.0 is already registered"):
        remote.register(folder)
    with pytest.raises(Unauthorized, match="REGISTRY_TOKEN"):
        registry.open(url, token="nope").register(folder)


# loading -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["gravity@1.0.0", "drag@^1", "drag-net@1.0.0",
                                 f"{COMPOSITE}@1.0.0"])
def test_loaded_modules_compute_what_local_ones_do(url: str, root: Path, cache: Path,
                                                   ref: str) -> None:
    import torch

    local = registry.open(root).load(ref)
    remote = registry.open(url, cache_dir=cache).load(ref)
    assert type(remote) is type(local)
    assert (remote.input_names, remote.output_names) == (local.input_names, local.output_names)
    x = torch.rand(16, len(local.input_names), generator=torch.Generator().manual_seed(0)) + 0.5
    with torch.no_grad():
        assert torch.equal(remote(x), local(x))
    assert {k: v.tolist() for k, v in remote.state_dict().items()} == {
        k: v.tolist() for k, v in local.state_dict().items()}


def test_a_composite_fetches_its_parents_by_their_pinned_versions(url: str, root: Path,
                                                                  cache: Path) -> None:
    reg = registry.open(root)
    registry.open(url, cache_dir=cache).load(COMPOSITE)
    composite = reg.get(COMPOSITE)
    assert composite.composition is not None and composite.composition.weights is not None
    parent = reg.get("drag-net@1.0.0")
    assert parent.network is not None
    spec = hashlib.sha256(reg.resolve(COMPOSITE).read("compose.yaml")).hexdigest()
    assert {p.name for p in cache.iterdir()} == {composite.composition.weights.sha256,
                                                 parent.network.weights.sha256, spec}


def test_a_tampered_cache_file_is_detected_and_fetched_again(
    url: str, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    remote = registry.open(url, cache_dir=cache)
    first = remote.load("drag-net@1.0.0")
    (cached,) = list(cache.iterdir())
    good = cached.read_bytes()
    cached.write_bytes(good[:-8] + b"tampered")
    with caplog.at_level(logging.WARNING, logger="registry.remote"):
        again = remote.load("drag-net@1.0.0")
    assert "corrupted" in caplog.text
    assert cached.read_bytes() == good
    x = torch.rand(4, 4) + 0.5
    with torch.no_grad():
        assert torch.equal(first(x), again(x))


def test_an_intact_cache_needs_no_download(url: str, cache: Path) -> None:
    registry.open(url, cache_dir=cache).load("drag-net@1.0.0")
    requests: list[str] = []
    remote = registry.open(url, cache_dir=cache)
    client = remote.store._http()
    client.event_hooks["request"].append(lambda request: requests.append(request.url.path))
    remote.load("drag-net@1.0.0")
    assert not [path for path in requests if "/files/" in path]


# a lying server ------------------------------------------------------------------------------


def _lying_remote(url: str, cache: Path, *, body: bytes | None = None,
                  announce: str | None = None) -> Registry:
    """A client whose file downloads are altered between the real server and the client."""
    import httpx

    remote = registry.open(url, cache_dir=cache)
    real = httpx.Client(base_url=url)

    def handler(request: httpx.Request) -> httpx.Response:
        response = real.request(request.method, request.url.path)
        if "/files/" not in request.url.path:
            return httpx.Response(response.status_code, content=response.content,
                                  headers={"content-type": response.headers["content-type"]})
        content = body if body is not None else response.content
        sha = announce or hashlib.sha256(content).hexdigest()
        return httpx.Response(200, headers={"X-Content-SHA256": sha}, content=content)

    remote.store._client = httpx.Client(base_url=url, transport=httpx.MockTransport(handler))
    return remote


def test_a_file_differing_from_the_manifest_is_refused(url: str, cache: Path) -> None:
    remote = _lying_remote(url, cache, body=b"not the weights")
    with pytest.raises(IntegrityError, match="the manifest records"):
        remote.load("drag-net@1.0.0")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_download_differing_from_the_servers_hash_is_refused(url: str, cache: Path) -> None:
    remote = _lying_remote(url, cache, announce="0" * 64)
    with pytest.raises(IntegrityError, match="the server announced"):
        remote.load("drag-net@1.0.0")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_server_that_stops_answering_times_out_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # accepts connections, never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        remote = registry.open(f"http://127.0.0.1:{port}", timeout=0.5,
                                cache_dir=tmp_path / "cache")
        with pytest.raises(ServerUnreachable, match=r"did not answer within 0\.5 s; is the "
                           r"server running\?"):
            remote.list()


def test_remote_list_imports_neither_torch_nor_mlflow(url: str, tmp_path: Path) -> None:
    probe = ("import sys; from registry.cli import app\n"
             f"for command in (['list', '--remote', {url!r}], "
             f"['show', 'gravity', '--remote', {url!r}]):\n"
             "    try:\n        app(command)\n    except SystemExit:\n        pass\n"
             "print('HEAVY', sorted(m for m in ('torch', 'mlflow', 'dvc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.splitlines()[-1] == "HEAVY []"
