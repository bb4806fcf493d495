"""FerretDB seeded with a shop database, and a stack whose worker has the Go-built mongodump."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import bson
import pytest

from tests.conftest import Client, Stack, start_stack
from tests.ferretdb import FerretDB
from tests.peers import path_with_peers
from tests.services import PostgresCluster, Redis
from tests.worker.mongodb.helpers import stop


@pytest.fixture(scope="package")
def ferret(workdir: Path, pg: PostgresCluster) -> Iterator[FerretDB]:
    server = FerretDB(pg, workdir / "ferretdb.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def mongo_stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    """API + a worker whose PATH has the Go-built mongodump (as scripts/test.sh sets up).

    Tests that need mongodump say so with ``@pytest.mark.requires_peer``; without it the
    stack still serves the tests of validation, redaction and a missing mongodump.
    """
    running = start_stack(workdir / "mongo-stack", pg, redis, workers=0)
    running.start_worker("mongo1", PATH=path_with_peers())
    yield running
    stop(running)


@pytest.fixture(scope="package")
def api(mongo_stack: Stack) -> Client:
    return mongo_stack.client


def seed(ferret: FerretDB, name: str) -> None:
    db = ferret.client()[name]
    when = dt.datetime(2024, 2, 29, 13, 45, 7, 123000, tzinfo=dt.UTC)
    db.customers.insert_many([{
        "_id": i, "email": f"user{i}@example.com", "name": f"Customer {i}",
        "joined": when + dt.timedelta(days=i, milliseconds=i),
        "profile": {"tier": ["gold", "silver", "bronze"][i % 3], "score": i * 1.5,
                    "address": {"city": "Zürich" if i % 2 else "Zoë 🚀", "zip": [80, i]},
                    "flags": {"active": i % 4 != 0, "note": None}},
        "avatar": bson.Binary(hashlib.sha256(str(i).encode()).digest()),
        "visits": bson.Int64(2**40 + i),
    } for i in range(1, 501)])
    db.customers.create_index([("email", 1)], name="by_email", unique=True)
    db.orders.insert_many([{
        "customer_id": (i % 500) + 1, "placed_at": when - dt.timedelta(hours=i),
        "items": [{"sku": f"SKU-{j}", "qty": j, "price": j * 2.25} for j in range(i % 5 + 1)],
        "total": i * 3.5, "status": "paid" if i % 3 else "open",
    } for i in range(2000)])
    db.orders.create_index([("customer_id", 1), ("placed_at", -1)], name="by_customer")
    # Large binaries make the dump span many pipe reads and compressor blocks.
    db.attachments.insert_many([{"_id": f"file-{i}", "data": bson.Binary(os.urandom(300_000)),
                                 "uploaded": when} for i in range(8)])


@pytest.fixture(scope="package")
def source(ferret: FerretDB) -> str:
    seed(ferret, "shop")
    return "shop"
