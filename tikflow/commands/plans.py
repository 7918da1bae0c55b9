"""``tikflow plans`` and ``tikflow incident``: plan actions and incident switches via the admin API.

Exit codes as for ``tikflow devices``: 0 success, 1 failure, 2 bad input or refused, 3 not found.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from tikflow.commands.devices import EXIT_FAILED, err, fail, out, run_api

plans_app = typer.Typer(name="plans", help="List, show, approve, apply and control plans.",
                        no_args_is_help=True)
incident_app = typer.Typer(name="incident", help="Pause plan/apply work and switch tools off.",
                           no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why; recorded in the audit log")]
FINAL = {"applied", "rolled_back", "failed", "aborted", "needs_operator"}


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value))


@plans_app.command("list")
def list_plans(status: Annotated[str | None, typer.Option(help="Only plans with this status")] = None,
               limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
               as_json: JsonOption = False) -> None:
    """List plans, newest first."""
    params = {"limit": limit} | ({"status": status} if status else {})
    items = run_api("GET", "/plans", params=params)["items"]
    if as_json:
        _print_json(items)
        return
    table = Table("status", "risk", "approval", "devices", "author", "description")
    table.columns.insert(0, Column("plan", no_wrap=True))
    for plan in items:
        table.add_row(plan["id"], plan["status"], plan["risk"], plan["approval"],
                      str(len(plan["device_ids"])), plan["author"], plan["description"][:50])
    out.print(table)


@plans_app.command("show")
def show_plan(plan_id: str, as_json: JsonOption = False) -> None:
    """Show a plan: status, diff per device, steps and rollout batches."""
    plan = run_api("GET", f"/plans/{plan_id}")
    if as_json:
        _print_json(plan)
        return
    out.print(f"[bold]{plan['id']}[/bold]  {plan['status']}  risk {plan['risk']}  "
              f"approval {plan['approval']}")
    out.print(plan["description"])
    for reason in plan["risk_reasons"]:
        out.print(f"  risk: {reason}")
    if plan.get("status_detail"):
        out.print(f"  detail: {plan['status_detail']}")
    for device in plan["diff"]:
        out.print(device["text"], highlight=False)
    batches = plan.get("progress", {}).get("batches", [])
    if batches:
        table = Table("batch", "devices", "status")
        for batch in batches:
            table.add_row(batch["label"], str(len(batch["device_ids"])), batch["status"])
        out.print(table)


def _plan_hash(plan_id: str, given: str | None) -> str:
    return given or run_api("GET", f"/plans/{plan_id}")["plan_hash"]


@plans_app.command("apply")
def apply(plan_id: str,
          plan_hash: Annotated[str | None, typer.Option(help="Hash you reviewed; default: current")] = None,
          wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow until the plan ends")] = True,
          timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 600,
          as_json: JsonOption = False) -> None:
    """Apply a plan (once). Waits and shows progress unless --no-wait."""
    started = run_api("POST", f"/plans/{plan_id}/apply", {"plan_hash": _plan_hash(plan_id, plan_hash)})
    if not wait or started["status"] == "awaiting_approval":
        _print_json(started) if as_json else out.print(f"{plan_id}: {started['status']}")
        return
    final = _follow(plan_id, timeout)
    _print_json(final) if as_json else out.print(f"{plan_id}: {final['status']} {final.get('status_detail') or ''}")
    if final["status"] != "applied":
        raise typer.Exit(EXIT_FAILED)


def _follow(plan_id: str, timeout: float) -> dict[str, Any]:
    deadline, shown = time.monotonic() + timeout, ""
    while True:
        plan = run_api("GET", f"/plans/{plan_id}")
        progress = plan.get("progress") or {}
        line = f"{progress.get('status', plan['status'])} ({progress.get('phase', '')})"
        if line != shown:
            err.print(f"  {line}", highlight=False)
            shown = line
        if plan["status"] in FINAL and progress.get("status", plan["status"]) in FINAL:
            return plan
        if time.monotonic() > deadline:
            fail(f"plan {plan_id} is still {plan['status']} after {timeout:.0f} s", EXIT_FAILED)
        time.sleep(0.5)


@plans_app.command("approve")
def approve(plan_id: str,
            plan_hash: Annotated[str | None, typer.Option(help="Hash you reviewed; default: current")] = None,
            note: Annotated[str | None, typer.Option(help="Recorded with the approval")] = None) -> None:
    """Approve a plan waiting for approval."""
    result = run_api("POST", f"/plans/{plan_id}/approve",
                     {"plan_hash": _plan_hash(plan_id, plan_hash), "note": note})
    out.print(f"{plan_id}: approved by {', '.join(result['approved_by'])}")


def _control(action: str):
    def command(plan_id: str, reason: ReasonOption = None) -> None:
        run_api("POST", f"/plans/{plan_id}/{action}", {"reason": reason})
        out.print(f"{plan_id}: {action} sent")

    command.__doc__ = {"pause": "Pause a running plan at its next step boundary.",
                       "resume": "Resume a paused plan.",
                       "abort": "Abort a running plan and undo what it changed."}[action]
    return command


for _action in ("pause", "resume", "abort"):
    plans_app.command(_action)(_control(_action))


@incident_app.command("status")
def incident_status(as_json: JsonOption = False) -> None:
    """Show whether plan/apply is paused and which tools are off."""
    state = run_api("GET", "/incident")
    if as_json:
        _print_json(state)
        return
    pause = state.get("pause") or {}
    reason = f": {pause['reason']}" if pause.get("reason") else ""
    out.print(f"plan/apply: {'PAUSED' if state['paused'] else 'running'}"
              + (f" (by {pause['changed_by']} at {pause['changed_at']}{reason})" if pause else ""))
    out.print(f"disabled tools: {', '.join(state['disabled_tools']) or 'none'}")
    out.print(f"disabled tiers: {', '.join(state['disabled_tiers']) or 'none'}")


@incident_app.command("pause")
def incident_pause(reason: ReasonOption = None) -> None:
    """Pause every running plan at its next step and refuse new applies; reads keep working."""
    state = run_api("POST", "/incident/pause", {"reason": reason})
    out.print(f"plan/apply paused; {state['signalled']} running plan(s) signalled")
    if state.get("signal_error"):
        fail(state["signal_error"], EXIT_FAILED)


@incident_app.command("resume")
def incident_resume(reason: ReasonOption = None) -> None:
    """Release the incident pause; paused plans continue."""
    state = run_api("POST", "/incident/resume", {"reason": reason})
    out.print(f"plan/apply resumed; {state['signalled']} running plan(s) signalled")
    if state.get("signal_error"):
        fail(state["signal_error"], EXIT_FAILED)


@incident_app.command("disable-tool")
def disable_tool(name: Annotated[str, typer.Argument(help="Tool name, or tier:read|plan|apply|admin")],
                 reason: ReasonOption = None) -> None:
    """Switch an MCP tool, or a whole risk tier (tier:apply), off for every caller."""
    state = run_api("POST", f"/incident/tools/{name}/disable", {"reason": reason})
    out.print(f"disabled tools: {', '.join(state['disabled_tools']) or 'none'}; "
              f"disabled tiers: {', '.join(state['disabled_tiers']) or 'none'}")


@incident_app.command("enable-tool")
def enable_tool(name: str, reason: ReasonOption = None) -> None:
    """Switch an MCP tool back on."""
    state = run_api("POST", f"/incident/tools/{name}/enable", {"reason": reason})
    out.print(f"disabled tools: {', '.join(state['disabled_tools']) or 'none'}")
