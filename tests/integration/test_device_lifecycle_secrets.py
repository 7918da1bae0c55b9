"""No router secret reaches logs, API responses, audit rows or workflow histories."""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from storage.models import AuditEvent, Snapshot
from tests.support.lifecycle import Stack, lifecycle_stack


async def responses_text(stack: Stack, device_id: str) -> str:
    texts = []
    for path in ("/api/v1/devices", f"/api/v1/devices/{device_id}",
                 f"/api/v1/devices/{device_id}/operations"):
        response = await stack.http.get(path)
        assert response.status_code == 200
        texts.append(response.text)
    return "\n".join(texts)


async def histories_text(stack: Stack, device_id: str) -> str:
    operations = (await stack.http.get(f"/api/v1/devices/{device_id}/operations")).json()["items"]
    texts = []
    for operation in operations:
        history = await stack.temporal.get_workflow_handle(operation["workflow_id"]).fetch_history()
        texts.append(history.to_json())
    assert texts
    return "\n".join(texts)


async def audit_text(stack: Stack) -> str:
    async with stack.db.session() as session:
        events = (await session.scalars(select(AuditEvent))).all()
    assert events
    return "\n".join(json.dumps({"arguments": e.arguments, "detail": e.detail, "action": e.action})
                     for e in events)


async def test_lifecycle_keeps_secrets_out_of_every_record(
    database_url: str, temporal_server, tmp_path, caplog, capfd,
) -> None:
    """After register, two rotations, a failed login and decommission, no secret appears anywhere."""
    caplog.set_level(logging.DEBUG)
    async with lifecycle_stack(database_url, temporal_server.address, tmp_path) as stack:
        secrets = {stack.fleet.service_password, stack.fleet.admin_password, stack.master_key}
        started = await stack.register("sec-1")
        device_id = started["device_id"]
        await stack.wait(device_id, started["workflow_id"])
        failed = await stack.register("sec-2", device="r2", password="wrong-but-secret-pw")
        await stack.wait(failed["device_id"], failed["workflow_id"])
        secrets.add("wrong-but-secret-pw")

        state = stack.fleet.device("r1").state
        for policy in ("same-user", "new-user"):
            rotation = (await stack.http.post(f"/api/v1/devices/{device_id}/rotate-credentials",
                                              json={"policy": policy})).json()
            result = await stack.wait(device_id, rotation["workflow_id"])
            assert result["status"] == "rotated"
            secrets.update(state.passwords[name] for name in ("tikflow", "tikflow-g3")
                           if name in state.passwords)
        decommission = (await stack.http.post(f"/api/v1/devices/{device_id}/decommission")).json()
        await stack.wait(device_id, decommission["workflow_id"])

        records = {
            "api responses": await responses_text(stack, device_id)
            + await responses_text(stack, failed["device_id"]),
            "workflow histories": await histories_text(stack, device_id)
            + await histories_text(stack, failed["device_id"]),
            "audit events": await audit_text(stack),
        }
        async with stack.db.session() as session:
            exports = (await session.scalars(select(Snapshot.export_text))).all()
        records["snapshots"] = "\n".join(text or "" for text in exports)

    captured = capfd.readouterr()
    records["logs"] = caplog.text + captured.out + captured.err
    assert len(secrets) >= 5
    for where, text in records.items():
        assert text, where
        for secret in secrets:
            assert secret not in text, f"a secret appears in the {where}"
