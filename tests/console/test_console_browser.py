"""The console in a real browser: Debian's Chromium driven by Playwright against the full stack.

The stack is the real thing: the Temporal dev server, `tikflow worker` and `tikflow api`
processes, and a `tikflow simulate` fleet. Two people use the console: the lab's development
identity (``dev-admin``, every role) and ``bob``, a break-glass account holding only the
approver role, each in a browser of their own with an empty profile.

The tests run in file order and build on each other, as an operator's day would: r1 is
registered through the console first, later tests change devices and read the audit trail.
Screenshots of every page land in ``tests/artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, Playwright, expect

from api.breakglass import create_account
from inventory.devices import Inventory, enrol_device, load_key_ring
from storage.db import Database
from tests.console.browser import SCREENSHOTS, open_browser, shot
from tests.support.simulator import SimulatorProcess, product_samples, start_simulator
from tests.support.stack import Stack, start_stack

# r1 is registered through the console; r2-r6 are lab devices for the rollout; r7 is prod.
LAB_FLEET = ["r2", "r3", "r4", "r5", "r6"]
PROD_DEVICE = "r7"
# Milliseconds a browser waits for a workflow to show its result on a page.
WORKFLOW_WAIT_MS = 120_000


@pytest.fixture(scope="module")
def fleet() -> AsyncIterator[SimulatorProcess]:
    process = start_simulator(devices=7, export=product_samples()[0])
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def stack(fleet: SimulatorProcess, temporal_server, tmp_path_factory) -> AsyncIterator[Stack]:
    var_dir = tmp_path_factory.mktemp("console")
    url = f"sqlite+aiosqlite:///{var_dir}/tikflow.db"
    running = start_stack(database_url=url, temporal_address=temporal_server.address, var_dir=var_dir)
    db = Database(url)
    inventory = Inventory(db, load_key_ring(running.settings))
    try:
        for name in [*LAB_FLEET, PROD_DEVICE]:
            endpoint = fleet.endpoint(name)
            host, _, port = endpoint["api"].rpartition(":")
            await enrol_device(inventory, running.settings, name=name, address=host, port=int(port),
                               transport="api", environment="prod" if name == PROD_DEVICE else "lab",
                               username=endpoint["service_username"],
                               password=endpoint["service_password"], tags=["fleet"])
        running.approver_token = await create_account(db, name="bob", role="approver",
                                                      created_by="console-test")
        yield running
    finally:
        await db.dispose()
        running.stop()
        # Keep the api and worker logs next to the screenshots for a failed run.
        shutil.copytree(running.log_dir, SCREENSHOTS.parent / "console-stack-logs", dirs_exist_ok=True)


@pytest.fixture(scope="module")
async def operator(playwright: Playwright, stack: Stack, tmp_path_factory) -> AsyncIterator[Page]:
    """dev-admin's browser, signed in with the development token."""
    context = await open_browser(playwright, tmp_path_factory.mktemp("operator") / "profile")
    page = context.pages[0] if context.pages else await context.new_page()
    await sign_in(page, stack, stack.token)
    yield page
    await context.close()


@pytest.fixture(scope="module")
async def approver(playwright: Playwright, stack: Stack, tmp_path_factory) -> AsyncIterator[Page]:
    """bob's browser, signed in with his break-glass token."""
    context = await open_browser(playwright, tmp_path_factory.mktemp("approver") / "profile")
    page = context.pages[0] if context.pages else await context.new_page()
    # An approver cannot list devices, so the console opens on the plans.
    await sign_in(page, stack, stack.approver_token, landing="plans")
    yield page
    await context.close()


async def sign_in(page: Page, stack: Stack, token: str, landing: str = "devices") -> None:
    await page.goto(f"{stack.api_url}/console/")
    await expect(page).to_have_url(re.compile(r"/console/login$"))
    await page.get_by_label(re.compile("token")).fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{stack.api_url}/console/{landing}")


async def focused_id(page: Page) -> str:
    return await page.evaluate("document.activeElement && document.activeElement.id")


