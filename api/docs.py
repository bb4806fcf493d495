"""``/docs`` served from the installed product, and ``/`` that leads there.

Swagger UI's files come from the ``flask-swagger-ui`` package (pinned in
pyproject.toml), which ships SmartBear's ``swagger-ui-dist`` build. We use only its
files: flask-smorest renders ``/docs`` and points it at ``/docs/static/``. So the
page works on a network with no way out, and its version changes only with ours.
"""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, Flask, redirect, send_from_directory
from flask.typing import ResponseReturnValue

SWAGGER_UI_PATH = "/docs"
SWAGGER_UI_STATIC = "/docs/static/"
SWAGGER_UI_DIST = str(files("flask_swagger_ui") / "dist")

blp = Blueprint("docs", __name__)


def init_docs(app: Flask) -> None:
    """Point flask-smorest's Swagger UI at our copy of its files and serve them."""
    app.config.update(
        OPENAPI_SWAGGER_UI_PATH=SWAGGER_UI_PATH,
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_STATIC,
        # No validator badge: it would send the document to validator.swagger.io.
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None, "deepLinking": True},
    )
    app.register_blueprint(blp)


@blp.get("/")
def root() -> ResponseReturnValue:
    """Send a person who opens the bare address to the API's documentation."""
    return redirect(SWAGGER_UI_PATH, code=302)


@blp.get(SWAGGER_UI_STATIC + "<path:filename>")
def swagger_ui_file(filename: str) -> ResponseReturnValue:
    """Serve one file of the Swagger UI bundle (404 for anything outside it)."""
    return send_from_directory(SWAGGER_UI_DIST, filename, max_age=3600)
