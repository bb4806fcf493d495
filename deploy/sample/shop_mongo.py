"""Seed the compose file's sample MongoDB with a small shop, as deploy/sample/shop.sql
seeds sample-postgres: 1,000 customers and 10,000 orders in the database ``shop``.

docker-compose.yml runs it once per ``up`` (service ``sample-mongodb-seed``, from the
worker image, which has pymongo). It waits for the server, and leaves a database that
already has customers as it is, so the data survives restarts and is never doubled.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime

import pymongo
from pymongo.errors import PyMongoError

CUSTOMERS = 1000
ORDERS = 10000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="sample-mongodb")
    parser.add_argument("--port", type=int, default=27017)
    parser.add_argument("--username", default="root")
    parser.add_argument("--database", default="shop")
    parser.add_argument("--wait", type=float, default=120, help="seconds to wait for the server")
    args = parser.parse_args()
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        host=args.host, port=args.port, username=args.username,
        password=os.environ["SAMPLE_MONGO_PASSWORD"], authSource="admin",
        serverSelectionTimeoutMS=5000)
    deadline = time.monotonic() + args.wait
    while True:
        try:
            client.admin.command("ping")
            break
        except PyMongoError as exc:
            if time.monotonic() > deadline:
                print(f"shop_mongo: {args.host}:{args.port} did not answer: {exc}",
                      file=sys.stderr)
                return 1
            time.sleep(1)
    shop = client[args.database]
    if shop["customers"].count_documents({}, limit=1):
        print(f"shop_mongo: {args.database} already has customers; left as it is")
        return 0
    now = datetime.now(UTC)
    shop["customers"].insert_many(
        [{"_id": i, "name": f"customer {i}", "created_at": now} for i in range(1, CUSTOMERS + 1)])
    shop["orders"].insert_many(
        [{"_id": g, "customer_id": g % CUSTOMERS + 1, "total": g} for g in range(1, ORDERS + 1)])
    print(f"shop_mongo: seeded {args.database} with {CUSTOMERS} customers and {ORDERS} orders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
