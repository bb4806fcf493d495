"""age keys for the encryption tests, opening artifacts with the real `age` command line,
and a watch on every process's command line for secrets."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyrage

from tests.peers import require
from tests.services import cmdlines


@dataclass(frozen=True)
class AgeKey:
    """An identity file as ``age-keygen -o`` writes it, and what it holds."""

    path: Path
    recipient: str
    secret: str = field(repr=False)


def make_key(path: Path) -> AgeKey:
    """Write a new X25519 identity file at ``path`` (0600) and return it."""
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    path.write_text(f"# created: by the tests\n# public key: {recipient}\n{identity}\n")
    path.chmod(0o600)
    return AgeKey(path=path, recipient=recipient, secret=str(identity))


def age_decrypt(source: Path, key: AgeKey, target: Path) -> subprocess.CompletedProcess[str]:
    """Run ``age -d -i KEYFILE -o TARGET SOURCE`` as a user would; return the result."""
    return subprocess.run([require("age"), "-d", "-i", str(key.path), "-o", str(target),
                           str(source)], capture_output=True, text=True, timeout=300)


def open_download(source: Path, key: AgeKey, target: Path) -> Path:
    """Decrypt an encrypted ``….dump.gz.age`` download with `age`, then gunzip it."""
    decrypted = target.with_suffix(".gz")
    result = age_decrypt(source, key, decrypted)
    assert result.returncode == 0, result.stderr
    with gzip.open(decrypted, "rb") as compressed, target.open("wb") as plain:
        shutil.copyfileobj(compressed, plain, 1024 * 1024)
    return target


@dataclass
class CmdlineWatch:
    """What the watch saw: programs (by name) and the command lines holding a secret."""

    programs: set[str] = field(default_factory=set)
    leaks: list[str] = field(default_factory=list)


@contextmanager
def watch_cmdlines(secrets: list[str], every: float = 0.05) -> Iterator[CmdlineWatch]:
    """Look at every process's command line until the block ends, for any of ``secrets``.

    ``programs`` lets a test prove the watch was running while the tool it cares about
    (pg_dump, pg_restore) was.
    """
    seen = CmdlineWatch()
    stop = threading.Event()

    def look() -> None:
        while not stop.is_set():
            for cmdline in cmdlines():
                words = cmdline.split()
                if words:
                    seen.programs.add(Path(words[0]).name)
                if any(secret in cmdline for secret in secrets):
                    seen.leaks.append(cmdline)
            stop.wait(every)

    thread = threading.Thread(target=look, name="cmdline-watch", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
