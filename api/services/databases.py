"""Register, read, change and remove databases.

Connection settings are guarded here (docs/security.md): options only the config may set
are refused, a host outside ``global.allowed_hosts`` is refused, and a change of where or
as whom to connect drops the stored password unless the same request sends one, so a
client cannot send a stored password to a server of its choosing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.services import ctx, is_database_id, paginate
from api.services.audit import audit
from shared.allowed_hosts import AllowedHosts, refusal
from shared.catalog import effective
from shared.config import DEFAULT_PORTS
from shared.encryption import NONE
from shared.engines import Target
from shared.engines.options import api_option_errors, connection_options, public_options
from shared.errors import Conflict, Invalid, NotFound
from shared.models import ACTIVE_STATUSES, Backup, Database, utcnow


def present(db: Database) -> dict[str, Any]:
    """Return the public view of ``db``: effective settings, ``password_set``, no password."""
    eff = effective(db, ctx().settings.global_)
    return {
        "id": db.id, "name": db.name, "engine": db.engine, "host": db.host, "port": db.port,
        "username": db.username, "password_set": bool(db.password),
        "database_name": db.database_name, "options": public_options(db.options),
        "schedule": eff.schedule, "timezone": eff.timezone, "compression": eff.compression,
        "retention_days": eff.retention_days, "max_backups": eff.max_backups,
        "min_backups": eff.min_backups, "keep_daily": eff.keep_daily,
        "keep_weekly": eff.keep_weekly, "keep_monthly": eff.keep_monthly,
        "keep_yearly": eff.keep_yearly, "package": db.package, "enabled": db.enabled,
        "restore_target": db.restore_target, "managed_by": db.managed_by,
        "encryption": eff.encryption or {"type": "none"},
        "created_at": db.created_at, "updated_at": db.updated_at,
    }


def list_databases(page: int, page_size: int) -> tuple[list[dict[str, Any]], int]:
    rows, total = paginate(select(Database).order_by(Database.created_at.desc(), Database.id),
                           page, page_size)
    return [present(row) for row in rows], total


def get_database(database_id: str) -> dict[str, Any]:
    with ctx().db.session() as session:
        return present(_load(session, database_id))


def create_database(data: dict[str, Any]) -> dict[str, Any]:
    """Register a database; an id taken already, even by a request racing this one, is 409."""
    now = utcnow()
    exists = f"database {data['id']!r} already exists"
    try:
        with ctx().db.session() as session:
            if session.get(Database, data["id"]) is not None:
                raise Conflict(exists)
            row = Database(**data, managed_by="api", created_at=now, updated_at=now)
            row.name = data.get("name") or data["id"]
            row.port = data.get("port") or DEFAULT_PORTS[data["engine"]]
            row.options = data.get("options") or {}
            _check_encryption(row)
            _check_reach(row)
            session.add(row)
            session.flush()
            created = present(row)
    except IntegrityError:
        # The primary key is the only unique constraint: another request inserted
        # this id between our check and our INSERT.
        raise Conflict(exists) from None
    return created


def update_database(database_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    with ctx().db.session() as session:
        row = _load(session, database_id)
        _refuse_config_managed(row, "changed")
        if "options" in changes and (errors := api_option_errors(row.engine,
                                                                   changes["options"])):
            raise Invalid("invalid input: " + "; ".join(
                f"options.{key}: {problem}" for key, problem in errors.items()))
        if _repoints(row, changes) and "password" not in changes:
            changes = {**changes, "password": None}
        for key, value in changes.items():
            setattr(row, key, value)
        if "host" in changes or "options" in changes:
            _check_reach(row)
        if "encryption" in changes:
            _check_encryption(row)
        row.updated_at = utcnow()
        session.flush()
        return present(row)


def delete_database(database_id: str, delete_backups: bool) -> None:
    context = ctx()
    with context.db.session() as session:
        row = _load(session, database_id)
        _refuse_config_managed(row, "deleted")
        backups = session.scalars(select(Backup).where(Backup.database_id == database_id)).all()
        if any(b.status in ACTIVE_STATUSES for b in backups):
            raise Conflict(f"database {database_id!r} has a backup pending or running; "
                           "wait for it to finish")
        if delete_backups:
            for backup in backups:
                if backup.globals_key:
                    context.storage.delete(backup.globals_key)
                if backup.storage_key:
                    context.storage.delete_artifact(backup.storage_key)
                session.delete(backup)
        session.delete(row)
    audit("database.delete", database_id=database_id,
          deleted_backups=[b.id for b in backups] if delete_backups else [])


# What says where, and as whom, a database is reached: changing one drops the password.
_CONNECTION_FIELDS = ("host", "port", "username", "database_name")


def _repoints(row: Database, changes: dict[str, Any]) -> bool:
    """Tell whether ``changes`` move ``row`` to another server, user, database or option."""
    if any(key in changes and changes[key] != getattr(row, key) for key in _CONNECTION_FIELDS):
        return True
    return "options" in changes and (connection_options(changes["options"])
                                     != connection_options(row.options))


def _check_reach(row: Database) -> None:
    """Refuse a host outside ``global.allowed_hosts`` (resolved now; again at each backup)."""
    allowed = AllowedHosts.of(ctx().settings.global_.allowed_hosts)
    target = Target(engine=row.engine, host=row.host, port=row.port,
                    database_name=row.database_name, options=dict(row.options or {}))
    if allowed.restricts and (problem := refusal(target, allowed)) is not None:
        raise Invalid(f"host: {problem}")


def _check_encryption(row: Database) -> None:
    """Refuse turning encryption off through the API while the config turns it on."""
    default = ctx().settings.global_.encryption
    if (row.encryption or {}).get("type") == NONE and default and default.type != NONE:
        raise Invalid("invalid input: encryption.type: none is config-only while "
                      "global.encryption is set: backups of every database are encrypted "
                      "to the global recipients (a database may add its own)")


def _load(session: Session, database_id: str) -> Database:
    row = session.get(Database, database_id) if is_database_id(database_id) else None
    if row is None:
        raise NotFound(f"database {database_id!r} not found")
    return row


def _refuse_config_managed(row: Database, verb: str) -> None:
    if row.managed_by == "config":
        raise Conflict(f"database {row.id!r} is managed by config.yaml and cannot be "
                       f"{verb} through the API; edit config.yaml instead")
