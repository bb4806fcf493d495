"""The Flask application factory. Nothing happens at import time."""

from __future__ import annotations

import logging

from flask import Flask

from api.auth import init_auth
from api.docs import init_docs
from api.errors import Api
from api.json_bodies import require_json_bodies
from api.prometheus import init_metrics
from api.resources import backups, databases, packages, restores, retention, system
from api.services import ApiContext
from api.trusted_hosts import init_trusted_hosts
from shared.api_keys import sync_config_keys
from shared.broker import make_celery
from shared.catalog import upsert_config_databases
from shared.config import Settings, load_settings
from shared.metadata_db import MetadataDB
from shared.storage import make_storage

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, migrate: bool = True,
               bind_host: str | None = None) -> Flask:
    """Build the API for ``settings`` (default: config file and environment).

    ``bind_host`` is the address the server listens on: a ``Host`` naming it is trusted.
    """
    settings = settings or load_settings()
    # No static folder: nothing is served from the working directory.
    app = Flask("backup_api", static_folder=None)
    app.config.update(
        API_TITLE="Backup API",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    init_docs(app)
    require_json_bodies(app)
    db = MetadataDB(settings.runtime.database_url)
    if migrate:
        db.migrate()
    with db.exclusive():  # workers and beat may be upserting the same rows right now
        with db.session() as session:
            upsert_config_databases(session, settings)
        sync_config_keys(db, settings)
    celery = make_celery(settings)
    app.extensions["backup_api"] = ApiContext(
        settings=settings, db=db, storage=make_storage(settings), celery=celery)
    init_auth(app, settings, db)
    init_metrics(app, db, settings, celery)
    # Last: its hook goes before every other one (auth's too).
    init_trusted_hosts(app, settings, bind_host)

    api = Api(app)
    for blueprint in (databases.blp, backups.blp, restores.blp, packages.blp, retention.blp,
                      system.blp):
        api.register_blueprint(blueprint)
    return app
