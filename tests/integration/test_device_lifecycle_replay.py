"""Recorded lifecycle histories still replay against the current workflow code.

The files under ``histories/`` were recorded from real runs: registration that ends active and
one that ends pending, a rotation, a rotation undone by compensation, a decommission, and a
scheduled rotation of an environment. A workflow change that alters the order of commands makes
replay fail here. Such a change needs ``workflow.patched`` so running workflows keep their path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.device_lifecycle import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_lifecycle_histories_cover_every_workflow_type() -> None:
    """There is at least one recorded history per lifecycle workflow type."""
    recorded = {WorkflowHistory.from_json("replay", path.read_text()).events[0]
                .workflow_execution_started_event_attributes.workflow_type.name
                for path in HISTORIES}

    assert recorded == {"DeviceRegister", "CredentialRotate", "DeviceDecommission",
                        "CredentialRotateEnvironment"}


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_lifecycle_history_replays(path: Path) -> None:
    """A recorded history replays without a nondeterminism error."""
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)

    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