async def test_console_sign_in_page_and_session(playwright: Playwright, stack: Stack, tmp_path):
    """The sign-in page rejects a wrong token, and no page or URL ever shows the right one."""
    context = await open_browser(playwright, tmp_path / "profile")
    page = await context.new_page()
    try:
        await page.goto(f"{stack.api_url}/console/plans")
        await shot(page, "login")
        await page.get_by_label(re.compile("token")).fill("wrong-token")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("not accepted")

        await page.get_by_label(re.compile("token")).fill(stack.token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(f"{stack.api_url}/console/plans")
        assert stack.token not in await page.content()
        cookies = await context.cookies()
        session = next(c for c in cookies if c["name"] == "tikflow_console")
        assert session["httpOnly"] is True
        assert session["sameSite"] == "Lax"
        assert stack.token not in session["value"]
    finally:
        await context.close()


async def test_console_registers_device_keyboard_only(operator: Page, stack: Stack,
                                                      fleet: SimulatorProcess):
    """The register form is usable by keyboard alone, checks input as you type, and shows progress."""
    page = operator
    endpoint = fleet.endpoint("r1")
    host, _, port = endpoint["api"].rpartition(":")
    await page.goto(f"{stack.api_url}/console/devices/new")

    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip-link"
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    assert await focused_id(page) == "name"
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "the focused field has no visible focus outline"

    # A bad name is flagged as soon as the field is left, and cleared while typing a good one.
    await page.keyboard.type("bad name!")
    await page.keyboard.press("Tab")
    await expect(page.locator("#name-error")).to_be_visible()
    await expect(page.locator("#name-error")).to_contain_text("letters, digits")
    await expect(page.locator("#name")).to_have_attribute("aria-invalid", "true")
    await shot(page, "device-register-invalid")
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("edge-r1")
    await expect(page.locator("#name-error")).to_be_hidden()

    expected_order = ["address", "transport", "port", "environment", "tags", "username", "password"]
    typed = {"address": host, "port": port, "tags": "console, lab", "username": "tikflow",
             "password": endpoint["service_password"]}
    for field in expected_order:
        await page.keyboard.press("Tab")
        assert await focused_id(page) == field
        if field in typed:
            await page.keyboard.type(typed[field])
    await shot(page, "device-register")
    await page.keyboard.press("Enter")

    await expect(page).to_have_url(re.compile(r"/console/devices/[^/?]+\?operation=device-register"))
    await expect(page.locator("#device-status")).to_have_text("active", timeout=WORKFLOW_WAIT_MS)
    await expect(page.locator("#operations-body")).to_contain_text("device-register:")
    await shot(page, "device-registered")


async def test_console_device_list_and_live_tables(operator: Page, stack: Stack):
    """The list shows status, environment, tags and version; detail tabs read the router live."""
    page = operator
    await page.goto(f"{stack.api_url}/console/devices")
    row = page.get_by_role("row").filter(has_text="edge-r1")
    await expect(row).to_contain_text("active")
    await expect(row).to_contain_text("lab")
    await expect(row).to_contain_text("console")
    await expect(page.get_by_role("row").filter(has_text=PROD_DEVICE)).to_contain_text("prod")
    await shot(page, "devices")

    await row.get_by_role("link", name="edge-r1").click()
    await expect(page.locator("dl.facts")).to_contain_text("version")
    await shot(page, "device-overview")
    for tab, expected in (("Interfaces", "bridge-lan"), ("IP addresses", "address"),
                          ("Firewall filter rules", "chain")):
        await page.get_by_role("navigation", name="Device views").get_by_role("link", name=tab).click()
        await expect(page.get_by_role("heading", name=tab)).to_be_visible()
        await expect(page.locator("table.dense")).to_contain_text(expected)
        await shot(page, f"device-{tab.split()[0].lower()}")


async def test_console_edits_and_guards_decommission(operator: Page, stack: Stack):
    """Tags are edited in place; decommission stays locked until the exact name is typed."""
    page = operator
    await page.goto(f"{stack.api_url}/console/devices")
    await page.get_by_role("link", name="edge-r1").click()
    await page.get_by_label("Tags (comma-separated)").fill("console, lab, edited")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status").first).to_contain_text("Saved tags")
    await expect(page.locator("dl.facts")).to_contain_text("edited")

    await page.get_by_role("button", name="Rotate").click()
    await expect(page.get_by_role("status").first).to_contain_text("Credential rotation started")
    rotation = page.locator("#operations-body tr").filter(has_text="credential-rotate:")
    await expect(rotation).to_contain_text("rotated", timeout=WORKFLOW_WAIT_MS)
    await expect(rotation.get_by_role("link")).to_have_attribute(
        "href", re.compile(r"/workflows/credential-rotate%3A"))
    await shot(page, "device-rotated")

    button = page.get_by_role("button", name="Decommission edge-r1")
    await expect(button).to_be_disabled()
    await page.get_by_label("Type edge-r1 to confirm").fill("edge-r")
    await expect(button).to_be_disabled()
    await page.get_by_label("Type edge-r1 to confirm").fill("edge-r1")
    await expect(button).to_be_enabled()
    await shot(page, "device-decommission-armed")
    await page.get_by_label("Type edge-r1 to confirm").fill("")


async def test_console_four_eyes_approval_by_second_user(operator: Page, approver: Page,
                                                         stack: Stack, fleet: SimulatorProcess):
    """dev-admin creates and applies a prod plan, cannot approve it; bob approves and it applies."""
    page = operator
    address = "10.231.0.1/24"
    await create_plan_in_console(page, stack, "prod subnet under four eyes", [
        {"device": PROD_DEVICE, "path": "/ip/address", "action": "add",
         "values": {"address": address, "interface": "bridge-lan", "comment": "console"}}])
    await expect(page.locator("#plan-approval-mode")).to_contain_text("four eyes")
    await expect(page.locator("pre.plan-diff")).to_contain_text(f"+ address={address}")
    plan_url = page.url
    await shot(page, "plan-created")

    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#plan-status")).to_have_text("awaiting_approval", timeout=30_000)
    await page.get_by_role("button", name="Approve this plan").click()
    await expect(page.get_by_role("alert")).to_contain_text("author of a plan cannot approve it")
    await shot(page, "plan-awaiting-approval")

    await approver.goto(plan_url)
    await expect(approver.get_by_role("button", name="Apply")).to_have_count(0)
    await approver.get_by_label("Note").fill("reviewed the diff")
    await approver.get_by_role("button", name="Approve this plan").click()
    await expect(approver.get_by_role("status").first).to_contain_text("Approved")
    await shot(approver, "plan-approved-by-bob")

    # The author's page was not reloaded: polling brings the result and the approver in.
    await expect(page.locator("#plan-status")).to_have_text("applied", timeout=WORKFLOW_WAIT_MS)
    await expect(page.locator("#plan-approvals")).to_contain_text("bob")
    await expect(page.locator("#temporal-link")).to_have_attribute(
        "href", re.compile(r"/namespaces/default/workflows/plan-apply%3Aplan-"))
    await shot(page, "plan-applied")
    assert address in [row["address"] for row in fleet.state(PROD_DEVICE, "/ip/address")]


async def test_console_aborts_plan_waiting_for_approval(operator: Page, stack: Stack,
                                                        fleet: SimulatorProcess):
    """Aborting a prod plan that waits for approval ends it as aborted with nothing changed."""
    page = operator
    address = "10.234.0.1/24"
    await create_plan_in_console(page, stack, "prod change that will be aborted", [
        {"device": PROD_DEVICE, "path": "/ip/address", "action": "add",
         "values": {"address": address, "interface": "bridge-lan"}}])
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#plan-status")).to_have_text("awaiting_approval", timeout=30_000)

    await page.get_by_role("button", name="Abort").click()
    await expect(page.get_by_role("status").first).to_contain_text("Abort requested")
    await expect(page.locator("#plan-status")).to_have_text("aborted", timeout=WORKFLOW_WAIT_MS)
    await expect(page.locator("#no-actions")).to_be_visible()
    await shot(page, "plan-aborted")
    assert address not in [row["address"] for row in fleet.state(PROD_DEVICE, "/ip/address")]


async def test_console_pauses_and_resumes_rollout(operator: Page, stack: Stack,
                                                  fleet: SimulatorProcess):
    """A rollout over five lab routers is paused from the plan page, held, and resumed to the end."""
    page = operator
    address = "10.232.0.1/24"
    for name in LAB_FLEET:
        fleet.set_faults(name, {"latency": 0.2})
    try:
        await create_plan_in_console(page, stack, "lab subnet in batches", [
            {"device": name, "path": "/ip/address", "action": "add",
             "values": {"address": address, "interface": "bridge-lan"}} for name in LAB_FLEET],
            canary=1, batch_size=1)
        await page.get_by_role("button", name="Apply").click()
        batches = page.locator("#plan-batches li")
        await expect(batches.first).to_contain_text("applied", timeout=WORKFLOW_WAIT_MS)

        await page.get_by_role("button", name="Pause rollout").click()
        await expect(page.get_by_role("status").first).to_contain_text("Rollout paused")
        await expect(page.locator("#plan-paused")).to_be_visible(timeout=30_000)
        await expect(page.locator("#plan-batches")).to_contain_text("pending")
        await shot(page, "plan-paused")
        applied_while_paused = sum(address in [r["address"] for r in fleet.state(n, "/ip/address")]
                                   for n in LAB_FLEET)
        assert applied_while_paused < len(LAB_FLEET)

        await page.get_by_role("button", name="Resume rollout").click()
        await expect(page.locator("#plan-status")).to_have_text("applied", timeout=WORKFLOW_WAIT_MS)
        await expect(page.locator("#plan-paused")).to_be_hidden()
        await shot(page, "plan-resumed-applied")
    finally:
        for name in LAB_FLEET:
            fleet.clear_faults(name)
    for name in LAB_FLEET:
        assert address in [row["address"] for row in fleet.state(name, "/ip/address")], name


async def test_console_plan_list_filters(operator: Page, stack: Stack):
    """The plan list filters by status and by text."""
    page = operator
    await page.goto(f"{stack.api_url}/console/plans")
    await expect(page.get_by_role("row")).to_have_count(4)
    await page.get_by_label("Status").select_option("awaiting_approval")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_text("No plans match.")).to_be_visible()

    await page.get_by_label("Status").select_option("aborted")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("row")).to_have_count(2)
    await expect(page.get_by_role("row").nth(1)).to_contain_text("will be aborted")

    await page.get_by_label("Status").select_option("applied")
    await page.get_by_label("Search").fill("batches")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("row")).to_have_count(2)
    await expect(page.get_by_role("row").nth(1)).to_contain_text("lab subnet in batches")
    await shot(page, "plans")


