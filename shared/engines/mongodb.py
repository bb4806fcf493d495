"""MongoDB: ``mongodump --archive`` to stdout, uncompressed (our compressor does that).

The password (and a full ``uri``, which usually carries one) travel in a 0600 YAML
``--config`` file, the way mongodump documents for keeping them out of ``ps``.
"""

from __future__ import annotations

import json
import struct
from urllib.parse import unquote

from shared.engines.base import DumpCommand, Engine, Target, version_line
from shared.engines.options import uri_password
from shared.errors import DumpError

ARCHIVE_MAGIC = 0x8199E26D
# Seconds mongodump waits for a reachable server; its driver default (30 s) makes an
# unknown host look like a hang.
SERVER_SELECTION_TIMEOUT = 15


def _yaml_string(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar: quotes, backslashes, '#', ':'
    # and non-ASCII in a password all survive.
    return json.dumps(value)


class MongoEngine(Engine):
    name = "mongodb"
    tool = "mongodump"

    def __init__(self, mongodump: str = "mongodump") -> None:
        self.mongodump = mongodump

    def build_dump(self, target: Target) -> DumpCommand:
        """Build the ``mongodump --archive`` command; secrets go in a 0600 ``--config`` file."""
        options = target.options
        argv = [self.mongodump, "--archive", "--config={secrets}/mongodump.yaml"]
        config: list[str] = []
        secrets: list[str] = []
        uri = options.get("uri")
        if uri:
            # The uri carries hosts, TLS and auth settings; flags beside it would conflict.
            config.append(f"uri: {_yaml_string(uri)}")
            # mongodump prints the uri, password included, when it cannot connect.
            if embedded := uri_password(uri):
                secrets += [embedded, unquote(embedded)]
            # mongodump reads a uri's serverSelectionTimeoutMS as seconds, and refuses the
            # flag beside it: add the flag only when the uri leaves the timeout unset.
            if "serverselectiontimeoutms" not in uri.lower():
                argv.append(f"--serverSelectionTimeout={SERVER_SELECTION_TIMEOUT}")
        else:
            host = target.host
            if options.get("replicaSet"):
                host = f"{options['replicaSet']}/{host}"
            argv += [f"--host={host}", f"--port={target.port}",
                     f"--serverSelectionTimeout={SERVER_SELECTION_TIMEOUT}"]
            if options.get("tls"):
                argv.append("--ssl")
            if options.get("tlsCAFile"):
                argv.append(f"--sslCAFile={options['tlsCAFile']}")
            if options.get("tlsInsecure"):
                argv.append("--tlsInsecure")
        if target.username:
            argv.append(f"--username={target.username}")
        if options.get("authSource"):
            argv.append(f"--authenticationDatabase={options['authSource']}")
        if options.get("authMechanism"):
            argv.append(f"--authenticationMechanism={options['authMechanism']}")
        if target.password:
            config.append(f"password: {_yaml_string(target.password)}")
            secrets.append(target.password)
        if options.get("oplog"):
            # --oplog takes a point-in-time dump of the whole replica set; mongodump
            # refuses it together with --db.
            argv.append("--oplog")
        else:
            argv.append(f"--db={target.database_name}")
        return DumpCommand(argv=argv, secret_files={"mongodump.yaml": "\n".join(config) + "\n"},
                           secrets=tuple(secrets))

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

