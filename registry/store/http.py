"""The HTTP store: a registry server (`registry serve`), read and written through its JSON API.

`registry.open("http://host:8000")` (or `REGISTRY_URL`) gives the same
`Registry` as a local path, over this store. Files (weights, compose specs,
evaluation data) are downloaded into a content-addressed cache,
`~/.cache/registry/<sha256>` (`REGISTRY_CACHE_DIR` moves it): every file is
checked against the sha256 its manifest records and the server's
`X-Content-SHA256`, and every cached file is hashed again before use, so a
corrupted entry is noticed and fetched again. The server measures what it
registers (`measures = True`): a registration uploads the folder as it is.

Errors are the registry's own: the server's JSON errors map back through
`registry.errors.WIRE`; a server that cannot be reached is
`ServerUnreachable`, a refused token `Unauthorized`; each one line.

Example:
    >>> store = HttpStore("http://127.0.0.1:8000")
    >>> [row.name for row in store.latest()]
    ['drag', 'gravity']
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from registry.core.integrity import sha256_bytes, sha256_file
from registry.core.manifest import MANIFEST_FILE, Manifest
from registry.core.reference import Reference, Version
from registry.errors import (
    IntegrityError,
    NotFound,
    RegistryError,
    ServerUnreachable,
    Unauthorized,
    wire_class,
)
from registry.store.base import Bump, Pending, RegisterResult, Resolved, VersionRow
from registry.store.content import pack_folder

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpStore", "default_cache_dir"]

log = logging.getLogger("registry.remote")

API = "/api/v1"
CHUNK = 1 << 16
PAGE = 1000  # modules per listing request (the server's maximum)
REGISTER_TIMEOUT_S = 900.0  # the server validates and measures the module before it answers
_START_HINT = "is the server running? start it with `registry serve`"


def default_cache_dir() -> Path:
    """`REGISTRY_CACHE_DIR`, else `~/.cache/registry`."""
    configured = os.environ.get("REGISTRY_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "registry"


class HttpStore:
    """The store behind a registry server's JSON API."""

    measures = True
    root = None

    def __init__(self, url: str, *, token: str | None = None, cache_dir: str | Path | None = None,
                 timeout: float = 30.0) -> None:
        url = url.strip().rstrip("/")
        url = url.removesuffix(API)
        if not url.startswith(("http://", "https://")):
            raise RegistryError(f"remote registry URL {url!r} must start with http:// or "
                                "https:// (e.g. http://127.0.0.1:8000, what `registry serve` "
                                "prints)")
        self.url = self.location = url
        self.token = token if token is not None else os.environ.get("REGISTRY_TOKEN") or None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.timeout = timeout
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"HttpStore({self.url!r})"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # reading -----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self._json("GET", "/health")
        return data

    def latest(self, kind: str | None = None, *, manifests: bool = False) -> list[VersionRow]:
        """The latest version of each module (one request per page of the listing)."""
        rows: list[VersionRow] = []
        cursor: str | None = None
        while True:
            params = {"limit": str(PAGE), **({"kind": kind} if kind is not None else {}),
                      **({"cursor": cursor} if cursor is not None else {})}
            data = self._json("GET", "/modules", params=params)
            rows += [VersionRow.from_dict(entry) for entry in data.get("modules", [])]
            cursor = data.get("next_cursor")
            if not cursor:
                break
        return self._with_manifests(sorted(rows, key=lambda r: r.name), manifests)

    def versions(self, name: str | None = None, *, kind: str | None = None,
                 manifests: bool = False) -> list[VersionRow]:
        """Every registered version (of `name`), oldest first within a module."""
        if name is None:
            return [row for n in sorted({r.name for r in self.latest(kind)})
                    for row in self.versions(n, kind=kind, manifests=manifests)]
        data = self._json("GET", f"/modules/{_segment(name)}/versions")
        rows = [VersionRow.from_dict(entry) for entry in data.get("versions", [])]
        return self._with_manifests(sorted((r for r in rows if kind is None or r.kind == kind),
                                           key=lambda r: Version.parse(r.version)), manifests)

    def _with_manifests(self, rows: list[VersionRow], manifests: bool) -> list[VersionRow]:
        if not manifests:
            return rows
        return [dataclasses.replace(r, manifest=self._json(
            "GET", f"/modules/{_segment(r.ref)}/manifest")) for r in rows]

    def stages(self, name: str | None = None) -> dict[tuple[str, str], str]:
        rows = self.versions(name) if name is not None else self.versions()
        return {(row.name, stage): row.version for row in rows for stage in row.stages}

    def unregistered(self) -> list[str]:
        data = self._json("GET", "/modules", params={"limit": "1"})  # on the first page
        return sorted(str(entry["name"]) for entry in data.get("unregistered", []))

    def resolve(self, ref: str | Reference) -> Resolved:
        """The version `ref` resolves to on the server (`gravity@^1`, `drag#prod`, ...)."""
        text = str(ref)
        data = self._json("GET", f"/modules/{_segment(text)}")
        try:
            manifest = Manifest.model_validate(data["manifest"])
            exact = str(data["ref"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"{self.url}: the answer for {text!r} is not a module "
                                f"({type(exc).__name__}); is this a registry server of the "
                                "same version?") from None
        commit = data.get("commit")
        where = f"{self.url} {exact}:modules/{manifest.name}"

        def read(relpath: str) -> bytes:
            return self._fetch(exact, manifest, relpath, f"{where}/{relpath}").read_bytes()

        return Resolved(manifest, commit, data.get("tag"), read, origin=self.url,
                        stages=tuple(data.get("stages") or ()))

    def _fetch(self, exact: str, manifest: Manifest, relpath: str, where: str) -> Path:
        """The cached path of a file, downloading and verifying it when needed.

        With a sha256 in the manifest, an intact cache entry is used without a
        request; otherwise the file is downloaded and must hash to both the
        manifest's sha256 (when it records one) and the server's
        `X-Content-SHA256`.
        """
        recorded = manifest.recorded_sha256(relpath)
        if recorded is not None:
            cached = self._cached(recorded, where)
            if cached is not None:
                return cached
        return self._download(exact, relpath, recorded, where)

    # writing -----------------------------------------------------------------

    def stage(self, path: Path, *, bump: Bump | None = None) -> Pending:
        """A module folder to upload; the server checks and measures it."""
        if bump is not None:
            raise RegistryError("--bump is not available for a remote registry; raise "
                                "`version` in module.yaml, then register again")
        folder = Path(path)
        if folder.is_file() and folder.name == MANIFEST_FILE:
            folder = folder.parent
        if not (folder / MANIFEST_FILE).is_file():
            raise NotFound(f"{folder}: no {MANIFEST_FILE} here; give a module folder (with its "
                           "module.yaml) to register")
        return Pending(folder, None, None)

    def commit(self, pending: Pending, manifest: Manifest | None) -> RegisterResult:
        """Upload the folder (a .tar.gz of its regular files); the server registers it.

        Needs a write token: `token=` or `REGISTRY_TOKEN`. As a local
        registration does, the filled manifest (cost, metrics, provenance) is
        written back to the folder's module.yaml.
        """
        folder = pending.folder
        with tempfile.TemporaryFile() as archive:
            pack_folder(folder, archive)
            size = archive.tell()
            archive.seek(0)
            files = {"archive": (f"{folder.resolve().name}.tar.gz", archive,
                                 "application/gzip")}
            log.debug("uploading %s (%d bytes) to %s", folder, size, self.url)
            data = self._json("POST", "/modules", files=files, write=True,
                              timeout=REGISTER_TIMEOUT_S)
        try:
            ref, tag, commit = str(data["ref"]), str(data["tag"]), str(data["commit"])
            created = bool(data.get("created", True))
        except (KeyError, TypeError) as exc:
            raise RegistryError(f"{self.url}: unexpected answer to the upload (no {exc}); is "
                                "this a registry server of the same version?") from None
        self._write_back(ref, folder / MANIFEST_FILE)
        return RegisterResult(manifest=self.resolve(ref).manifest, tag=tag, commit=commit,
                              created=created)

    def _write_back(self, ref: str, path: Path) -> None:
        """Put the registered module.yaml (cost, metrics, provenance filled) into the folder,
        as a local registration does, so that registering the folder again is a no-op."""
        with self._transport():
            response = self._http().get(f"{API}/modules/{_segment(ref)}/files/{MANIFEST_FILE}")
        if response.status_code >= 400:
            raise self._error(response)
        data = response.content
        announced = response.headers.get("x-content-sha256", "").strip().lower()
        if announced and sha256_bytes(data) != announced:
            raise IntegrityError(f"{self.url}: the registered {MANIFEST_FILE} of {ref} was "
                                 "damaged in transfer; registering again fetches it again")
        if path.read_bytes() != data:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)

    def promote(self, ref: str, stage: str) -> str:
        """Assign `stage` to the exact version `ref` resolves to; returns the stage tag."""
        resolved = self.resolve(ref)
        if resolved.commit is None:
            raise NotFound("only registered versions can be promoted; register it first")
        body = {"version": resolved.manifest.version, "stage": stage}
        data = self._json("POST", f"/modules/{_segment(resolved.manifest.name)}/stages",
                          json=body, write=True)
        return str(data.get("tag", ""))

    # the cache -----------------------------------------------------------------

    def _cached(self, sha256: str, where: str) -> Path | None:
        path = self.cache_dir / sha256
        if not path.is_file():
            return None
        if sha256_file(path) == sha256:
            return path
        log.warning("%s: the cached copy %s is corrupted (sha256 differs); fetching it again",
                    where, path)
        path.unlink(missing_ok=True)
        return None

    def _download(self, exact: str, relpath: str, recorded: str | None, where: str) -> Path:
        url = f"{API}/modules/{_segment(exact)}/files/{quote(relpath, safe='/')}"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=self.cache_dir)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            with (os.fdopen(fd, "wb") as out, self._transport(),
                  self._http().stream("GET", url) as response):
                if response.status_code >= 400:
                    response.read()
                    raise self._error(response)
                announced = response.headers.get("x-content-sha256", "").strip().lower()
                for chunk in response.iter_bytes(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            actual = digest.hexdigest()
            if announced and announced != actual:
                raise IntegrityError(f"{where}: the download hashes to {actual}, but the server "
                                     f"announced {announced}; the transfer was damaged, try "
                                     "again")
            if recorded is not None and actual != recorded:
                raise IntegrityError(f"{where}: the server sent a file with sha256 {actual}, but "
                                     f"the manifest records {recorded}; the server's copy is "
                                     "corrupted, tell its operator")
            if not announced:
                log.warning("%s: the server sent no X-Content-SHA256", where)
            target = self.cache_dir / actual
            os.replace(tmp, target)
            return target
        finally:
            tmp.unlink(missing_ok=True)

    # HTTP ----------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                base_url=self.url, follow_redirects=True,
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                headers={"Accept": "application/json",
                         "User-Agent": "registry-client/1"})
        return self._client

    def _json(self, method: str, path: str, *, write: bool = False,
              timeout: float | None = None, **kwargs: Any) -> Any:
        import httpx

        headers = {}
        if write:
            if not self.token:
                raise Unauthorized(f"writing to {self.url} needs a token: set REGISTRY_TOKEN to "
                                   "one of the server's tokens (its REGISTRY_TOKENS or "
                                   "--token-file)")
            headers["Authorization"] = f"Bearer {self.token}"
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=min(self.timeout, 10.0))
        with self._transport():
            response = self._http().request(method, f"{API}{path}", headers=headers, **kwargs)
        if response.status_code >= 400:
            raise self._error(response)
        try:
            return response.json()
        except ValueError:
            raise RegistryError(f"{self.url}{API}{path} did not answer with JSON (HTTP "
                                f"{response.status_code}, "
                                f"{response.headers.get('content-type', 'no content type')}); "
                                "is this URL a registry server?") from None

    @contextmanager
    def _transport(self) -> Iterator[None]:
        """Network failures become one line naming the server and the fix."""
        import httpx

        try:
            yield
        except httpx.TimeoutException:
            raise ServerUnreachable(f"the registry server at {self.url} did not answer within "
                                    f"{self.timeout:g} s; {_START_HINT} (or check "
                                    "REGISTRY_URL / --remote)") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError,
                httpx.WriteError, httpx.NetworkError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ServerUnreachable(f"cannot reach the registry server at {self.url} "
                                    f"({reason}); {_START_HINT}, or fix REGISTRY_URL / "
                                    "--remote") from None
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"request to the registry server at {self.url} failed "
                                    f"({type(exc).__name__}: {exc}); check REGISTRY_URL / "
                                    "--remote") from None

    def _error(self, response: httpx.Response) -> RegistryError:
        """The registry exception for an error answer (`{"type", "message"}`)."""
        status = response.status_code
        type_, message = "", ""
        try:
            body = response.json()
            if isinstance(body, dict):
                type_, message = str(body.get("type", "")), str(body.get("message", ""))
        except ValueError:
            pass
        if not message:
            message = (f"{self.url} answered HTTP {status} {response.reason_phrase} to "
                       f"{response.request.method} {response.request.url.path}")
        if status in (401, 403):
            if type_ == "writes_disabled":
                return Unauthorized(f"{self.url}: {message}")
            if not self.token:
                hint = "set REGISTRY_TOKEN to one of the server's tokens"
            else:
                hint = ("REGISTRY_TOKEN is not one of the server's tokens; use a token from its "
                        "REGISTRY_TOKENS or --token-file")
            return Unauthorized(f"{self.url} refused the write (HTTP {status}: {message}); "
                                f"{hint}")
        cls = wire_class(type_, status)
        if status >= 500:
            return RegistryError(f"the registry server at {self.url} failed (HTTP {status}: "
                                 f"{message})")
        return cls(message)


def _segment(text: str) -> str:
    """A reference as one URL path segment (`gravity#prod` -> `gravity%23prod`)."""
    return quote(text, safe="@")
