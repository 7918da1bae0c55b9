"""Device pages: list, register, detail with live tables and snapshots, and lifecycle actions."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from temporalio.service import RPCError

from api.admin.devices import list_operations, show_device
from api.console.admin_client import ApiResult
from api.console.csrf import require_csrf
from api.console.snapshots import (
    latest_snapshot_times,
    list_snapshots,
    load_snapshot,
    side_by_side,
    snapshot_lines,
)
from api.console.web import DEVICE_READERS, AdminApiDep, UserDep, flash, render, root, services_of
from inventory.devices import DeviceUnavailable
from routeros.errors import DeviceError

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/devices")

ENVIRONMENTS = ("lab", "staging", "prod")
TRANSPORTS = ("api", "api-ssl", "rest", "ssh")
# Live tables read from the device, by tab name: (title, menu path).
LIVE_VIEWS = {
    "interfaces": ("Interfaces", "/interface"),
    "addresses": ("IP addresses", "/ip/address"),
    "firewall": ("Firewall filter rules", "/ip/firewall/filter"),
}
LIVE_ROW_LIMIT = 500
# Roles the device routes of the admin API accept for edits and rotation; decommission needs admin.
CHANGE_ROLES = {"operator", "admin"}
REGISTER_FIELDS = ("name", "address", "port", "transport", "environment", "tags", "username",
                   "password_ref", "tls_fingerprint")
# Seconds a page waits for a device before it shows an error instead of the table.
DEVICE_READ_TIMEOUT = 15.0


def _fail_unless_ok(result: ApiResult) -> None:
    if not result.ok:
        raise HTTPException(result.status, detail=result.error_text())


def _device_path(request: Request, device: dict[str, Any]) -> str:
    return f"{root(request)}/devices/{quote(device['id'], safe='')}"


@router.get("")
async def devices_page(request: Request, user: UserDep, api: AdminApiDep,
                       environment: str | None = None, status: str | None = None,
                       tag: str | None = None) -> Response:
    """List devices with status, environment, tags, version and last snapshot."""
    result = await api.get(user, "/devices", environment=environment, status=status, tag=tag)
    _fail_unless_ok(result)
    snapshots = await latest_snapshot_times(services_of(request).db)
    return render(request, "devices.html", {
        "devices": result.body["items"], "last_snapshot": snapshots,
        "filters": {"environment": environment or "", "status": status or "", "tag": tag or ""},
        "environments": ENVIRONMENTS,
    })


@router.get("/new")
async def register_page(request: Request, user: UserDep) -> Response:
    """Show the registration form."""
    return render(request, "device_register.html", {
        "form": {"transport": "api", "environment": "lab"}, "errors": {},
        "environments": ENVIRONMENTS, "transports": TRANSPORTS})


@router.post("/new", dependencies=[Depends(require_csrf)])
async def register_submit(request: Request, user: UserDep, api: AdminApiDep) -> Response:
    """Register a device through the admin API and show its registration progress."""
    form = await request.form()
    fields = {key: str(form.get(key, "")).strip() for key in REGISTER_FIELDS}
    body, errors = _registration_body(fields, str(form.get("password", "")))

    result = None if errors else await api.post(user, "/devices", body)
    if result is not None and result.ok:
        flash(request, f"Registration of {fields['name']} started.", "success")
        target = f"{root(request)}/devices/{quote(result.body['device_id'], safe='')}"
        return RedirectResponse(f"{target}?operation={quote(result.body['workflow_id'], safe='')}",
                                status_code=303)
    if result is not None:
        errors |= result.field_errors() or {"form": result.error_text()}

    # The password is never sent back into the page, not even after a failed attempt.
    return render(request, "device_register.html", {
        "form": fields, "errors": errors, "environments": ENVIRONMENTS, "transports": TRANSPORTS},
        status_code=result.status if result is not None else 422)


def _registration_body(fields: dict[str, str], password: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the admin API's registration body from the form, and errors found on the way."""
    body: dict[str, Any] = {
        "name": fields["name"], "address": fields["address"], "transport": fields["transport"],
        "environment": fields["environment"], "username": fields["username"],
        "tags": [t.strip() for t in fields["tags"].split(",") if t.strip()],
    }
    errors: dict[str, str] = {}
    if fields["port"].isdigit():
        body["port"] = int(fields["port"])
    elif fields["port"]:
        errors["port"] = "port must be a number from 1 to 65535"
    if fields["tls_fingerprint"]:
        body["tls_fingerprint"] = fields["tls_fingerprint"]
    if password:
        body["password"] = password
    if fields["password_ref"]:
        body["password_ref"] = fields["password_ref"]
    return body, errors


