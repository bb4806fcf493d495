"""Audit events: one JSON log line per restore and per deletion, naming the caller's key.

Each line carries ``audit: true``, the ``action`` (``restore``, ``backup.delete``,
``package.delete``, ``database.delete``, ``retention.run``, ``backup.cancel``,
``package.cancel``, ``restore.cancel``), the ids it touched and
``key_name``, the name of the API key that asked (null when ``auth.disabled``), so
``jq 'select(.audit)'`` over the API's log answers who did what.
"""

from __future__ import annotations

import logging

from flask import g

log = logging.getLogger(__name__)


def audit(action: str, **fields: object) -> None:
    """Log ``action`` with ``fields`` (ids, outcome) and the name of the caller's key."""
    # api.auth stores the key's name on g (api.auth.current_key_name reads it there);
    # read it here directly: api.auth imports the services, not the other way round.
    key_name = g.get("api_key_name")
    log.info("audit: %s by key %s", action, key_name or "(none)",
             extra={"audit": True, "action": action, "key_name": key_name, **fields})
