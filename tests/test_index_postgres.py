"""The index on PostgreSQL: same answers as SQLite, rebuilds, shared databases, concurrency.

Needs a server: `REGISTRY_TEST_POSTGRES_URL` (an SQLAlchemy URL; `scripts/postgres.sh`
starts one and prints it, `.ci/run` does both). Each test gets its own schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import registry
from registry.errors import RegistryError
from registry.store.git import GitRepo
from registry.store.index import VERSIONS_TABLE, Index, dispose_engines
from tests.conftest import git, make_repo

SKIP_REASON = ("PostgreSQL not available: set REGISTRY_TEST_POSTGRES_URL "
               "(scripts/postgres.sh starts one)")


@pytest.fixture(scope="module")
def pg_server() -> str:
    url = os.environ.get("REGISTRY_TEST_POSTGRES_URL")
    if not url:
        pytest.skip(SKIP_REASON)
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        pytest.skip(f"{SKIP_REASON}; {url.split('@')[-1]} did not answer: "
                    f"{str(exc.orig).strip().splitlines()[0]}")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def pg_url(pg_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A URL whose tables land in a fresh schema; REGISTRY_INDEX_URL points at it."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(pg_server)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(pg_server).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    monkeypatch.setenv("REGISTRY_INDEX_URL", rendered)
    monkeypatch.delenv("REGISTRY_INDEX_KEY", raising=False)
    try:
        yield rendered
    finally:
        dispose_engines()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def table_rows(url: str, table: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def bump(repo: Path, name: str, version: str, summary: str | None = None) -> None:
    import yaml

    path = repo / "modules" / name / "module.yaml"
    data = yaml.safe_load(path.read_text())
    data["version"] = version
    if summary is not None:
        data["summary"] = summary
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def answers(reg: registry.Registry) -> dict[str, object]:
    """Everything a reader asks the index, in comparable form."""
    refs = ["gravity", "gravity@^1", "gravity@~1.0", "gravity@1.0.0", "gravity#prod", "drag"]
    return {
        "list": [r.to_dict() for r in reg.list()],
        "all": [r.to_dict() for r in reg.list(all_versions=True)],
        "equations": [r.name for r in reg.list(kind="equation")],
        "versions": [(r.version, r.stages, r.manifest) for r in reg.versions("gravity")],
        "resolve": {ref: (reg.resolve(ref).manifest.to_dict(), reg.resolve(ref).tag)
                    for ref in refs},
        "unregistered": reg.unregistered(),
    }


def test_postgres_gives_the_same_answers_as_sqlite(
    pg_url: str, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = registry.open(repo)
    assert reg.store.index.is_postgres
    reg.register(repo / "modules" / "gravity")
    reg.register(repo / "modules" / "drag")
    reg.promote("gravity@1.0.0", "prod")
    bump(repo, "gravity", "1.1.0", "Gravity, again")
    reg.register(repo / "modules" / "gravity")
    on_postgres = answers(registry.open(repo))
    assert table_rows(pg_url, VERSIONS_TABLE) == 3
    assert on_postgres["resolve"]["gravity#prod"][1] == "gravity@v1.0.0"  # type: ignore[index]
    assert [v for v, *_ in on_postgres["versions"]] == ["1.0.0", "1.1.0"]  # type: ignore[attr-defined]

    monkeypatch.delenv("REGISTRY_INDEX_URL")
    sqlite = registry.open(repo)
    assert sqlite.store.index.url.startswith("sqlite")
    assert answers(sqlite) == on_postgres


def test_cli_lists_from_postgres(pg_url: str, repo: Path) -> None:
    registry.open(repo).register(repo / "modules" / "gravity")
    out = subprocess.run([sys.executable, "-m", "registry.cli", "list", "--json"], cwd=repo,
                         capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert '"name": "gravity"' in out.stdout
    assert not (repo / ".registry" / "index.sqlite").exists()


def test_index_is_rebuilt_when_tags_change(pg_url: str, repo: Path) -> None:
    reg = registry.open(repo)
    reg.register(repo / "modules" / "gravity")
    commit = git(repo, "rev-list", "-n1", "gravity@v1.0.0").strip()
    assert [(r.name, r.version) for r in reg.list()] == [("gravity", "1.0.0")]

    git(repo, "tag", "-d", "gravity@v1.0.0")
    assert reg.list() == []
    git(repo, "tag", "-a", "gravity@v1.0.0", commit, "-m", "again")
    git(repo, "tag", "gravity#prod#1", commit)
    rows = registry.open(repo).list()
    assert [(r.name, r.version, r.stages) for r in rows] == [("gravity", "1.0.0", ("prod",))]
    git(repo, "tag", "gravity#prod!#2", commit)  # GTO's unassign
    assert reg.get("gravity").version == "1.0.0"
    assert reg.list()[0].stages == ()
    # A deleted index (or a new schema) is rebuilt from git in full.
    import sqlalchemy as sa

    with reg.store.index.engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {VERSIONS_TABLE}"))
        conn.execute(sa.text("DELETE FROM registry_meta"))
    assert [r.version for r in registry.open(repo).list()] == ["1.0.0"]
    assert reg.store.index.refresh(force=True) is True
    assert reg.store.index.refresh() is False


def test_two_repositories_share_one_database_without_seeing_each_other(
    pg_url: str, tmp_path: Path
) -> None:
    one = make_repo(tmp_path / "one", ["gravity", "drag"])
    two = make_repo(tmp_path / "two", ["gravity"])
    bump(two, "gravity", "1.0.0", "Gravity of the second repository")
    git(two, "commit", "-qam", "other summary")
    reg1, reg2 = registry.open(one), registry.open(two)
    reg1.register(one / "modules" / "gravity")
    reg1.register(one / "modules" / "drag")
    reg2.register(two / "modules" / "gravity")

    assert [r.name for r in reg1.list()] == ["drag", "gravity"]
    assert [r.name for r in reg2.list()] == ["gravity"]
    assert reg1.get("gravity").summary == "Newtonian attraction between two point masses"
    assert reg2.get("gravity").summary == "Gravity of the second repository"
    assert table_rows(pg_url, VERSIONS_TABLE) == 3

    # Changing one repository's tags rebuilds its rows only.
    git(one, "tag", "-d", "gravity@v1.0.0")
    assert [r.name for r in reg1.list()] == ["drag"]
    assert [r.name for r in reg2.list()] == ["gravity"]
    with pytest.raises(registry.NotFound):
        reg1.get("gravity")
    assert reg2.get("gravity@1.0.0").summary == "Gravity of the second repository"


def test_index_key_names_a_repository_explicitly(
    pg_url: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clones at different paths (servers on several hosts) may share rows by a key."""
    registry.open(repo).register(repo / "modules" / "gravity")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.setenv("REGISTRY_INDEX_KEY", "shared-registry")
    assert registry.open(repo).store.index.key == "shared-registry"
    assert [r.name for r in registry.open(repo).list()] == ["gravity"]
    assert [r.name for r in registry.open(clone).list()] == ["gravity"]


