"""Bearer API keys: every request but a few public ones needs a key with the right scope.

- Public: ``/health`` and ``/ready`` (orchestrators probe them without secrets; ``/ready``
  names a failed dependency but keeps the details for a caller with a key), ``/docs``
  with its files and ``/openapi.json`` (they describe the API, the same for every
  installation, and hold no data; Swagger UI must load to offer its Authorize button),
  and ``/`` (a redirect to ``/docs``). ``/metrics`` too when ``auth.metrics_public``.
- Every other request needs ``Authorization: Bearer <key>``: the scope of its view
  (:func:`requires`), else its method's (``GET`` read, ``POST``/``PATCH`` write,
  ``DELETE`` admin); ``/metrics`` needs ``metrics``. Scopes nest as
  ``shared.api_keys`` says (admin > write > read).
- The check runs before every other hook and before Flask raises its routing errors:
  without a valid key an unknown path, a wrong method and an unknown id all answer the
  same 401, so nothing tells whether a resource exists. 403 only to a valid key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, g, request

from api.errors import abort
from shared import api_keys
from shared.config import Settings
from shared.context import Context
from shared.metadata_db import MetadataDB

log = logging.getLogger(__name__)

SCHEME = "bearerAuth"
PUBLIC_ENDPOINTS = frozenset({
    "system.Health", "system.Ready", "docs.root", "docs.swagger_ui_file",
    "api-docs.openapi_json", "api-docs.openapi_swagger_ui",
})
METRICS_ENDPOINT = "prometheus_metrics"  # the /metrics view (api/prometheus.py)
METHOD_SCOPES = {"GET": "read", "HEAD": "read", "OPTIONS": "read", "POST": "write",
                 "PUT": "write", "PATCH": "write", "DELETE": "admin"}
# What a request that matches no route needs: any valid key (it then gets its 404/405).
ANY_KEY = ""
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="backup-api"'}

View = TypeVar("View", bound=Callable[..., Any])


def requires(scope: str) -> Callable[[View], View]:
    """Mark a view method as needing ``scope`` rather than its HTTP method's default."""

    def mark(view: View) -> View:
        view.required_scope = scope  # type: ignore[attr-defined]
        return view

    return mark


def _context() -> Context:
    # Not api.services.ctx: services may import this module (audit events), not the reverse.
    context: Context = current_app.extensions["backup_api"]
    return context


def current_key_name() -> str | None:
    """Return the name of the key that authenticated this request (for audit events).

    None when the request carried no valid key: a public endpoint, or ``auth.disabled``.
    """
    name: str | None = g.get("api_key_name")
    return name


def identified() -> bool:
    """Tell whether this request may see details: it carries a valid key, or auth is off.

    For public endpoints, which skip the check: a metadata DB that cannot be asked
    makes the caller anonymous rather than the answer an error.
    """
    if current_key_name() is not None or _context().settings.auth.disabled:
        return True
    presented = _presented_key()
    if presented is None:
        return False
    try:
        with _context().db.session() as session:
            key = api_keys.find_key(session, presented)
    except Exception:  # noqa: BLE001 - /ready must answer even without its metadata DB
        return False
    return key is not None


def init_auth(app: Flask, settings: Settings, db: MetadataDB) -> None:
    """Require keys on ``app``, declare the scheme in its OpenAPI document, say how it runs.

    Call before ``Api(app)``, which reads ``API_SPEC_OPTIONS``.
    """
    app.config["API_SPEC_OPTIONS"] = {
        "components": {"securitySchemes": {SCHEME: {
            "type": "http", "scheme": "bearer",
            "description": "An API key (`backup-api keys create`). Scopes: `read` (list, "
                           "get, download), `write` (also register, change, back up, "
                           "package, verify), `admin` (everything: also delete, retention, "
                           "restore), `metrics` (only /metrics).",
        }}},
        "security": [{SCHEME: []}],
    }
    # First of all hooks: nothing (not even the Content-Type check) answers before it.
    app.before_request_funcs.setdefault(None, []).insert(0, _authenticate)
    _announce(settings, db)


def _announce(settings: Settings, db: MetadataDB) -> None:
    if settings.auth.disabled:
        log.warning("auth.disabled is true: the API answers every request without a key; "
                    "anyone who reaches it can download, restore and delete backups")
        return
    with db.session() as session:
        active, _ = api_keys.count_keys(session)
    if active:
        log.info("API keys: %d active", active)
    else:
        log.warning("no active API key: every request but /health, /ready and /docs "
                    "answers 401; create one with: backup-api keys create --scope admin "
                    "--name admin")
    if settings.auth.metrics_public:
        log.info("/metrics answers without a key (auth.metrics_public)")


def required_scope(endpoint: str | None, method: str) -> str | None:
    """Return the scope a request needs (``ANY_KEY`` if unrouted), or None if public."""
    if endpoint is None:
        return ANY_KEY
    if endpoint in PUBLIC_ENDPOINTS:
        return None
    if endpoint == METRICS_ENDPOINT:
        return None if _context().settings.auth.metrics_public else "metrics"
    view_class = getattr(current_app.view_functions.get(endpoint), "view_class", None)
    handler = getattr(view_class, "get" if method == "HEAD" else method.lower(), None)
    declared: str | None = getattr(handler, "required_scope", None)
    return declared or METHOD_SCOPES.get(method, "admin")


def _presented_key() -> str | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def _authenticate() -> None:
    g.api_key_name = None
    if _context().settings.auth.disabled:
        return
    rule = request.url_rule
    needed = required_scope(rule.endpoint if rule is not None else None, request.method)
    if needed is None:
        return  # public: no lookup, so /health depends on nothing
    presented = _presented_key()
    with _context().db.session() as session:
        key = api_keys.find_key(session, presented) if presented else None
        if key is not None:
            api_keys.note_use(session, key)
    if key is None:
        abort(401, "this request needs an API key: send Authorization: Bearer <key>"
              if presented is None else "the API key is not valid (unknown or revoked)",
              headers=CHALLENGE)
    if needed and needed not in api_keys.granted(key.scopes):
        abort(403, f"this operation needs the {needed} scope; key {key.name!r} has "
                   f"{', '.join(key.scopes)}")
    g.api_key_name = key.name
