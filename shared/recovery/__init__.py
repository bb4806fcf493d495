"""Recovery with nothing but the storage: the sidecars beside each artifact describe it
well enough to list, restore and re-register it without the metadata DB, the broker or
the API (``backup-api recover``).

- ``sidecars``: what a sidecar holds, read back (older ones included) into typed records;
- ``locations``: the storage named on the command line (a config file or a URL) and the
  database a restore goes into (a connection URL);
- ``importing``: the metadata rows rebuilt from the sidecars, idempotently.
"""
