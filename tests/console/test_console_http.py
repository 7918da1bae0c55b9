"""The console over HTTP without a browser: sign-in, sessions, CSRF and headers.

The api runs under uvicorn on a loopback port with a migrated SQLite database; Temporal is
not needed for these pages.
"""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from storage.models import Device
from tests.support.oidc import RunningApi, running_api
from tikflow.settings import Settings

TOKEN = secrets.token_urlsafe(24)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningApi]:
    def settings_for(port: int) -> Settings:
        return Settings(env="lab", var_dir=tmp_path, dev_token=TOKEN,
                        database={"url": f"sqlite+aiosqlite:///{tmp_path}/tikflow.db"},
                        api={"port": port}, temporal={"address": "127.0.0.1:1"})

    async with running_api(settings_for) as running:
        yield running


def hidden_csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def sign_in(http: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    page = await http.get("/console/login")
    return await http.post("/console/login", data={
        "csrf_token": hidden_csrf(page.text), "token": token, "next": "/console/devices"})


async def test_console_redirects_to_sign_in(api: RunningApi) -> None:
    """An anonymous request for a page is sent to sign-in with the page as the next target."""
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        response = await http.get("/console/audit?actor=x")

    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/audit%3Factor%3Dx"


async def test_console_sign_in_sets_protected_cookie(api: RunningApi) -> None:
    """Signing in with the dev token sets an HttpOnly SameSite=Lax cookie without the token."""
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        response = await sign_in(http)
        cookie = response.headers["set-cookie"]
        devices = await http.get("/console/devices")

    assert response.status_code == 303
    assert response.headers["location"] == "/console/devices"
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "path=/console" in cookie.lower()
    assert TOKEN not in cookie
    assert devices.status_code == 200
    assert "dev-admin" in devices.text
    assert TOKEN not in devices.text


async def test_console_rejects_wrong_token(api: RunningApi) -> None:
    """A wrong token shows the form again with a 401 and no session."""
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        response = await sign_in(http, token="not-the-token")
        devices = await http.get("/console/devices")

    assert response.status_code == 401
    assert "not accepted" in response.text
    assert devices.status_code == 303


async def test_console_post_without_csrf_is_rejected(api: RunningApi) -> None:
    """A POST without the CSRF token, or with another session's token, gets 403."""
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        await sign_in(http)
        missing = await http.post("/console/incident/pause", data={"reason": "drill"})
        wrong = await http.post("/console/incident/pause",
                                data={"reason": "drill", "csrf_token": "x" * 43})

    assert missing.status_code == 403
    assert "security token" in missing.text
    assert wrong.status_code == 403


async def test_console_sign_in_form_needs_csrf(api: RunningApi) -> None:
    """The sign-in form itself is CSRF-protected, so a foreign page cannot log a victim in."""
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        response = await http.post("/console/login", data={"token": TOKEN})

    assert response.status_code == 403


async def test_console_pages_send_security_headers(api: RunningApi) -> None:
    """Pages forbid framing and inline scripts and are not cached."""
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        response = await http.get("/console/login")

    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_console_next_parameter_stays_on_console(api: RunningApi) -> None:
    """A next target outside the console is replaced by the devices page."""
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        page = await http.get("/console/login")
        response = await http.post("/console/login", data={
            "csrf_token": hidden_csrf(page.text), "token": TOKEN, "next": "https://example.org/"})

    assert response.headers["location"] == "/console/devices"


async def test_console_sign_out_ends_session(api: RunningApi) -> None:
    """Signing out clears the session so pages ask for sign-in again."""
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        await sign_in(http)
        page = await http.get("/console/devices")
        response = await http.post("/console/logout", data={"csrf_token": hidden_csrf(page.text)})
        after = await http.get("/console/devices")

    assert response.status_code == 303
    assert after.status_code == 303


async def add_device(api: RunningApi, name: str, port: int) -> str:
    """Store an active device whose address refuses connections."""
    services = api.app.state.services
    device_id = f"dev-{name}"
    async with services.db.session() as session:
        session.add(Device(id=device_id, name=name, address="127.0.0.1", port=port, transport="api",
                           environment="lab", status="active", tags=["t"], facts={}))
    await services.inventory.add_credential(device_id, "tikflow", "secret-password-1")
    return device_id


def closed_port() -> int:
    """Return a loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_console_device_page_survives_dead_device_and_temporal(api: RunningApi) -> None:
    """With the router and Temporal both down, the page still renders and reports what failed."""
    device_id = await add_device(api, "dead-1", closed_port())
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        await sign_in(http)
        page = await http.get(f"/console/devices/{device_id}")
        table = await http.get(f"/console/devices/{device_id}", params={"view": "firewall"})
        polled = await http.get(f"/console/devices/{device_id}/operations.json")

    assert page.status_code == 200
    assert "dead-1" in page.text
    assert "the device could not be read" in page.text
    assert "secret-password-1" not in page.text
    assert table.status_code == 200
    assert "the device could not be read" in table.text
    assert polled.status_code == 503
    assert "Temporal is not reachable" in polled.json()["error"]


async def test_console_unknown_device_shows_not_found(api: RunningApi) -> None:
    """An unknown device gives a 404 page naming the problem, not a stack trace."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        await sign_in(http)
        response = await http.get("/console/devices/no-such-router")

    assert response.status_code == 404
    assert "no device with id or name" in response.text
    assert "Traceback" not in response.text


async def test_console_register_error_keeps_input_but_not_password(api: RunningApi) -> None:
    """A rejected registration shows the API's field errors and never echoes the password."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        await sign_in(http)
        form = await http.get("/console/devices/new")
        response = await http.post("/console/devices/new", data={
            "csrf_token": hidden_csrf(form.text), "name": "bad name", "address": "10.0.0.1",
            "transport": "api", "environment": "lab", "username": "tikflow",
            "password": "hunter2-secret", "tags": "ok"})

    assert response.status_code == 422
    assert "hunter2-secret" not in response.text
    assert 'value="bad name"' in response.text
    assert "name must be 1-64 letters" in response.text


async def test_console_csrf_field_with_non_ascii_bytes(api: RunningApi) -> None:
    """A CSRF field of raw non-UTF-8 bytes is rejected with 403, not a server error."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        await http.get("/console/login")
        response = await http.post("/console/login", content=b"csrf_token=\xff\xfe&token=x",
                                   headers={"content-type": "application/x-www-form-urlencoded"})

    assert response.status_code == 403


async def test_console_bad_query_shows_error_page(api: RunningApi) -> None:
    """A malformed query parameter gets an HTML error page naming the parameter."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        await sign_in(http)
        response = await http.get("/console/devices/x/snapshots/diff",
                                  params={"left": "a", "right": "1"})

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "left: Input should be a valid integer" in response.text


async def test_console_plan_form_rejects_bad_changes(api: RunningApi) -> None:
    """Invalid JSON and incomplete changes are reported above the form, which keeps the input."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        await sign_in(http)
        form = await http.get("/console/plans/new")
        token = hidden_csrf(form.text)
        broken = await http.post("/console/plans/new", data={
            "csrf_token": token, "description": "d", "changes": "[{]"})
        incomplete = await http.post("/console/plans/new", data={
            "csrf_token": token, "description": "d", "changes": '[{"device": "r1"}]'})
        no_description = await http.post("/console/plans/new", data={
            "csrf_token": token, "description": "", "changes": "[]"})

    assert broken.status_code == 422
    assert "changes: not valid JSON" in broken.text
    assert "[{]" in broken.text
    assert incomplete.status_code == 422
    assert "changes.0.path: Field required" in incomplete.text
    assert no_description.status_code == 422
    assert "description: describe what the plan changes" in no_description.text


async def test_console_audit_rejects_bad_time_filter(api: RunningApi) -> None:
    """An unparsable 'since' filter is shown as the API's message, with the filters kept."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        await sign_in(http)
        response = await http.get("/console/audit", params={"since": "yesterday", "actor": "bob"})

    assert response.status_code == 422
    assert "query.since: Input should be a valid datetime" in response.text
    assert 'value="bob"' in response.text
