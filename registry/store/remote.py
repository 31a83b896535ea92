"""A registry served over HTTP (`registry serve`), read and written through its JSON API.

`RemoteRegistry` offers the verbs the command line needs (`list`, `versions`,
`resolve`, `get`, `load`, `evaluate`, `register`) against a server instead of a
local repository. Files (weights, compose specs, evaluation data) are
downloaded into a content-addressed cache, `~/.cache/registry/<sha256>`
(`REGISTRY_CACHE_DIR` moves it): every file is checked against the sha256 its
manifest records and the server's `X-Content-SHA256`, and every cached file is
hashed again before use, so a corrupted entry is noticed and fetched again.
Modules are then built by the same code as local ones (`registry.nn.build`,
and the composer for composites, whose parents are fetched by their pinned
versions).

Errors are the registry's own: the server's JSON errors map back to
`NotFound`, `VersionConflict`, `ManifestError`, ...; a server that cannot be
reached is `ServerUnreachable`, a refused token `Unauthorized`; each one line.

Example:
    >>> reg = RemoteRegistry("http://127.0.0.1:8000")
    >>> [row.name for row in reg.list()]
    ['drag', 'gravity']
    >>> gravity = reg.load("gravity@1.0.0")         # a torch.nn.Module
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from registry.errors import (
    BudgetExceeded,
    CompositionError,
    DistillationError,
    ExpressionError,
    IntegrityError,
    ManifestError,
    NotFound,
    RegistryError,
    UnitError,
    VersionConflict,
)
from registry.spec import MANIFEST_FILE, Manifest

if TYPE_CHECKING:
    import httpx

    from registry.compose.module import ComposedModule
    from registry.nn.ports import PortModule
    from registry.store.store import RegisterResult

__all__ = ["RemoteRegistry", "RemoteResolved", "RemoteRow", "ServerUnreachable", "Unauthorized",
           "default_cache_dir"]

log = logging.getLogger("registry.remote")

API = "/api/v1"
CHUNK = 1 << 16
REGISTER_TIMEOUT_S = 900.0  # the server validates and measures the module before it answers
_START_HINT = "is the server running? start it with `registry serve`"

# The server's error `type` -> the registry's exception (statuses are the fallback).
_ERROR_TYPES: dict[str, type[RegistryError]] = {
    "not_found": NotFound,
    "invalid_reference": NotFound,
    "missing_file": NotFound,
    "version_conflict": VersionConflict,
    "integrity_error": IntegrityError,
    "manifest_error": ManifestError,
    "invalid_upload": ManifestError,
    "invalid_path": ManifestError,
    "expression_error": ExpressionError,
    "unit_error": UnitError,
    "composition_error": CompositionError,
    "budget_exceeded": BudgetExceeded,
    "distillation_error": DistillationError,
}
_ERROR_STATUSES: dict[int, type[RegistryError]] = {404: NotFound, 409: VersionConflict}


class ServerUnreachable(RegistryError):
    """The registry server did not answer (down, wrong URL, timed out)."""


class Unauthorized(RegistryError):
    """The server refused a write: no token, or not one of its tokens."""


def default_cache_dir() -> Path:
    """`REGISTRY_CACHE_DIR`, else `~/.cache/registry`."""
    configured = os.environ.get("REGISTRY_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "registry"


@dataclass(frozen=True)
class RemoteRow:
    """One registered version as the server lists it (the fields of `IndexRow.to_dict`)."""

    name: str
    version: str
    kind: str
    summary: str
    tag: str
    commit: str
    created: str
    stages: tuple[str, ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RemoteRow:
        return cls(name=data["name"], version=data["version"], kind=data["kind"],
                   summary=data.get("summary") or "", tag=data.get("tag") or "",
                   commit=data.get("commit") or "", created=data.get("created") or "",
                   stages=tuple(data.get("stages") or ()), inputs=dict(data.get("inputs") or {}),
                   outputs=dict(data.get("outputs") or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "kind": self.kind,
                "summary": self.summary, "tag": self.tag, "commit": self.commit,
                "created": self.created, "stages": list(self.stages)}


@dataclass(frozen=True)
class RemoteResolved:
    """A reference resolved by the server; reads the version's files through the cache.

    Offers what `registry.nn.build.build_module` and `registry.evaluation` use of
    `registry.store.store.Resolved`: `manifest`, `commit`, `tag`, `label`,
    `folder`, `where()` and `read()`.
    """

    manifest: Manifest
    exact: str  # `name@version`, or `name@workspace` for the server's working tree
    commit: str | None
    tag: str | None
    stages: tuple[str, ...]
    remote: RemoteRegistry = field(repr=False, compare=False)

    @property
    def folder(self) -> str:
        return f"modules/{self.manifest.name}"

    @property
    def label(self) -> str:
        return self.tag or f"{self.manifest.name}@workspace"

    def where(self, relpath: str) -> str:
        return f"{self.remote.url} {self.exact}:{self.folder}/{relpath}"

    def read(self, relpath: str) -> bytes:
        """The file's bytes, verified (from the cache when it holds them intact)."""
        return self.remote.fetch(self, relpath).read_bytes()

    def recorded_sha256(self, relpath: str) -> str | None:
        """The sha256 the manifest records for `relpath` (None: it records none)."""
        manifest = self.manifest
        files = []
        if manifest.network is not None:
            files.append(manifest.network.weights)
        if manifest.composition is not None and manifest.composition.weights is not None:
            files.append(manifest.composition.weights)
        if manifest.evaluation is not None and manifest.evaluation.data is not None:
            files.append(manifest.evaluation.data)
        for ref in files:
            if ref.path == relpath:
                return ref.sha256
        return None


