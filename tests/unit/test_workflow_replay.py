"""Recorded PlanApply histories replay on the current workflow code.

The histories in ``tests/histories/`` were recorded from real runs (a failed health gate, a
four-eyes approval, an incident pause), before and after preflight became parallel behind the
``parallel-preflight`` patch, so both branches replay. A change to the workflow that alters the commands it
issues for those runs fails here; such a change must go behind ``workflow.patched``. Record
new ones with ``TIKFLOW_RECORD_HISTORIES=tests/histories pytest tests/e2e/test_rollout.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.plan_apply import PlanApplyWorkflow

HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


def test_recorded_histories_exist():
    """The replay corpus is not empty, so the replay test below cannot pass vacuously."""
    assert len(HISTORIES) >= 3


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path):
    """One recorded history replays on the current PlanApply code."""
    history = WorkflowHistory.from_json(path.stem.replace("_", ":", 1), path.read_text())
    replayer = Replayer(workflows=[PlanApplyWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, str(result.replay_failure)
