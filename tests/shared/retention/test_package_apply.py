"""Package retention deletes each package in its own step: one storage error stays local."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.context import Context
from shared.models import Package
from shared.retention.apply import apply_package_retention
from shared.storage import LocalStorage
from shared.storage.base import sidecar_key
from tests.contexts import METADATA_DBS, make_context

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
# Keep one package by count; age plays no part.
CONFIG = "package-conf:\n  max_packages: 1\n  retention_days: 0\n"


@pytest.fixture(params=METADATA_DBS)
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Context:
    return make_context(request, tmp_path, CONFIG)


def _stored_package(ctx: Context, name: str, days_old: int) -> Package:
    """Add a completed package whose artifact and sidecar are in storage."""
    key = f"_packages/test/{name}.zip"
    data = f"package {name}".encode()
    ctx.storage.put_bytes(key, data)
    ctx.storage.write_sidecar(key, {"package_id": name})
    package = Package(id=f"00000000-0000-0000-0000-00000000000{days_old}", status="completed",
                      trigger="manual", format="zip", storage="local", storage_key=key,
                      created_at=NOW - timedelta(days=days_old), finished_at=NOW,
                      size_bytes=len(data), backups=[], missing=[])
    with ctx.db.session() as session:
        session.add(package)
    return package


def _make_undeletable(ctx: Context, key: str) -> None:
    """Put a non-empty directory where the artifact was: deleting it raises StorageError.

    (Tests run as root, so a read-only directory would not stop the deletion.)
    """
    assert isinstance(ctx.storage, LocalStorage)
    path = ctx.storage.root / key
    path.unlink()
    path.mkdir()
    (path / "keep").write_bytes(b"not a file retention may remove")


def _remaining(ctx: Context) -> set[str]:
    with ctx.db.session() as session:
        return set(session.scalars(select(Package.id)))


def test_a_storage_error_keeps_its_row_and_no_other(ctx: Context) -> None:
    newest, second, stuck, oldest = (_stored_package(ctx, name, days) for name, days in
                                     (("newest", 0), ("second", 1), ("stuck", 2), ("oldest", 3)))
    assert stuck.storage_key and second.storage_key and oldest.storage_key
    _make_undeletable(ctx, stuck.storage_key)

    # Newest first: "second" is deleted before "stuck" fails, "oldest" after it.
    removed = apply_package_retention(ctx, now=NOW)

    assert [e.package_id for e in removed] == [second.id, oldest.id]
    assert _remaining(ctx) == {newest.id, stuck.id}
    for gone in (second, oldest):
        assert gone.storage_key
        assert not ctx.storage.exists(gone.storage_key)
        assert not ctx.storage.exists(sidecar_key(gone.storage_key))
    assert newest.storage_key and ctx.storage.exists(newest.storage_key)
    assert ctx.storage.exists(sidecar_key(stuck.storage_key))

    # Once storage lets go, the next run deletes what was left.
    assert isinstance(ctx.storage, LocalStorage)
    path = ctx.storage.root / stuck.storage_key
    (path / "keep").unlink()
    path.rmdir()
    assert [e.package_id for e in apply_package_retention(ctx, now=NOW)] == [stuck.id]
    assert _remaining(ctx) == {newest.id}
    assert not ctx.storage.exists(sidecar_key(stuck.storage_key))
