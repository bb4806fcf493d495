"""Pick the ``pg_dump`` that matches the server: the smallest installed major >= the server's.

An older ``pg_dump`` refuses a newer server ("server version mismatch"); a much newer
one works but writes archives that only an equally new ``pg_restore`` reads. So the
choice is the oldest client that is new enough. Clients are found under
``/usr/lib/postgresql/<major>/bin`` (Debian/Ubuntu layout), on ``PATH``, or only in
``options.pg_bin_dir`` when a database sets it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.engines.base import Target, tool_env
from shared.errors import DumpError

log = logging.getLogger(__name__)

DEBIAN_ROOT = "/usr/lib/postgresql"
# The probe is short on purpose: if it fails, pg_dump itself connects next and reports
# the problem in its own words.
PROBE_TIMEOUT = 5
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class PgClient:
    """One installed PostgreSQL client: its major version and the directory of its tools."""

    major: int
    bin_dir: str

    @property
    def pg_dump(self) -> str:
        return os.path.join(self.bin_dir, "pg_dump")

    @property
    def pg_restore(self) -> str:
        return os.path.join(self.bin_dir, "pg_restore")


def major_of(server_version_num: int) -> int:
    """Return the major of ``SHOW server_version_num`` (150004 → 15; 90624 → 9)."""
    return server_version_num // 10000


def choose_client(server_major: int | None, installed: Mapping[int, str]) -> PgClient:
    """Return the smallest installed client whose major is >= ``server_major``.

    ``installed`` maps a major to its bin directory. With an unknown server version
    the newest client is chosen: pg_dump reads every older server. Raise ``DumpError``
    naming both versions when no client is new enough.
    """
    if not installed:
        raise DumpError("pg_dump not found: install the PostgreSQL client "
                        "(e.g. postgresql-client) or put pg_dump on PATH")
    if server_major is None:
        newest = max(installed)
        return PgClient(newest, installed[newest])
    fitting = [major for major in installed if major >= server_major]
    if not fitting:
        newest = max(installed)
        raise DumpError(
            f"the PostgreSQL server is version {server_major} but the newest installed "
            f"pg_dump is version {newest} ({installed[newest]}); pg_dump must be at least as "
            f"new as the server: install postgresql-client-{server_major} or set "
            "options.pg_bin_dir")
    best = min(fitting)
    return PgClient(best, installed[best])


def client_major(pg_dump: str) -> int | None:
    """Return the major version ``pg_dump --version`` reports, or ``None``."""
    try:
        out = subprocess.run([pg_dump, "--version"], capture_output=True, text=True,
                             timeout=10, env=tool_env()).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out)
    return int(match.group(1)) if match else None


def installed_clients(pg_bin_dir: str | None = None,
                      debian_root: str = DEBIAN_ROOT) -> dict[int, str]:
    """Return ``{major: bin_dir}`` of the clients on this machine.

    With ``pg_bin_dir`` only that directory counts; otherwise every
    ``<debian_root>/<major>/bin`` holding a pg_dump, plus the pg_dump on ``PATH``.
    """
    if pg_bin_dir:
        major = client_major(os.path.join(pg_bin_dir, "pg_dump"))
        if major is None:
            raise DumpError(f"options.pg_bin_dir: no working pg_dump in {pg_bin_dir}")
        return {major: pg_bin_dir}
    found: dict[int, str] = {}
    root = Path(debian_root)
    if root.is_dir():
        for entry in root.iterdir():
            match = re.fullmatch(r"(\d+)(?:\.\d+)?", entry.name)
            if match and os.access(entry / "bin" / "pg_dump", os.X_OK):
                found[int(match.group(1))] = str(entry / "bin")
    on_path = shutil.which("pg_dump")
    if on_path:
        real = os.path.realpath(on_path)
        # Debian's /usr/bin/pg_dump is a wrapper script; its real clients are listed above.
        major = client_major(real) if os.path.basename(real) == "pg_dump" else None
        if major is not None and major not in found:
            found[major] = os.path.dirname(real)
    return found


def server_major(target: Target) -> int | None:
    """Ask the server its major version; ``None`` if it cannot be reached."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    params: dict[str, str | int | None] = {
        "host": target.host, "hostaddr": target.hostaddr, "port": target.port,
        # A keyword of a conninfo string, so a plain name: libpq expands a dbname into a
        # connection string only when it is given as a separate parameter.
        "dbname": target.database_name,
        "user": target.username, "password": target.password,
        "connect_timeout": PROBE_TIMEOUT, "application_name": "backup-api",
    }
    if target.options.get("sslmode"):
        params["sslmode"] = target.options["sslmode"]
    try:
        # A libpq connection from this process: the password never reaches an argv.
        conninfo = make_conninfo("", **{k: v for k, v in params.items() if v is not None})
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
    except psycopg.Error as exc:
        log.info("could not ask %s:%s for its version (%s); using the newest pg_dump",
                 target.host, target.port, type(exc).__name__)
        return None
    return major_of(int(row[0])) if row else None
