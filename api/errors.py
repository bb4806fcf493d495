"""JSON errors everywhere, in flask-smorest's shape ``{code, status, message, errors?}``.

Services raise the domain errors of ``shared.errors``; this is the one place that
turns them into HTTP answers.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from flask import Flask
from flask_smorest import Api as _Api
from flask_smorest import abort as _abort
from werkzeug.exceptions import HTTPException

from shared.errors import (
    BackupApiError,
    Conflict,
    Gone,
    Invalid,
    NotFound,
    StorageError,
    Unavailable,
)

log = logging.getLogger(__name__)

# The answer to each domain error a service raises (a subclass answers like its
# parent: ArtifactNotFound like StorageError). Any other exception stays a 500.
STATUS: dict[type[BackupApiError], int] = {
    NotFound: 404, Conflict: 409, Gone: 410, Invalid: 422,
    StorageError: 502, Unavailable: 503,
}


def abort(code: int, message: str, headers: dict[str, str] | None = None) -> NoReturn:
    """Answer ``code`` with a JSON error carrying ``message`` (for HTTP-level checks)."""
    if headers:
        _abort(code, message=message, headers=headers)
    _abort(code, message=message)
    raise AssertionError("unreachable")  # flask_smorest.abort always raises


def status_of(error: BackupApiError) -> int:
    """Return the HTTP status answering ``error``: its class's, or its nearest parent's."""
    return next(STATUS[cls] for cls in type(error).__mro__ if cls in STATUS)


def describe(errors: Any, path: str = "") -> list[str]:
    """Flatten webargs' nested validation messages into ``field: message`` strings."""
    if isinstance(errors, dict):
        out: list[str] = []
        for key, sub in errors.items():
            if key in ("json", "query", "_schema") and not path:
                out += describe(sub, "")
            else:
                out += describe(sub, f"{path}.{key}" if path else str(key))
        return out
    if isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        return [f"{path}: {' '.join(errors)}" if path else " ".join(errors)]
    if isinstance(errors, list):
        return [line for e in errors for line in describe(e, path)]
    return [f"{path}: {errors}"]


# flask-smorest ships no type information, so its Api is Any to mypy.
class Api(_Api):  # type: ignore[misc]
    """flask-smorest's Api that answers domain errors and whose 422s name the fields."""

    def init_app(self, app: Flask, *, spec_kwargs: dict[str, Any] | None = None) -> None:
        super().init_app(app, spec_kwargs=spec_kwargs)
        for error in STATUS:
            app.register_error_handler(error, self.handle_domain_error)

    def handle_domain_error(self, error: BackupApiError) -> Any:
        """Answer a service's domain error exactly as ``abort(status, message=...)`` would."""
        try:
            abort(status_of(error), error.message)
        except HTTPException as http:
            return self.handle_http_exception(http)

    def handle_http_exception(self, error: HTTPException) -> Any:
        payload, code, headers = super().handle_http_exception(error)
        if code in (400, 422) and "errors" in payload and "message" not in payload:
            payload["message"] = "invalid input: " + "; ".join(describe(payload["errors"]))
        if code >= 500:
            log.error("internal error answering a request", exc_info=error)
        payload.setdefault("message", error.description or error.name)
        return payload, code, headers
