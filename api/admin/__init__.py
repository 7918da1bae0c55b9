"""The admin API under ``/api/v1``: one module per resource, collected here."""

from __future__ import annotations

from fastapi import APIRouter

from api.admin import audit, devices, enrol, incident, plans, rotation_schedules, snapshots

router = APIRouter(prefix="/api/v1")
router.include_router(plans.router)
router.include_router(devices.router)
router.include_router(snapshots.router)
router.include_router(enrol.router)
router.include_router(rotation_schedules.router)
router.include_router(audit.router)
router.include_router(incident.router)