async def test_console_snapshot_diff_shows_the_change(operator: Page, stack: Stack):
    """The snapshots before two plans on r2 differ by the address the first plan added."""
    page = operator
    await create_plan_in_console(page, stack, "second change on r2", [
        {"device": "r2", "path": "/ip/address", "action": "add",
         "values": {"address": "10.233.0.1/24", "interface": "bridge-lan"}}])
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#plan-status")).to_have_text("applied", timeout=WORKFLOW_WAIT_MS)

    await page.goto(f"{stack.api_url}/console/devices")
    await page.get_by_role("link", name="r2", exact=True).click()
    await page.get_by_role("navigation", name="Device views").get_by_role("link", name="Snapshots").click()
    await shot(page, "device-snapshots")
    options = page.locator("select[name=left] option")
    await expect(options).to_have_count(2)
    # The form preselects the older snapshot on the left and the newer on the right.
    await page.get_by_role("button", name="Compare").click()
    await expect(page.locator("table.diff")).to_contain_text("10.232.0.1/24")
    added = page.locator("tr.diff-added, tr.diff-changed").filter(has_text="10.232.0.1/24")
    await expect(added.first).to_be_visible()
    await shot(page, "snapshot-diff")


async def test_console_incident_pause_and_tool_switch(operator: Page, stack: Stack):
    """The incident page pauses all work with a reason, names who did it, and switches a tool."""
    page = operator
    await page.goto(f"{stack.api_url}/console/incident")
    await page.get_by_label("Reason").fill("console drill INC-42")
    await page.get_by_role("button", name="Pause all plan and apply work").click()
    await expect(page.locator("#incident-state")).to_have_text("paused")
    await expect(page.locator("#pause-detail")).to_contain_text("dev-admin")
    await expect(page.locator("#pause-detail")).to_contain_text("console drill INC-42")
    await shot(page, "incident-paused")

    row = page.get_by_role("row").filter(has_text="plan.apply.v1")
    await row.get_by_role("button", name=re.compile("Disable")).click()
    await expect(row).to_contain_text("disabled")
    await expect(row).to_contain_text("dev-admin")
    await row.get_by_role("button", name=re.compile("Enable")).click()
    await expect(row).to_contain_text("enabled")

    await page.get_by_role("button", name="Resume plan and apply work").click()
    await expect(page.locator("#incident-state")).to_have_text("running")
    await expect(page.locator("#pause-detail")).to_contain_text("Last resumed by dev-admin")
    await shot(page, "incident")


