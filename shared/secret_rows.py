"""Check and re-encrypt the secrets stored in the metadata DB's rows.

Every process that opens the metadata DB calls :func:`reseal` at start: it fails naming
``BACKUP_API_SECRET_KEY`` when a stored secret cannot be decrypted with the keys given
(so a wrong key stops the process before it serves or runs anything), and it encrypts the
values stored in plain text before encryption existed. ``backup-api secrets rotate`` calls
it with ``rotate=True`` to re-encrypt every value with the first key.

Rows are read as stored text (``CAST(column AS TEXT)``), never through the column type,
so a value no key opens is reported, not raised in the middle of a query; each rewrite is
conditional on that text, so a value changed meanwhile (by the API) is left alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, MetaData, Table, Text, and_, cast, inspect, select, update
from sqlalchemy.orm import Session

from shared import secrets
from shared.errors import SecretKeyError

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What :func:`reseal` found and did, counted in secret values."""

    sealed: int = 0  # stored in plain text, now encrypted
    rotated: int = 0  # re-encrypted with the first key
    discarded: list[str] = field(default_factory=list)  # where no key opened the value


@dataclass
class _Stored:
    table: Table
    column: Column[Any]
    key: tuple[Any, ...]
    text: str


def reseal(session: Session, metadata: MetaData, *, rotate: bool = False,
           discard_unreadable: bool = False) -> Outcome:
    """Check every stored secret opens; encrypt plain-text ones (``rotate``: every one).

    A value no key opens raises :class:`SecretKeyError` naming where it is, unless
    ``discard_unreadable``: then it is erased (the password becomes NULL, a secret option
    is removed) and listed in the outcome.
    """
    keyring = secrets.current()
    outcome = Outcome()
    unreadable: list[str] = []
    for stored in _stored(session, metadata):
        kind: secrets.Encrypted = stored.column.type  # type: ignore[assignment]
        value = json.loads(stored.text) if kind.fields else stored.text
        parts = _parts(kind, value)
        plain = [part for part in parts.values() if not secrets.is_token(part)]
        opened: dict[str | None, str] = {}
        lost: list[str | None] = []
        for name, part in parts.items():
            try:
                opened[name] = keyring.decrypt(part) if secrets.is_token(part) else part
            except SecretKeyError:
                lost.append(name)
        where = [_describe(stored, name) for name in lost]
        if lost and not discard_unreadable:
            unreadable += where
            continue
        if not (plain or lost or (rotate and parts)):
            continue
        if _rewrite(session, stored, _replace(kind, value, opened)):
            outcome.sealed += len(plain)
            outcome.rotated += len(opened) - len(plain)
            outcome.discarded += where
    if unreadable:
        shown = ", ".join(unreadable[:5]) + (", …" if len(unreadable) > 5 else "")
        raise SecretKeyError(
            f"{len(unreadable)} secret(s) stored in the metadata DB cannot be decrypted with "
            f"the keys of {keyring.source} ({shown}): give the key they were encrypted with "
            f"({secrets.KEY_VARIABLE} may list several, comma-separated: the first encrypts, "
            "all decrypt). If that key is lost, `backup-api secrets rotate "
            "--discard-unreadable` erases them (docs/security.md)")
    if outcome.sealed and not rotate:
        log.info("encrypted %d secret(s) stored in plain text before encryption existed",
                 outcome.sealed)
    return outcome


def _stored(session: Session, metadata: MetaData) -> Iterator[_Stored]:
    """Yield every non-NULL value of every :class:`~shared.secrets.Encrypted` column."""
    present = set(inspect(session.connection()).get_table_names())
    for table in metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, secrets.Encrypted)]
        if not columns or table.name not in present:
            continue
        keys = list(table.primary_key.columns)
        query = select(*keys, *(cast(c, Text) for c in columns))
        for row in session.execute(query).all():
            for column, text in zip(columns, row[len(keys):], strict=True):
                if text is not None:
                    yield _Stored(table, column, tuple(row[:len(keys)]), text)


def _parts(kind: secrets.Encrypted, value: Any) -> dict[str | None, str]:
    """Return the secret strings of ``value`` by field (None: the value itself)."""
    if not kind.fields:
        return {None: value}
    if not isinstance(value, dict):
        return {}
    return {name: value[name] for name in kind.fields if isinstance(value.get(name), str)}


def _replace(kind: secrets.Encrypted, value: Any, opened: dict[str | None, str]) -> Any:
    """Return ``value`` with its secrets in plain text (the column type seals them again),
    and those not in ``opened`` (unreadable, discarded) removed."""
    if not kind.fields:
        return opened.get(None)
    return {name: opened[name] if name in kind.fields and name in opened else item
            for name, item in value.items()
            if name not in kind.fields or name in opened or not isinstance(item, str)}


def _rewrite(session: Session, stored: _Stored, value: Any) -> bool:
    """Store ``value`` unless the row changed since it was read; tell whether it was."""
    table = stored.table
    same_row = [c == v for c, v in zip(table.primary_key.columns, stored.key, strict=True)]
    result = session.execute(
        update(table)
        .where(and_(*same_row, cast(stored.column, Text) == stored.text))
        .values({stored.column.name: value}))
    return bool(getattr(result, "rowcount", 0))


def _describe(stored: _Stored, name: str | None) -> str:
    row = ", ".join(repr(v) for v in stored.key)
    return f"{stored.table.name} {row} {stored.column.name}{'.' + name if name else ''}"