class RemoteRegistry:
    """The verbs of `registry.api.Registry` the CLI needs, over a server's JSON API."""

    def __init__(self, url: str, *, token: str | None = None, cache_dir: str | Path | None = None,
                 timeout: float = 30.0) -> None:
        url = url.strip().rstrip("/")
        url = url.removesuffix(API)
        if not url.startswith(("http://", "https://")):
            raise RegistryError(f"remote registry URL {url!r} must start with http:// or "
                                "https:// (e.g. http://127.0.0.1:8000, what `registry serve` "
                                "prints)")
        self.url = url
        self.token = token if token is not None else os.environ.get("REGISTRY_TOKEN") or None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.timeout = timeout
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"RemoteRegistry({self.url!r})"

    def __enter__(self) -> RemoteRegistry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # reading -----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self._json("GET", "/health")
        return data

    def list(self, *, kind: str | None = None,
             all_versions: bool = False) -> builtins.list[RemoteRow]:
        """Registered modules: the latest version of each, or every version."""
        params = {"kind": kind} if kind is not None else None
        data = self._json("GET", "/modules", params=params)
        rows = [RemoteRow.from_json(entry) for entry in data.get("modules", [])]
        if not all_versions:
            return sorted(rows, key=lambda r: r.name)
        every = [row for name in sorted({r.name for r in rows}) for row in self.versions(name)]
        return [row for row in every if kind is None or row.kind == kind]

    def unregistered(self) -> builtins.list[str]:
        """Modules in the server's working tree with no registered version."""
        data = self._json("GET", "/modules")
        return sorted(str(entry["name"]) for entry in data.get("unregistered", []))

    def versions(self, name: str) -> builtins.list[RemoteRow]:
        """Every registered version of `name`, oldest first."""
        from registry.reference import Version

        data = self._json("GET", f"/modules/{_segment(name)}/versions")
        rows = [RemoteRow.from_json(entry) for entry in data.get("versions", [])]
        return sorted(rows, key=lambda r: Version.parse(r.version))

    def resolve(self, ref: str) -> RemoteResolved:
        """The version `ref` resolves to on the server (`gravity@^1`, `drag#prod`, ...)."""
        data = self._json("GET", f"/modules/{_segment(ref)}")
        try:
            manifest = Manifest.model_validate(data["manifest"])
            exact = str(data["ref"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"{self.url}: the answer for {ref!r} is not a module "
                                f"({type(exc).__name__}); is this a registry server of the "
                                "same version?") from None
        return RemoteResolved(manifest=manifest, exact=exact, commit=data.get("commit"),
                              tag=data.get("tag"), stages=tuple(data.get("stages") or ()),
                              remote=self)

    def get(self, ref: str) -> Manifest:
        """The manifest `ref` resolves to."""
        return self.resolve(ref).manifest

    def load(self, ref: str) -> PortModule:
        """The torch module `ref` resolves to, built from verified, cached files."""
        return self._build(self.resolve(ref))

    def evaluate(self, ref: str) -> dict[str, float]:
        """Recompute accuracy metrics here, from the module's `evaluation` section."""
        from registry.evaluation import evaluate

        resolved = self.resolve(ref)
        module = self._build(resolved)
        metrics: dict[str, float] = evaluate(resolved, module=module,  # type: ignore[arg-type]
                                             load=self.load)
        return metrics

    def fetch(self, resolved: RemoteResolved, relpath: str) -> Path:
        """The cached path of a file of `resolved`, downloading and verifying it when needed.

        With a sha256 in the manifest, an intact cache entry is used without a
        request; otherwise the file is downloaded and must hash to both the
        manifest's sha256 (when it records one) and the server's
        `X-Content-SHA256`.
        """
        recorded = resolved.recorded_sha256(relpath)
        where = resolved.where(relpath)
        if recorded is not None:
            cached = self._cached(recorded, where)
            if cached is not None:
                return cached
        return self._download(resolved.exact, relpath, recorded, where)

    # writing -----------------------------------------------------------------

    def register(self, path: str | Path, *, bump: str | None = None) -> RegisterResult:
        """Upload the module folder at `path` (a .tar.gz of its regular files) and register it.

        Needs a write token: `token=` or `REGISTRY_TOKEN`. As a local
        registration does, the filled manifest (cost, metrics, provenance) is
        written back to the folder's module.yaml.
        """
        from registry.store.store import RegisterResult

        if bump is not None:
            raise RegistryError("--bump is not available for a remote registry; raise "
                                "`version` in module.yaml, then register again")
        folder = Path(path)
        if folder.is_file() and folder.name == MANIFEST_FILE:
            folder = folder.parent
        if not (folder / MANIFEST_FILE).is_file():
            raise NotFound(f"{folder}: no {MANIFEST_FILE} here; give a module folder (with its "
                           "module.yaml) to register")
        with tempfile.TemporaryFile() as archive:
            _pack(folder, archive)
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
        return RegisterResult(manifest=self.get(ref), tag=tag, commit=commit, created=created)

    def _write_back(self, ref: str, path: Path) -> None:
        """Put the registered module.yaml (cost, metrics, provenance filled) into the folder,
        as a local registration does, so that registering the folder again is a no-op."""
        with self._transport():
            response = self._http().get(f"{API}/modules/{_segment(ref)}/files/{MANIFEST_FILE}")
        if response.status_code >= 400:
            raise self._error(response)
        data = response.content
        announced = response.headers.get("x-content-sha256", "").strip().lower()
        if announced and hashlib.sha256(data).hexdigest() != announced:
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

    # building ----------------------------------------------------------------

    def _build(self, resolved: RemoteResolved) -> PortModule:
        """As `Registry._build`: equations and networks directly, composites from their spec."""
        from registry.nn.build import build_module

        manifest = resolved.manifest
        if manifest.kind != "composite":
            return build_module(resolved)  # type: ignore[arg-type]
        from registry.compose.module import load_composite

        return load_composite(resolved, compose=self._compose)

    def _compose(self, spec: Any, *, source: str,
                 weights: tuple[bytes, str, str] | None) -> ComposedModule:
        """As `Registry._compose`, with parents resolved and fetched from the server."""
        from registry.compose.module import assemble

        def resolve(ref: str) -> tuple[Manifest, str, RemoteResolved]:
            found = self.resolve(ref)
            return found.manifest, found.exact, found

        return assemble(spec, source=source, resolve=resolve, build=self._build,
                        weights=weights)

    # the cache -----------------------------------------------------------------

    def _cached(self, sha256: str, where: str) -> Path | None:
        path = self.cache_dir / sha256
        if not path.is_file():
            return None
        if _sha256_file(path) == sha256:
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
        cls = _ERROR_TYPES.get(type_) or _ERROR_STATUSES.get(status, RegistryError)
        if status >= 500:
            return RegistryError(f"the registry server at {self.url} failed (HTTP {status}: "
                                 f"{message})")
        return cls(message)


def _segment(text: str) -> str:
    """A reference as one URL path segment (`gravity#prod` -> `gravity%23prod`)."""
    return quote(text, safe="@")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pack(folder: Path, out: Any) -> None:
    """A .tar.gz of the folder's regular files, paths relative to it (no links, no caches)."""
    import tarfile

    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part == "__pycache__" or part.startswith(".git") for part in rel.parts):
            continue
        if path.is_symlink():
            raise ManifestError(f"{path}: is a symbolic link; only regular files are uploaded, "
                                "replace the link by the file itself")
        if path.is_dir():
            continue
        if not path.is_file():
            raise ManifestError(f"{path}: is not a regular file; remove it from the module "
                                "folder")
        files.append((path, rel.as_posix()))
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path, arcname in files:
            info = tarfile.TarInfo(arcname)
            stat = path.stat()
            info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
            with path.open("rb") as handle:
                tar.addfile(info, handle)