async def test_console_audit_finds_the_actions(operator: Page, stack: Stack):
    """The audit page finds bob's approval by actor, and the incident switch by search."""
    page = operator
    await page.goto(f"{stack.api_url}/console/audit")
    await page.get_by_label("Actor").fill("bob")
    await page.get_by_role("button", name="Search").click()
    approval = page.locator("tbody tr").filter(has_text="api:POST /api/v1/plans/{plan_id}/approve")
    await expect(approval).to_contain_text("reviewed the diff")
    await shot(page, "audit-by-actor")

    await page.get_by_label("Actor").fill("")
    await page.get_by_label("Search this page").fill("incident/pause")
    await page.get_by_role("button", name="Search").click()
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("dev-admin")
    await expect(rows.first).to_contain_text("console drill INC-42")
    await shot(page, "audit")


async def test_console_post_without_csrf_token_is_rejected(operator: Page, stack: Stack):
    """A POST carrying the session cookie but no CSRF token changes nothing and gets 403."""
    response = await operator.request.post(f"{stack.api_url}/console/incident/pause",
                                           form={"reason": "forged"})
    assert response.status == 403
    assert "security token" in await response.text()
    await operator.goto(f"{stack.api_url}/console/incident")
    await expect(operator.locator("#incident-state")).to_have_text("running")


