"""The periodic update check against a release endpoint served on loopback by the test."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.updates import UpdateStatus, check_for_updates
from tikflow.settings import Settings


@pytest.fixture
def release_url() -> Iterator[str]:
    class Release(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server handler name
            body = json.dumps({"version": "9.9.9", "url": "https://example.invalid/r/9.9.9"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Release)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/latest.json"
    server.shutdown()


def settings_for(release_url: str | None, tmp_path, interval: int = 1) -> Settings:
    return Settings(env="lab", var_dir=tmp_path, dev_token="t" * 32,
                    database={"url": f"sqlite+aiosqlite:///{tmp_path}/t.db"},
                    updates={"release_url": release_url, "check_interval_seconds": interval})


async def test_update_check_reports_newer_release(release_url, tmp_path):
    """A newer release at the endpoint is recorded as available; nothing is installed."""
    status = UpdateStatus()
    task = asyncio.create_task(check_for_updates(settings_for(release_url, tmp_path), status))
    try:
        for _ in range(100):
            if status.latest:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert status.latest == "9.9.9"
    assert status.update_available is True
    assert status.error is None


async def test_update_check_off_without_interval(release_url, tmp_path):
    """With the interval at 0 the check never runs."""
    status = UpdateStatus()
    await asyncio.wait_for(check_for_updates(settings_for(release_url, tmp_path, interval=0), status), 5)
    assert status.latest is None


async def test_update_check_records_unreachable_endpoint(tmp_path):
    """An unreachable endpoint is recorded as an error, not a crash."""
    status = UpdateStatus()
    settings = settings_for("http://127.0.0.1:9/latest.json", tmp_path)
    task = asyncio.create_task(check_for_updates(settings, status))
    try:
        for _ in range(100):
            if status.error:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert status.error is not None
    assert "127.0.0.1:9" in status.error


def test_version_route_shows_newer_release(release_url, tmp_path):
    """/version reports the newer release the api's own check found."""
    app = create_app(settings_for(release_url, tmp_path))
    with TestClient(app) as client:
        body = {}
        for _ in range(100):
            body = client.get("/version").json()
            if body["latest"]:
                break
            threading.Event().wait(0.05)
    assert body["latest"] == "9.9.9"
    assert body["update_available"] is True
