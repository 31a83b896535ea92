"""The index's tables (SQLAlchemy Core, built only when the index is written or a server
database is read): names, and the row layout's version."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["META_TABLE", "SCHEMA_VERSION", "STAGES_TABLE", "TABLE_PREFIX", "VERSIONS_TABLE",
           "build_metadata"]

SCHEMA_VERSION = "5"  # 3: a `ports` column beside the manifest; 4: `latest`; 5: `pending`
TABLE_PREFIX = "registry_"
# A new row layout gets a new table (the cache is rebuilt into it): old servers sharing a
# database keep theirs.
VERSIONS_TABLE = f"{TABLE_PREFIX}versions_v{SCHEMA_VERSION}"
STAGES_TABLE = f"{TABLE_PREFIX}stages"
META_TABLE = f"{TABLE_PREFIX}meta"


def build_metadata() -> sa.MetaData:
    import sqlalchemy as sa

    meta = sa.MetaData()
    sa.Table(
        VERSIONS_TABLE, meta,
        sa.Column("repo", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        # kind, summary, manifest, ports: NULL while `pending` (`index_rebuild`)
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("tag", sa.String(200), nullable=False),
        sa.Column("tag_sha", sa.String(64), nullable=False),
        sa.Column("commit", sa.String(64), nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("manifest", sa.Text, nullable=True),  # JSON text, on every backend
        sa.Column("ports", sa.Text, nullable=True),  # the ports' units, JSON
        sa.Column("latest", sa.Integer, nullable=False),  # 1: its module's latest version
        sa.Column("pending", sa.Integer, nullable=False),  # 1: manifest not parsed yet
    )
    sa.Table(
        STAGES_TABLE, meta,
        sa.Column("repo", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("stage", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
    )
    sa.Table(
        META_TABLE, meta,
        sa.Column("repo", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    return meta
