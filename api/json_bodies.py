"""Writes take JSON: the one rule for the Content-Type of every POST, PUT and PATCH.

- A request with a body must declare it ``application/json`` (``application/*+json``
  and a ``charset`` parameter are fine); anything else is 415.
- A request may carry no body and no Content-Type at all (``curl -X POST …``). That
  is an empty JSON body: where the body is optional (``POST /packages/create``,
  ``POST /retention/run``, ``POST /backups/{id}/verify``) the defaults apply, and
  where it is required the fields are reported missing (422). Nothing a form could
  say is lost, and each of those defaults is harmless (retention only previews).
- A form Content-Type (``application/x-www-form-urlencoded``, ``multipart/form-data``,
  ``text/plain``) is 415 even with an empty body: those are what an HTML form on any
  web site can make a visitor's browser send, and no write of ours answers to one.

Without this, webargs reads a non-JSON body as no body at all, so
``curl -d '{"dry_run": true}'`` (a form, without ``-H``) would run the defaults.
"""

from __future__ import annotations

from flask import Flask, request

from api.errors import abort

WRITES = frozenset({"POST", "PUT", "PATCH"})


def require_json_bodies(app: Flask) -> None:
    """Answer 415 on ``app`` for a write whose body is not declared JSON."""
    app.before_request(_check)


def _check() -> None:
    if request.method not in WRITES or request.url_rule is None:
        return  # reads take no body; an unknown path answers its own 404/405
    declared = request.headers.get("Content-Type")
    has_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", "").lower()
    if request.is_json or (declared is None and not has_body):
        return
    got = f"got {request.mimetype!r}" if declared else "got a body without a Content-Type"
    abort(415, message=f"send the body as JSON (Content-Type: application/json); {got}")