@router.get("/{device}")
async def device_page(request: Request, device: str, user: UserDep, api: AdminApiDep,
                      view: str = "overview", operation: str | None = None) -> Response:
    """Show one device: overview or a live table, snapshots, operations and actions."""
    result = await api.get(user, f"/devices/{quote(device, safe='')}")
    _fail_unless_ok(result)
    record = result.body
    operations = await api.get(user, f"/devices/{quote(record['id'], safe='')}/operations")
    context: dict[str, Any] = {
        "device": record, "view": view if view in (*LIVE_VIEWS, "overview", "snapshots") else "overview",
        "operations": operations.body.get("items", []) if operations.ok else [],
        "operations_error": None if operations.ok else operations.error_text(),
        "watch_operation": operation, "live_views": LIVE_VIEWS, "environments": ENVIRONMENTS,
        "device_path": _device_path(request, record),
        "can_change": bool(CHANGE_ROLES & user.roles), "can_decommission": "admin" in user.roles,
    }
    if context["view"] == "overview":
        context["overview"], context["read_error"] = await _read_overview(request, record["id"])
    elif context["view"] == "snapshots":
        context["snapshots"] = await list_snapshots(services_of(request).db, record["id"])
    else:
        title, path = LIVE_VIEWS[context["view"]]
        context["table_title"] = title
        context["rows"], context["read_error"] = await _read_table(request, record["id"], path)
        context["columns"] = _columns(context["rows"])
    return render(request, "device.html", context)


@router.get("/{device}/operations.json")
async def device_operations(request: Request, device: str, user: UserDep) -> JSONResponse:
    """Return the device's status and lifecycle workflows, polled by the device page.

    The page polls every two seconds, so this calls the admin API's read functions directly
    instead of sending requests that the API would audit each time. The role check repeats
    the one those routes declare.
    """
    if not DEVICE_READERS & user.roles:
        return JSONResponse({"error": "reading devices needs one of the roles: "
                                      + ", ".join(sorted(DEVICE_READERS))}, status_code=403)
    services = services_of(request)
    try:
        async with asyncio.timeout(DEVICE_READ_TIMEOUT):
            found = await show_device(device, services, user)
            operations = await list_operations(device, services, user)
    except TimeoutError:
        return JSONResponse({"error": "no answer from Temporal within "
                                      f"{DEVICE_READ_TIMEOUT:.0f} s"}, status_code=504)
    except HTTPException as err:
        return JSONResponse({"error": err.detail}, status_code=err.status_code)
    except (RPCError, RuntimeError) as err:
        log.warning("device operations unavailable", device=device, error=str(err))
        return JSONResponse({"error": "Temporal is not reachable; operations are unknown"},
                            status_code=503)
    return JSONResponse({
        "status": found["status"], "status_reason": found.get("status_reason"),
        "operations": operations["items"],
    }, headers={"cache-control": "no-store"})


@router.get("/{device}/snapshots/diff")
async def snapshot_diff(request: Request, device: str, user: UserDep, api: AdminApiDep,
                        left: int, right: int) -> Response:
    """Compare two snapshots of the device side by side."""
    result = await api.get(user, f"/devices/{quote(device, safe='')}")
    _fail_unless_ok(result)
    record = result.body
    db = services_of(request).db
    older, newer = await load_snapshot(db, record["id"], left), await load_snapshot(db, record["id"], right)
    if older is None or newer is None:
        raise HTTPException(404, detail=f"snapshot {left if older is None else right} does not "
                                        f"belong to device {record['name']}; pick two from its list")
    rows, cut = side_by_side(snapshot_lines(older), snapshot_lines(newer))
    return render(request, "snapshot_diff.html", {
        "device": record, "left": older, "right": newer, "rows": rows, "cut": cut,
        "device_path": _device_path(request, record)})


