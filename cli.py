"""The ``backup-api`` console script: run, api, worker, beat, migrate, check-config, keys,
secrets."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from shared import logs, secrets
from shared.catalog import effective
from shared.config import DEFAULT_PORTS, Settings, load_settings
from shared.config.notifications import channel_secrets
from shared.errors import ConfigError, SecretKeyError

if TYPE_CHECKING:
    from shared.metadata_db import MetadataDB
    from shared.secret_rows import Outcome

log = logging.getLogger("backup_api")
# How long worker and beat wait at start for a metadata DB that does not answer yet.
DB_WAIT_SECONDS = 300


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every subcommand (the deployment files are checked against it)."""
    parser = argparse.ArgumentParser(prog="backup-api", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "API + worker + beat on one machine (embedded default)"),
                       ("api", "serve the HTTP API")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--host", default="127.0.0.1" if name == "run" else "0.0.0.0")
        cmd.add_argument("--port", type=int, default=8000)
        cmd.add_argument("--threads", type=int, default=8, help="request threads")
    worker = sub.add_parser("worker", help="run a Celery worker")
    worker.add_argument("--beat", action="store_true", help="embed the beat scheduler")
    worker.add_argument("--concurrency", type=int, help="default: global.max_parallel_jobs")
    worker.add_argument("--hostname", help="Celery node name")
    worker.add_argument("--queues", type=_queues, metavar="QUEUE[,QUEUE...]",
                        help="consume only these queues (backups, packages, restores, "
                             "retention); default: all of them")
    worker.add_argument("--grace-period", type=int, default=300, metavar="SECONDS",
                        help="on SIGTERM, how long running jobs may take to finish before "
                             "they are stopped and retried elsewhere (default 300; keep a "
                             "process manager's stop timeout above it)")
    # Internal: the Celery worker process itself, which `backup-api worker` supervises.
    worker.add_argument("--unsupervised", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("beat", help="run the Celery beat scheduler")
    sub.add_parser("migrate", help="apply metadata DB migrations")
    check = sub.add_parser("check-config", help="validate a config and print effective settings")
    check.add_argument("path", nargs="?")
    keys = sub.add_parser("keys", help="API keys: create (shown once), list, revoke")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it, once")
    create.add_argument("--name", required=True, help="who or what uses it (e.g. ci)")
    create.add_argument("--scope", action="append", required=True,
                        help="read, write, admin or metrics; comma-separated or repeated")
    keys_sub.add_parser("list", help="list keys (never the keys themselves)").add_argument(
        "--json", action="store_true", help="one JSON document instead of a table")
    keys_sub.add_parser("revoke", help="revoke a key: it answers 401 from now on").add_argument(
        "name")
    stored = sub.add_parser("secrets", help="secrets stored in the metadata DB")
    rotate = stored.add_subparsers(dest="secrets_command", required=True).add_parser(
        "rotate", help="re-encrypt every stored secret with the first key of "
                       "BACKUP_API_SECRET_KEY")
    rotate.add_argument("--discard-unreadable", action="store_true",
                        help="erase the secrets no given key decrypts (their key is lost): "
                             "enter them again afterwards")
    from worker import recover_cli

    recover_cli.add_parser(sub)
    return parser


def _queues(value: str) -> list[str]:
    """Parse ``--queues``: known queue names, comma-separated."""
    from shared.broker import QUEUES

    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUEUES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown queue {', '.join(unknown) or repr(value)}: choose among {', '.join(QUEUES)}")
    return list(dict.fromkeys(names))


def _version() -> str:
    try:
        return version("backup-api")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    # First: every file and directory any role creates (metadata DB, broker messages,
    # artifacts, temporary files) is its user's alone.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    if args.command in ("run", "api"):
        # Before anything else, so a port in use is one line, not a half-started service.
        problem = port_problem(args.host, args.port)
        if problem:
            print(f"backup-api: {problem}", file=sys.stderr)
            return 1

    logs.configure()
    try:
        settings = load_settings(getattr(args, "path", None))
    except ConfigError as exc:
        print(f"backup-api: invalid configuration: {exc.message}", file=sys.stderr)
        return 2
    for spec in settings.databases:
        logs.add_secret(spec.password)
    if settings.storage.s3:
        logs.add_secret(settings.storage.s3.secret_key)
    for key in settings.auth.keys:
        logs.add_secret(key.key)
    for secret in channel_secrets(settings.notifications):
        logs.add_secret(secret)
    handler = {"run": _run, "api": _api, "worker": _worker, "beat": _beat,
               "migrate": _migrate, "check-config": _check_config, "keys": _keys,
               "secrets": _secrets, "recover": _recover}[args.command]
    try:
        # recover list/restore read only the storage: no key to load (or to generate).
        if args.command != "check-config" and getattr(args, "recover_command", "import") \
                == "import":
            _load_secret_key(settings, args.command)
        return handler(settings, args)
    except SecretKeyError as exc:
        print(f"backup-api: {exc.message}", file=sys.stderr)
        return 2


def _load_secret_key(settings: Settings, command: str) -> None:
    """Load the keys of stored secrets; the embedded default makes its own on first start."""
    from shared.metadata_db import normalize_url

    if os.path.isdir(settings.runtime.data_dir):
        secrets.private_dir(settings.runtime.data_dir)  # one made by an older version: 0755
    embedded = command == "run" or normalize_url(settings.runtime.database_url).startswith(
        "sqlite")
    keyring = secrets.load_keyring(settings.runtime, generate=embedded)
    if keyring.generated:
        print(f"Generated {keyring.path}, the key that encrypts the database passwords "
              "stored in the metadata DB: without it they are lost, so back it up apart from "
              "the data (docs/security.md)", file=sys.stderr, flush=True)
    for key in keyring.keys:
        logs.add_secret(key)
    secrets.use(keyring)


def _prepare(settings: Settings) -> None:
    """Migrate the metadata DB, check the stored secrets, and upsert the databases and keys
    declared in the config."""
    from shared.api_keys import sync_config_keys
    from shared.catalog import upsert_config_databases

    db, _ = _migrate_and_reseal(settings)
    with db.exclusive():
        with db.session() as session:
            upsert_config_databases(session, settings)
        sync_config_keys(db, settings)
    db.sql_engine.dispose()


def _migrate_and_reseal(settings: Settings, **rotation: bool) -> tuple[MetadataDB, Outcome]:
    """Migrate, then check the secret key opens every stored secret (SecretKeyError if
    not: a wrong key stops the process here) and encrypt those still in plain text."""
    from shared.metadata_db import MetadataDB
    from shared.models import Base
    from shared.secret_rows import reseal

    db = MetadataDB(settings.runtime.database_url)
    db.migrate()
    with db.session() as session:
        outcome = reseal(session, Base.metadata, **rotation)
    return db, outcome


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    """Create (printing the key once, alone on stdout), list or revoke API keys."""
    from shared import api_keys
    from shared.errors import BackupApiError
    from shared.metadata_db import MetadataDB

    logging.getLogger("alembic").setLevel(logging.WARNING)  # stderr says only what matters
    _prepare(settings)
    db = MetadataDB(settings.runtime.database_url)
    try:
        with db.session() as session:
            if args.keys_command == "create":
                key, secret = api_keys.create_key(session, args.name,
                                                  api_keys.parse_scopes(args.scope))
            elif args.keys_command == "revoke":
                key = api_keys.revoke_key(session, args.name)
            else:
                rows = [api_keys.describe(k) for k in api_keys.list_keys(session)]
    except BackupApiError as exc:
        print(f"backup-api: {exc.message}", file=sys.stderr)
        return 1
    finally:
        db.sql_engine.dispose()
    if args.keys_command == "create":
        print(f"API key {key.name!r} ({', '.join(key.scopes)}); shown this once, store it "
              "now (only its hash is kept):", file=sys.stderr)
        print(secret, flush=True)
    elif args.keys_command == "revoke":
        print(f"API key {key.name!r} revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    elif args.json:
        print(json.dumps(rows, indent=2))
    else:
        columns = ["name", "prefix", "scopes", "managed_by", "created_at", "last_used_at",
                   "revoked_at"]
        table = [[c.upper() for c in columns]] + [
            [",".join(v) if isinstance(v := r[c], list) else v or "-" for c in columns]
            for r in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
        for line in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _secrets(settings: Settings, args: argparse.Namespace) -> int:
    """Re-encrypt every stored secret with the first key (``secrets rotate``)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    db, done = _migrate_and_reseal(settings, rotate=True,
                                   discard_unreadable=args.discard_unreadable)
    db.sql_engine.dispose()
    _prepare(settings)  # config-declared secrets that were discarded come back now
    keyring = secrets.current()
    print(f"{done.rotated + done.sealed} stored secret(s) encrypted with the first key of "
          f"{keyring.source}; {done.sealed} of them were in plain text"
          + ("; the other keys are no longer needed" if len(keyring.keys) > 1 else ""))
    if done.discarded:
        print(f"erased {len(done.discarded)} secret(s) no key could decrypt: "
              f"{', '.join(done.discarded)}. Those of config-managed databases came back "
              "from the config; give the others again (PATCH /databases/<id>)")
    return 0


def _recover(settings: Settings, args: argparse.Namespace) -> int:
    """List, restore or re-register backups from the storage alone (worker/recover_cli.py)."""
    from worker import recover_cli

    logging.getLogger("alembic").setLevel(logging.WARNING)
    return recover_cli.run(settings, args, prepare=_prepare)


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    _prepare(settings)
    print("metadata DB is up to date")
    return 0


def _check_config(settings: Settings, _: argparse.Namespace) -> int:
    """Print the effective settings of each database, passwords masked."""
    if not settings.runtime.config_found:
        print(f"backup-api: no config file at {settings.runtime.config_path}: "
              "showing the defaults (name a file, or set BACKUP_API_CONFIG)", file=sys.stderr)
    report: dict[str, Any] = {
        "config": settings.runtime.config_path if settings.runtime.config_found else None,
        "storage": {"type": settings.storage.type,
                    **({"path": settings.storage_path} if settings.storage.type == "local"
                       else {"bucket": settings.storage.s3.bucket if settings.storage.s3
                             else None})},
        "databases": [],
        "package-conf": vars(settings.package),
        "auth": {"disabled": settings.auth.disabled,
                 "metrics_public": settings.auth.metrics_public,
                 "keys": [{"name": k.name, "scopes": list(k.scopes)} for k in settings.auth.keys]},
        # Which channel hears what; never a URL, a secret or a password.
        "notifications": [{"name": c.name, "type": c.type, "events": list(c.events)}
                          for c in settings.notifications],
    }
    for spec in settings.databases:
        eff = effective(spec, settings.global_)
        report["databases"].append({
            "id": spec.id, "name": spec.name or spec.id, "engine": spec.engine,
            "host": spec.host, "port": spec.port or DEFAULT_PORTS[spec.engine],
            "username": spec.username, "password": "***" if spec.password else None,
            "database_name": spec.database_name, "package": spec.package,
            "restore_target": spec.restore_target, "max_size_bytes": spec.max_size_bytes,
            "enabled": spec.enabled, **vars(eff),
        })
    report["tools"], missing = tool_report(settings)
    print(json.dumps(report, indent=2, default=str))
    # A warning, not a failure: the file is valid, and it may be checked on a machine
    # (CI, the API host) that never runs a dump.
    for problem in missing:
        print(f"backup-api: warning: {problem}", file=sys.stderr)
    return 0


def tool_report(settings: Settings) -> tuple[dict[str, str], list[str]]:
    """Locate each engine's dump tool; list as missing those a configured database needs."""
    from shared.engines import DUMP_ENGINES
    from shared.errors import DumpError

    needed: dict[str, list[str]] = {}
    for spec in settings.databases:
        if spec.enabled:
            needed.setdefault(spec.engine, []).append(spec.id)
    found: dict[str, str] = {}
    missing: list[str] = []
    for name, engine_class in DUMP_ENGINES.items():
        engine = engine_class()
        try:
            found[engine.tool] = engine.locate()
        except DumpError as exc:
            found[engine.tool] = f"missing: {exc.message}"
            if name in needed:
                missing.append(f"{exc.message} (needed by {', '.join(needed[name])})")
    for spec in settings.databases:
        if spec.enabled and spec.options.get("pg_bin_dir"):
            try:
                engine_class = DUMP_ENGINES[spec.engine]
                found[f"{spec.id}: pg_dump"] = engine_class().locate(spec.options)
            except DumpError as exc:
                missing.append(f"{spec.id}: {exc.message}")
    return found, missing


def port_problem(host: str, port: int) -> str | None:
    """Return why ``host:port`` cannot be listened on (in use, not allowed), or None."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror}"
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            hint = " (choose another with --port)" if exc.errno == errno.EADDRINUSE else ""
            return f"cannot listen on {host}:{port}: {exc.strerror}{hint}"
    return None


def _api(settings: Settings, args: argparse.Namespace) -> int:
    from api.app import create_app
    from api.server import serve

    _migrate_and_reseal(settings)[0].sql_engine.dispose()
    serve(create_app(settings, migrate=False, bind_host=args.host), args.host, args.port,
          args.threads)
    return 0


def _prepare_waiting(settings: Settings) -> bool:
    """``_prepare``, retried while the metadata DB is unreachable (it may start after us)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import InterfaceError, OperationalError

    from worker.supervisor import wait_for

    where = make_url(settings.runtime.database_url).render_as_string(hide_password=True)
    try:
        wait_for(lambda: _prepare(settings), f"the metadata DB at {where}",
                 (OperationalError, InterfaceError), timeout=DB_WAIT_SECONDS)
    except (OperationalError, InterfaceError) as exc:
        log.error("the metadata DB at %s is still unreachable after %ds: %s", where,
                  DB_WAIT_SECONDS, str(exc).strip().splitlines()[0])
        return False
    return True


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    """Supervise a Celery worker process (worker/supervisor.py), which runs the jobs."""
    from worker.supervisor import Policy, supervise

    if not args.unsupervised:
        if not _prepare_waiting(settings):
            return 1
        for name, where in tool_report(settings)[0].items():
            if where.startswith("missing"):
                log.warning("%s %s: backups that need it will fail", name, where)
        command = [sys.executable, "-m", "cli", "worker", "--unsupervised"]
        for option in ("concurrency", "hostname"):
            if getattr(args, option):
                command.append(f"--{option}={getattr(args, option)}")
        command += [f"--queues={','.join(args.queues)}"] if args.queues else []
        command += ["--beat"] if args.beat else []
        return supervise(command, Policy(grace_period=args.grace_period))
    return _celery_worker(settings, args)


def _celery_worker(settings: Settings, args: argparse.Namespace) -> int:
    from worker.celery_app import make_worker_app

    app = make_worker_app(settings)
    # --quiet: no banner on stdout; every line a process writes is a JSON log line.
    argv = ["--quiet", "worker", "--loglevel=INFO", "--without-mingle", "--without-gossip"]
    argv.append(f"--concurrency={args.concurrency or settings.global_.max_parallel_jobs}")
    if args.hostname:
        argv.append(f"--hostname={args.hostname}")
    if args.queues:
        argv.append(f"--queues={','.join(args.queues)}")
    if args.beat:
        argv += ["--beat", f"--schedule={os.path.join(settings.runtime.data_dir, 'beat')}"]
    app.worker_main(argv)
    return 0


def _beat(settings: Settings, _: argparse.Namespace) -> int:
    from worker.celery_app import make_worker_app

    if not _prepare_waiting(settings):
        return 1
    app = make_worker_app(settings)
    app.start(["--quiet", "beat", "--loglevel=INFO",
               f"--schedule={os.path.join(settings.runtime.data_dir, 'beat')}"])
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    """Start the worker (with beat) and the API as child processes; stop both together."""
    from worker.supervisor import Policy

    os.makedirs(settings.runtime.data_dir, exist_ok=True)
    _prepare(settings)
    _first_key(settings, f"http://{args.host}:{args.port}")
    stop_wait = Policy().grace_period + Policy().kill_after + 15  # see worker/supervisor.py
    exe = [sys.executable, "-m", "cli"]
    # Children get their own sessions: a Ctrl-C in the terminal reaches only this
    # process, which then stops them in order (the worker finishes its warm shutdown).
    children = [
        subprocess.Popen(exe + ["worker", "--beat"], start_new_session=True),
        subprocess.Popen(exe + ["api", "--host", args.host, "--port", str(args.port),
                                "--threads", str(args.threads)], start_new_session=True),
    ]
    print(f"Backup API on http://{args.host}:{args.port} (docs at /docs); "
          f"data in {settings.runtime.data_dir}", flush=True)

    def stop(*_: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    finally:
        stop()
        for child in children:
            try:
                # The worker's supervisor ends its grace period, then its cold shutdown.
                child.wait(timeout=stop_wait)
            except subprocess.TimeoutExpired:
                child.kill()
    return max(child.returncode or 0 for child in children)


def _first_key(settings: Settings, base: str) -> None:
    """Create and print an admin key when none was ever made; else say how many are active."""
    from shared import api_keys
    from shared.metadata_db import MetadataDB

    if settings.auth.disabled:
        print("WARNING: auth.disabled is true: anyone who reaches the API can download, "
              "restore and delete backups", flush=True)
        return
    db = MetadataDB(settings.runtime.database_url)
    with db.session() as session:
        secret = api_keys.create_first_key(session)
        active, _ = api_keys.count_keys(session)
    db.sql_engine.dispose()
    if secret is None:
        print(f"API keys: {active} active (backup-api keys list)", flush=True)
        return
    print("Created the admin API key; it is shown this once, store it now:\n\n"
          f"    {secret}\n\n"
          f"Send it with each request: curl -H 'Authorization: Bearer {secret}' "
          f"{base}/databases\nMore keys: backup-api keys create --scope read --name NAME\n",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
