"""The console's bare URL, as printed by tikflow dev, leads to the sign-in page."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from tikflow.settings import Settings


def test_bare_console_url_redirects_to_sign_in(tmp_path):
    """GET /console redirects into the console, which sends a signed-out user to sign in."""
    app = create_app(Settings(env="lab", var_dir=tmp_path, dev_token="t" * 32,
                              database={"url": f"sqlite+aiosqlite:///{tmp_path}/t.db"}))
    with TestClient(app) as client:
        first = client.get("/console", follow_redirects=False)
        final = client.get("/console")
    assert first.status_code == 307
    assert first.headers["location"] == "/console/"
    assert final.status_code == 200
    assert final.url.path == "/console/login"
