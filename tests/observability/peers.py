"""Real Prometheus and Flower processes for the observability tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.services import REPO, free_port, wait_for

ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"


def prometheus_binary(name: str = "prometheus") -> str:
    """Return the path of ``prometheus``/``promtool`` (Debian's package; scripts/test.sh)."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed; run bash scripts/test.sh (apt prometheus)")
    return path


@dataclass
class Prometheus:
    """A Prometheus server on 127.0.0.1 scraping ``targets`` every second."""

    root: Path
    targets: list[str]
    # The API key it scrapes with (a `metrics` key), kept in a file as in deployment.
    key: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        self.root.mkdir(parents=True, exist_ok=True)
        key_file = self.root / "backup-api.key"
        key_file.write_text(self.key + "\n")
        config = {
            "global": {"scrape_interval": "2s", "scrape_timeout": "2s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "backup-api",
                                "authorization": {"type": "Bearer",
                                                  "credentials_file": str(key_file)},
                                "static_configs": [{"targets": self.targets}]}],
        }
        (self.root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process = subprocess.Popen(
            [prometheus_binary(), f"--config.file={self.root / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=open(self.root / "prometheus.log", "wb"), stderr=subprocess.STDOUT)
        wait_for(lambda: requests.get(self.base + "/-/ready", timeout=2).ok, 60, "prometheus")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query; return its vector."""
        body = requests.get(self.base + "/api/v1/query", params={"query": expr},
                            timeout=10).json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        """Return the single value of ``expr``, or ``None`` when it has no series."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def firing(self) -> list[dict[str, Any]]:
        body = requests.get(self.base + "/api/v1/alerts", timeout=10).json()
        return [a for a in body["data"]["alerts"] if a["state"] == "firing"]


@dataclass
class Flower:
    """Flower on 127.0.0.1, configured by environment exactly like the compose service."""

    root: Path
    broker_url: str
    user: str = "flower"
    password: str = "flower-Test-Secret-3307"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Flower:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CELERY_BROKER_URL": self.broker_url,
               "FLOWER_BASIC_AUTH": f"{self.user}:{self.password}",
               "FLOWER_PORT": str(self.port), "FLOWER_ADDRESS": "127.0.0.1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "flower"], env=env,
            stdout=open(self.root / "flower.log", "wb"), stderr=subprocess.STDOUT)
        wait_for(lambda: requests.get(self.base + "/healthcheck", timeout=2).ok, 60, "flower")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)

    def get(self, path: str, auth: bool = True) -> requests.Response:
        return requests.get(self.base + path, timeout=10,
                            auth=(self.user, self.password) if auth else None)
