"""Arguments and results of the DeviceSnapshot workflow and its activities."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class DeviceSnapshotInput(_Frozen):
    """Devices to export: every active device of ``environment``, or the listed ``device_ids``."""

    environment: str | None = None
    device_ids: list[str] = Field(default_factory=list)
    reason: str = "scheduled"
    retention: int | None = Field(None, ge=1, description="Snapshots of this reason kept per "
                                  "device; None uses the worker's snapshots settings")


class SnapshotTargets(_Frozen):
    device_ids: list[str]
    retention: int


class DeviceExportInput(_Frozen):
    device_id: str
    reason: str
    retention: int


class DeviceExportResult(_Frozen):
    device_id: str
    snapshot_id: int
    sha256: str
    pruned: int


class DeviceSnapshotResult(_Frozen):
    """Snapshots stored per device, and the devices whose export failed with the reason."""

    environment: str | None
    stored: list[DeviceExportResult]
    failed: dict[str, str]