@router.post("/{device}/edit", dependencies=[Depends(require_csrf)])
async def edit_device(request: Request, device: str, user: UserDep, api: AdminApiDep) -> Response:
    """Change the device's name, tags or environment; unchanged fields are not sent."""
    current = await api.get(user, f"/devices/{quote(device, safe='')}")
    _fail_unless_ok(current)
    form = await request.form()
    changes: dict[str, Any] = {}
    name = str(form.get("name", "")).strip()
    tags = sorted({t.strip() for t in str(form.get("tags", "")).split(",") if t.strip()})
    environment = str(form.get("environment", "")).strip()
    if name and name != current.body["name"]:
        changes["name"] = name
    if tags != sorted(current.body["tags"]):
        changes["tags"] = tags
    if environment and environment != current.body["environment"]:
        changes["environment"] = environment
    if not changes:
        flash(request, "Nothing changed.", "info")
        return _back_to(request, current.body)
    result = await api.call(user, "PATCH", f"/devices/{quote(current.body['id'], safe='')}",
                            json=changes)
    _flash_result(request, result, f"Saved {', '.join(sorted(changes))}.")
    return _back_to(request, current.body)


@router.post("/{device}/rotate", dependencies=[Depends(require_csrf)])
async def rotate_device(request: Request, device: str, user: UserDep, api: AdminApiDep) -> Response:
    """Start a credential rotation."""
    current = await api.get(user, f"/devices/{quote(device, safe='')}")
    _fail_unless_ok(current)
    form = await request.form()
    policy = "new-user" if form.get("policy") == "new-user" else "same-user"
    result = await api.post(user, f"/devices/{quote(current.body['id'], safe='')}/rotate-credentials",
                            {"policy": policy})
    _flash_result(request, result, "Credential rotation started.")
    return _back_to(request, current.body, result.body.get("workflow_id") if result.ok else None)


@router.post("/{device}/decommission", dependencies=[Depends(require_csrf)])
async def decommission_device(request: Request, device: str, user: UserDep,
                              api: AdminApiDep) -> Response:
    """Decommission the device once the operator has typed its name to confirm."""
    current = await api.get(user, f"/devices/{quote(device, safe='')}")
    _fail_unless_ok(current)
    form = await request.form()
    name = current.body["name"]
    if str(form.get("confirm_name", "")).strip() != name:
        flash(request, f"Not decommissioned: type the device name {name} exactly to confirm.", "error")
        return _back_to(request, current.body)
    body = {"remove_service_account": form.get("remove_service_account") == "on"}
    result = await api.post(user, f"/devices/{quote(current.body['id'], safe='')}/decommission", body)
    _flash_result(request, result, f"Decommissioning {name} started.")
    return _back_to(request, current.body, result.body.get("workflow_id") if result.ok else None)


def _flash_result(request: Request, result: ApiResult, success: str) -> None:
    if result.ok:
        flash(request, success, "success")
    else:
        flash(request, f"Failed: {result.error_text()}", "error")


def _back_to(request: Request, device: dict[str, Any], operation: str | None = None) -> Response:
    target = _device_path(request, device)
    if operation:
        target += f"?operation={quote(operation, safe='')}"
    return RedirectResponse(target, status_code=303)


async def _read_overview(request: Request, device_id: str) -> tuple[dict[str, Any], str | None]:
    async def read(client: Any) -> dict[str, Any]:
        return {"resource": await client.get("/system/resource"),
                "identity": (await client.get("/system/identity")).get("name")}

    return await _with_device(request, device_id, read, {})


async def _read_table(request: Request, device_id: str,
                      path: str) -> tuple[list[dict[str, str]], str | None]:
    async def read(client: Any) -> list[dict[str, str]]:
        return await client.print(path, limit=LIVE_ROW_LIMIT)

    return await _with_device(request, device_id, read, [])


async def _with_device(request: Request, device_id: str, read: Any, empty: Any) -> tuple[Any, str | None]:
    """Run ``read`` in a pooled device session; a device fault becomes a message, not a 500."""
    services = services_of(request)
    try:
        device = await services.inventory.find(device_id)
        async with asyncio.timeout(DEVICE_READ_TIMEOUT):
            async with services.sessions.session(device) as client:
                return await read(client), None
    except DeviceError as err:
        return empty, f"the device could not be read: {err.message}"
    except DeviceUnavailable as err:
        return empty, str(err)
    except TimeoutError:
        return empty, f"the device did not answer within {DEVICE_READ_TIMEOUT:.0f} s"


def _columns(rows: list[dict[str, str]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)
