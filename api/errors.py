"""JSON errors everywhere, in flask-smorest's shape ``{code, status, message, errors?}``."""

from __future__ import annotations

import logging
from typing import Any

from flask_smorest import Api as _Api
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


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


class Api(_Api):  # type: ignore[misc]
    """flask-smorest's Api whose 422 messages name the offending fields."""

    def handle_http_exception(self, error: HTTPException) -> Any:
        payload, code, headers = super().handle_http_exception(error)
        if code in (400, 422) and "errors" in payload and "message" not in payload:
            payload["message"] = "invalid input: " + "; ".join(describe(payload["errors"]))
        if code >= 500:
            log.error("internal error answering a request", exc_info=error)
        payload.setdefault("message", error.description or error.name)
        return payload, code, headers