async def test_console_decommissions_after_typed_name(operator: Page, stack: Stack):
    """Typing the device name and confirming decommissions it; the list then shows it inactive."""
    page = operator
    await page.goto(f"{stack.api_url}/console/devices")
    await page.get_by_role("link", name="edge-r1").click()
    await page.get_by_label("Type edge-r1 to confirm").fill("edge-r1")
    await page.get_by_role("button", name="Decommission edge-r1").click()
    await expect(page.get_by_role("status").first).to_contain_text("Decommissioning edge-r1 started")
    await expect(page.locator("#device-status")).to_have_text("inactive", timeout=WORKFLOW_WAIT_MS)
    await shot(page, "device-decommissioned")

    await page.goto(f"{stack.api_url}/console/devices?status=inactive")
    await expect(page.get_by_role("row")).to_have_count(2)
    await expect(page.get_by_role("row").nth(1)).to_contain_text("edge-r1")


async def test_console_fits_a_phone(playwright: Playwright, stack: Stack, tmp_path):
    """On a phone-sized screen the pages need no sideways scrolling outside tables."""
    context = await open_browser(playwright, tmp_path / "profile",
                                 viewport={"width": 390, "height": 844}, is_mobile=True,
                                 has_touch=True, device_scale_factor=2)
    page = await context.new_page()
    try:
        await sign_in(page, stack, stack.token)
        for path, name in (("/console/devices", "phone-devices"), ("/console/plans", "phone-plans"),
                           ("/console/devices/new", "phone-register"),
                           ("/console/incident", "phone-incident")):
            await page.goto(f"{stack.api_url}{path}")
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow} px on a phone"
            await shot(page, name)
    finally:
        await context.close()


UNLABELLED_CONTROLS = """() => Array.from(document.querySelectorAll(
    "input:not([type=hidden]), select, textarea, button"))
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                  && !(el.tagName === "BUTTON" && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))"""


async def test_console_controls_have_names_and_landmarks(operator: Page, stack: Stack):
    """Every form control on every page has a label, and each page has one h1 and a main landmark."""
    page = operator
    await page.goto(f"{stack.api_url}/console/plans")
    plan_path = await page.get_by_role("row").nth(1).get_by_role("link").get_attribute("href")
    await page.goto(f"{stack.api_url}/console/devices")
    device_path = await page.get_by_role("link", name="edge-r1").get_attribute("href")
    paths = ["/console/devices", "/console/devices/new", device_path,
             f"{device_path}?view=firewall", f"{device_path}?view=snapshots", "/console/plans",
             "/console/plans/new", plan_path, "/console/incident", "/console/audit"]
    for path in paths:
        await page.goto(f"{stack.api_url}{path}")
        assert await page.evaluate(UNLABELLED_CONTROLS) == [], path
        await expect(page.get_by_role("heading", level=1)).to_have_count(1)
        await expect(page.get_by_role("main")).to_have_count(1)
        assert await page.get_attribute("html", "lang") == "en"
    await page.goto(f"{stack.api_url}/console/plans/new")
    await shot(page, "plan-new")


async def create_plan_in_console(page: Page, stack: Stack, description: str, changes: list[dict],
                                 *, canary: int | None = None, batch_size: int | None = None) -> None:
    """Fill the new-plan form and land on the created plan's page."""
    await page.goto(f"{stack.api_url}/console/plans/new")
    await page.get_by_label("Description").fill(description)
    await page.get_by_label("Changes (JSON list)").fill(json.dumps(changes))
    if canary is not None:
        await page.get_by_label("Canary devices").fill(str(canary))
    if batch_size is not None:
        await page.get_by_label("Batch size").fill(str(batch_size))
    await page.get_by_role("button", name="Create plan").click()
    await expect(page).to_have_url(re.compile(r"/console/plans/plan-[0-9a-f]+$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(description)
