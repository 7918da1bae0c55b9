"""Console sign-in through OpenID Connect in Chromium: authorisation code flow with PKCE.

A real provider (``oidc-provider-mock``) runs on loopback; the api runs under uvicorn with
``oidc.issuer`` pointing at it. Temporal is not needed for sign-in or the pages used here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Page, Playwright, Request, expect

from storage.models import Plan
from tests.console.browser import open_browser, shot
from tests.support.oidc import CLIENT_ID, CLIENT_SECRET, MockIdP, RunningApi, running_api
from tikflow.settings import Settings


@pytest.fixture(scope="module")
def idp() -> AsyncIterator[MockIdP]:
    provider = MockIdP().start()
    for subject, groups in (("alice@example.com", ["tikflow-operator"]),
                            ("carol@example.com", ["tikflow-approver"]),
                            ("nobody@example.com", ["unrelated"])):
        response = httpx.put(f"{provider.issuer}/users/{subject}", json={"groups": groups}, timeout=10)
        assert response.status_code == 204, response.text
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
async def api(idp: MockIdP, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningApi]:
    tmp_path = tmp_path_factory.mktemp("console-oidc")

    def settings_for(port: int) -> Settings:
        return Settings(
            env="staging", var_dir=tmp_path, api={"port": port},
            database={"url": f"sqlite+aiosqlite:///{tmp_path}/tikflow.db"},
            temporal={"address": "127.0.0.1:1"},
            master_key="q" * 43 + "=",
            # Profile defaults follow TIKFLOW_ENV, not this argument, so both are set here.
            auth={"break_glass_enabled": False, "matrix": {"operator": {"apply": ["lab"]}}},
            oidc={"issuer": idp.issuer, "audience": "tikflow", "client_id": CLIENT_ID,
                  "client_secret": CLIENT_SECRET},
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKFLOW_CONSOLE_SESSION_SECRET", "s" * 40)
        async with running_api(settings_for) as running:
            await add_plans(running)
            yield running


async def add_plans(api: RunningApi) -> None:
    """Store one planned lab plan and one planned prod plan."""
    async with api.app.state.services.db.session() as session:
        for environment in ("lab", "prod"):
            session.add(Plan(id=f"plan-{environment}", description=f"{environment} change",
                             author="someone", plan_hash="0" * 64, status="planned", risk="low",
                             environments=[environment], diff=[]))


async def sign_in_at_idp(page: Page, api: RunningApi, subject: str) -> list[Request]:
    """Follow the console's sign-in link, pick ``subject`` at the provider; return its requests."""
    authorize_requests: list[Request] = []
    page.on("request", lambda r: authorize_requests.append(r) if "/oauth2/authorize" in r.url else None)
    await page.goto(f"{api.url}/console/login")
    await page.get_by_role("link", name="Sign in with your identity provider").click()
    await expect(page).to_have_url(re.compile(r"/oauth2/authorize"))
    await page.locator("input[name=sub]").fill(subject)
    await page.get_by_role("button", name="Authorize").click()
    return authorize_requests


async def test_console_oidc_sign_in_uses_pkce(playwright: Playwright, api: RunningApi,
                                              tmp_path: Path) -> None:
    """Sign-in goes through the provider with an S256 code challenge and lands signed in."""
    context = await open_browser(playwright, tmp_path / "profile")
    page = await context.new_page()
    try:
        requests = await sign_in_at_idp(page, api, "alice@example.com")
        await expect(page).to_have_url(f"{api.url}/console/devices")
        await expect(page.get_by_test_id("user")).to_have_text("alice@example.com")
        await expect(page.locator(".roles")).to_contain_text("operator")
        await shot(page, "oidc-signed-in")

        query = parse_qs(urlsplit(requests[0].url).query)
        assert query["code_challenge_method"] == ["S256"]
        assert len(query["code_challenge"][0]) >= 43
        assert query["redirect_uri"] == [f"{api.url}/console/auth/callback"]
        assert "state" in query
        cookie = next(c for c in await context.cookies() if c["name"] == "tikflow_console")
        assert cookie["httpOnly"] is True
        assert "access_token" not in page.url
    finally:
        await context.close()


async def test_console_oidc_user_without_role_is_refused(playwright: Playwright,
                                                         api: RunningApi, tmp_path: Path) -> None:
    """A provider user without a tikflow role gets an explanation and no session."""
    context = await open_browser(playwright, tmp_path / "profile")
    page = await context.new_page()
    try:
        await sign_in_at_idp(page, api, "nobody@example.com")
        await expect(page.get_by_role("alert")).to_contain_text("hold no tikflow role")
        await page.goto(f"{api.url}/console/devices")
        await expect(page).to_have_url(re.compile(r"/console/login\?next="))
    finally:
        await context.close()


async def test_console_oidc_hides_token_form_outside_lab(playwright: Playwright,
                                                         api: RunningApi, tmp_path: Path) -> None:
    """Outside the lab profile, with break-glass off, the sign-in page offers only the provider."""
    context = await open_browser(playwright, tmp_path / "profile")
    page = await context.new_page()
    try:
        await page.goto(f"{api.url}/console/login")
        await expect(page.get_by_role("link", name="Sign in with your identity provider")).to_be_visible()
        await expect(page.locator("#token")).to_have_count(0)
    finally:
        await context.close()


async def test_console_oidc_callback_without_state_is_refused(api: RunningApi) -> None:
    """A callback that the console did not start (no state in the session) starts no session."""
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        response = await http.get("/console/auth/callback", params={"code": "x", "state": "y"})
        devices = await http.get("/console/devices")

    assert response.status_code == 401
    assert "sign-in failed" in response.text
    assert devices.status_code == 303


async def test_console_offers_actions_by_matrix(playwright: Playwright, api: RunningApi,
                                               tmp_path: Path) -> None:
    """An operator may apply a lab plan, but a prod plan is read-only under the matrix."""
    context = await open_browser(playwright, tmp_path / "profile")
    page = await context.new_page()
    try:
        await sign_in_at_idp(page, api, "alice@example.com")
        await expect(page).to_have_url(f"{api.url}/console/devices")

        await page.goto(f"{api.url}/console/plans/plan-lab")
        await expect(page.get_by_role("button", name="Apply")).to_be_visible()
        await expect(page.get_by_role("button", name="Approve this plan")).to_have_count(0)

        await page.goto(f"{api.url}/console/plans/plan-prod")
        await expect(page.get_by_text("Your roles allow reading this plan only.")).to_be_visible()
        await expect(page.get_by_role("button", name="Apply")).to_have_count(0)
        await shot(page, "plan-read-only")
    finally:
        await context.close()
