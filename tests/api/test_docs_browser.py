"""/docs in a real browser: Swagger UI comes from the installed product, not a CDN.

The page is loaded by Debian's headless Chromium (installed by scripts/test.sh) with
every host but 127.0.0.1 unresolvable, so the test means the same on a machine with
internet as on one without: a script or style sheet fetched from elsewhere leaves the
page blank and the test fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Client

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium not found: install Debian's chromium package "
                    "(scripts/test.sh does) to check /docs in a real browser")
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         # Anything but the API under test is unreachable, whatever this machine's network.
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--virtual-time-budget=15000", *extra, url],
        capture_output=True, text=True, timeout=180)


def test_docs_lists_the_operations_in_a_real_browser(api: Client, tmp_path: Path) -> None:
    screenshot = tmp_path / "docs.png"
    shot = _chromium(api.base + "/docs", tmp_path / "profile-shot",
                     f"--screenshot={screenshot}", "--window-size=1280,1600")
    assert screenshot.exists(), shot.stderr[-2000:]

    result = _chromium(api.base + "/docs", tmp_path / "profile-dom", "--dump-dom")
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    # Swagger UI rendered the document: one block per operation, titled by its path.
    assert dom.count('class="opblock ') >= 10, dom[-3000:]
    paths = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert {"/databases", "/backups", "/backups/{backup_id}/download",
            "/retention/run"} <= paths, sorted(paths)
    assert "Backup API" in dom


def test_docs_page_loads_nothing_from_another_host(api: Client) -> None:
    page = api.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, page.text
    assert all(src.startswith("/") and not src.startswith("//") for src in sources), sources
    for src in sources:
        asset = api.get(src)
        assert asset.status_code == 200, src
        assert len(asset.content) > 1000, src
    assert api.get("/docs/static/swagger-ui-bundle.js").headers["Content-Type"].startswith(
        ("text/javascript", "application/javascript"))


def test_docs_static_serves_only_the_bundle(api: Client) -> None:
    for path in ("/docs/static/nope.js", "/docs/static/../../../etc/passwd",
                 "/docs/static/%2e%2e/%2e%2e/etc/passwd", "/docs/static/"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["message"]


def test_root_redirects_to_the_docs(api: Client) -> None:
    response = api.get("/", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/docs")
    assert api.get("/").url == api.base + "/docs"
