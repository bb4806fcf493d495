"""MongoDB: ``mongodump --archive`` to stdout, uncompressed (our compressor does that).

The password (and a full ``uri``, which usually carries one) travel in a 0600 YAML
``--config`` file, the way mongodump documents for keeping them out of ``ps``.
"""

from __future__ import annotations

import json
import logging
import struct
from typing import Any
from urllib.parse import unquote

from shared.engines.base import DumpCommand, DumpEngine, Target, version_line
from shared.engines.options import uri_hosts, uri_password
from shared.engines.unreachable import unreachable_message
from shared.errors import DumpError, redact

log = logging.getLogger(__name__)

ARCHIVE_MAGIC = 0x8199E26D
# Seconds mongodump waits for a reachable server; its driver default (30 s) makes an
# unknown host look like a hang.
SERVER_SELECTION_TIMEOUT = 15


def _yaml_string(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar: quotes, backslashes, '#', ':'
    # and non-ASCII in a password all survive.
    return json.dumps(value)


class MongoEngine(DumpEngine):
    name = "mongodb"
    tool = "mongodump"

    def __init__(self, mongodump: str = "mongodump", mongorestore: str = "mongorestore") -> None:
        self.mongodump = mongodump
        self.mongorestore = mongorestore

    def build_dump(self, target: Target) -> DumpCommand:
        """Build the ``mongodump --archive`` command; secrets go in a 0600 ``--config`` file."""
        flags, config, secrets = _connection(target)
        argv = [self.mongodump, "--archive", "--config={secrets}/mongo.yaml", *flags]
        if target.options.get("oplog"):
            # --oplog takes a point-in-time dump of the whole replica set; mongodump
            # refuses it together with --db.
            argv.append("--oplog")
        else:
            argv.append(f"--db={target.database_name}")
        return DumpCommand(argv=argv, secret_files={"mongo.yaml": config},
                           secrets=tuple(secrets), endpoint=_endpoint(target))

    def build_restore(self, target: Target, source_database_name: str) -> DumpCommand:
        """Build ``mongorestore --archive --drop`` mapping the source database onto the target.

        Collections are restored one at a time (safe on every MongoDB-compatible server;
        a restore is rare, a half-failed parallel one is worse than a slower one).
        """
        if target.options.get("oplog"):
            raise DumpError("this backup holds the whole deployment (oplog: true); restore it "
                            "with mongorestore --archive --oplogReplay")
        flags, config, secrets = _connection(target)
        source = source_database_name
        argv = [self.mongorestore, "--archive", "--config={secrets}/mongo.yaml", *flags,
                "--drop", "--numParallelCollections=1", f"--nsInclude={source}.*",
                f"--nsFrom={source}.*", f"--nsTo={target.database_name}.*"]
        if target.options.get("restore_indexes") is False:
            argv.append("--noIndexRestore")
        return DumpCommand(argv=argv, secret_files={"mongo.yaml": config},
                           secrets=tuple(secrets), endpoint=_endpoint(target))

    def build_check(self) -> DumpCommand | None:
        """No offline archive checker ships with the tools: verify checks bytes only."""
        return None

    def is_empty(self, target: Target) -> bool:
        """Tell whether the target database has no collection besides system ones."""
        from pymongo import MongoClient
        from pymongo.errors import ConnectionFailure, PyMongoError

        options = target.options
        kwargs: dict[str, Any] = {"serverSelectionTimeoutMS": SERVER_SELECTION_TIMEOUT * 1000}
        try:
            if options.get("uri"):
                client: MongoClient[Any] = MongoClient(options["uri"], **kwargs)
            else:
                kwargs.update({key: options[key] for key in (
                    "authSource", "authMechanism", "replicaSet", "tls", "tlsCAFile",
                    "tlsInsecure") if key in options})
                client = MongoClient(host=target.host, port=target.port,
                                     username=target.username, password=target.password,
                                     **kwargs)
            with client:
                names = client[target.database_name].list_collection_names()
        except ConnectionFailure as exc:
            # Refused, timed out, unknown host: one sentence (see engines.unreachable).
            log.warning("could not connect to %s: %s", _endpoint(target),
                        redact(str(exc), [target.password]))
            raise DumpError("cannot inspect the target database: "
                            + unreachable_message(_endpoint(target))) from exc
        except PyMongoError as exc:
            raise DumpError(redact(f"cannot inspect the target database: {exc}",
                                   [target.password, uri_password(options.get("uri") or "")]
                                   )) from exc
        return not [name for name in names if not name.startswith("system.")]

    def check_output(self, target: Target, head: bytes) -> None:
        """Fail an archive that holds no collection: mongodump exits 0 for a missing db."""
        if len(head) < 8 or struct.unpack_from("<I", head)[0] != ARCHIVE_MAGIC:
            raise DumpError("mongodump exited successfully but its output is not an archive")
        (header_size,) = struct.unpack_from("<i", head, 4)
        end = 4 + header_size
        # After the header come one metadata document per collection, then a 0xFFFFFFFF
        # terminator; a terminator right away means there was nothing to dump.
        if len(head) >= end + 4 and head[end:end + 4] == b"\xff\xff\xff\xff":
            what = ("the deployment" if target.options.get("oplog")
                    else f"database {target.database_name!r}")
            raise DumpError(f"mongodump found no collections in {what}: it does not exist, "
                            "is empty, or the user may not read it")

    def tool_versions(self) -> dict[str, str]:
        """Return ``{"mongodump": "<version>"}`` as the tool reports it."""
        return {"mongodump": version_line([self.mongodump, "--version"], "mongodump version: ")}



def _endpoint(target: Target) -> str:
    """Return the server a failure to connect is reported against: ``host:port`` or the uri's."""
    uri = target.options.get("uri")
    return ",".join(uri_hosts(uri)) if uri else target.endpoint


def _connection(target: Target) -> tuple[list[str], str, list[str]]:
    """Return the connection flags, the ``--config`` YAML and the secrets to redact."""
    options = target.options
    flags: list[str] = []
    config: list[str] = []
    secrets: list[str] = []
    uri = options.get("uri")
    if uri:
        # The uri carries hosts, TLS and auth settings; flags beside it would conflict.
        config.append(f"uri: {_yaml_string(uri)}")
        # The tools print the uri, password included, when they cannot connect.
        if embedded := uri_password(uri):
            secrets += [embedded, unquote(embedded)]
        # The tools read a uri's serverSelectionTimeoutMS as seconds, and refuse the
        # flag beside it: add the flag only when the uri leaves the timeout unset.
        if "serverselectiontimeoutms" not in uri.lower():
            flags.append(f"--serverSelectionTimeout={SERVER_SELECTION_TIMEOUT}")
    else:
        host = target.host
        if options.get("replicaSet"):
            host = f"{options['replicaSet']}/{host}"
        flags += [f"--host={host}", f"--port={target.port}",
                  f"--serverSelectionTimeout={SERVER_SELECTION_TIMEOUT}"]
        if options.get("tls"):
            flags.append("--ssl")
        if options.get("tlsCAFile"):
            flags.append(f"--sslCAFile={options['tlsCAFile']}")
        if options.get("tlsInsecure"):
            flags.append("--tlsInsecure")
    if target.username:
        flags.append(f"--username={target.username}")
    if options.get("authSource"):
        flags.append(f"--authenticationDatabase={options['authSource']}")
    if options.get("authMechanism"):
        flags.append(f"--authenticationMechanism={options['authMechanism']}")
    if target.password:
        config.append(f"password: {_yaml_string(target.password)}")
        secrets.append(target.password)
    return flags, "\n".join(config) + "\n", secrets