def test_readers_see_a_refresh_whole_or_not_at_all(pg_url: str, repo: Path) -> None:
    """Readers during forced rebuilds (delete all, insert all) never see a torn index."""
    reg = registry.open(repo)
    reg.register(repo / "modules" / "gravity")
    reg.register(repo / "modules" / "drag")
    commit = git(repo, "rev-list", "-n1", "gravity@v1.0.0").strip()
    git(repo, "tag", "gravity#prod#1", commit)
    extra = [f"gravity@v2.0.{i}" for i in range(5)]
    # State A: gravity 1.0.0 (prod), drag. State B: also gravity 2.0.0..2.0.4, prod -> 2.0.4
    # (GTO: a stage on a commit with several versions means the highest).
    state_a = ({("drag", "1.0.0"), ("gravity", "1.0.0")}, {"1.0.0": ("prod",)})
    state_b = ({("drag", "1.0.0"), ("gravity", "1.0.0")} | {("gravity", t[9:]) for t in extra},
               {"2.0.4": ("prod",)})
    writer = Index(GitRepo(repo), pg_url, lock_path=repo / ".registry" / "writer.lock")
    writer.refresh(force=True)

    stop = threading.Event()
    seen: list[object] = []
    errors: list[BaseException] = []

    def read() -> None:
        reader = Index(GitRepo(repo), pg_url, lock_path=repo / ".registry" / "reader.lock")
        reader.refresh = lambda **_: False  # type: ignore[method-assign]  # read only
        try:
            while not stop.is_set():
                rows = reader.versions()
                versions = {(r.name, r.version) for r in rows}
                stages = {r.version: r.stages for r in rows if r.stages}
                if (versions, stages) not in (state_a, state_b):
                    seen.append((versions, stages))
                held = reader.stages("gravity")
                if held and held[("gravity", "prod")] not in ("1.0.0", "2.0.4"):
                    seen.append(held)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(12):
            if round_ % 2 == 0:
                for tag in extra:
                    git(repo, "tag", tag, commit)
            else:
                git(repo, "tag", "-d", *extra)
            assert writer.refresh(force=True) is True
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert seen == [], f"torn reads: {seen[:3]}"


def test_concurrent_refreshes_from_several_hosts_queue_on_the_database(
    pg_url: str, repo: Path
) -> None:
    """No shared file lock (other hosts): the advisory lock keeps rebuilds from colliding."""
    reg = registry.open(repo)
    reg.register(repo / "modules" / "gravity")
    reg.register(repo / "modules" / "drag")
    indexes = [Index(GitRepo(repo), pg_url, lock_path=repo / ".registry" / f"host{i}.lock")
               for i in range(6)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(indexes))

    def refresh(index: Index) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                index.refresh(force=True)
                assert {r.name for r in index.versions()} == {"drag", "gravity"}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=refresh, args=(index,)) for index in indexes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert table_rows(pg_url, VERSIONS_TABLE) == 2


def test_unreachable_database_is_one_clear_error(
    pg_server: str, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    dead = sa.make_url(pg_server).set(port=1, password="s3cret-pw")
    monkeypatch.setenv("REGISTRY_INDEX_URL", dead.render_as_string(hide_password=False))
    try:
        with pytest.raises(RegistryError) as caught:
            registry.open(repo).list()
    finally:
        dispose_engines()
    message = str(caught.value)
    assert "REGISTRY_INDEX_URL" in message and "127.0.0.1:1" in message
    assert "s3cret-pw" not in message and "\n" not in message
