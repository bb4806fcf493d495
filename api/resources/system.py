"""/health and /ready."""

from __future__ import annotations

import logging
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text

from api.auth import identified
from api.services import ctx
from shared.errors import StorageError

log = logging.getLogger(__name__)

blp = Blueprint("system", __name__, description="Liveness and readiness")


@blp.route("/health")
class Health(MethodView):
    @blp.doc(security=[])
    @blp.response(200)
    def get(self) -> Any:
        """Liveness: answers while the process serves requests; checks nothing else."""
        return {"status": "ok"}


@blp.route("/ready")
class Ready(MethodView):
    @blp.doc(security=[])
    @blp.response(200)
    @blp.alt_response(503, description="A dependency is unreachable; the body names it")
    def get(self) -> Any:
        """Readiness: the metadata DB, the broker and the storage are usable.

        Without a key the checks say only ok or failed: the reasons (a path, a bucket,
        an endpoint) are for callers with a key and for the logs.
        """
        checks = {"metadata_db": _check_db(), "broker": _check_broker(),
                  "storage": _check_storage()}
        if not identified():
            for name, msg in checks.items():
                if msg != "ok":
                    log.warning("not ready: %s: %s", name, msg)
            checks = {name: "ok" if msg == "ok" else "failed" for name, msg in checks.items()}
        failed = {name: msg for name, msg in checks.items() if msg != "ok"}
        body = {"status": "ready" if not failed else "not ready", "checks": checks}
        if failed:
            body["message"] = "; ".join(f"{name}: {msg}" for name, msg in failed.items())
            return body, 503
        return body


def _check_db() -> str:
    try:
        with ctx().db.sql_engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def _check_broker() -> str:
    celery = ctx().celery
    assert celery is not None
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # noqa: BLE001
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def _check_storage() -> str:
    try:
        ctx().storage.check()
    except StorageError as exc:
        return exc.message
    return "ok"
