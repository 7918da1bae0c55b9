"""The optional periodic update check: logs a newer release and reports it on /version.

It only reports. Upgrading stays with the deployment pipeline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from tikflow.commands.version_cmds import ReleaseCheckError, SemanticVersion, fetch_latest_release
from tikflow.settings import Settings
from tikflow.version import __version__

log = structlog.get_logger(__name__)


@dataclass
class UpdateStatus:
    latest: str | None = None
    url: str | None = None
    update_available: bool = False
    error: str | None = None


async def check_for_updates(settings: Settings, status: UpdateStatus) -> None:
    """Ask the release endpoint every ``updates.check_interval_seconds`` until cancelled."""
    url = settings.updates.release_url
    interval = settings.updates.check_interval_seconds
    if not url or interval <= 0:
        return
    running = SemanticVersion.parse(__version__)
    while True:
        try:
            release = await asyncio.to_thread(fetch_latest_release, url,
                                              settings.updates.timeout_seconds)
            status.latest, status.url, status.error = str(release.version), release.url, None
            status.update_available = running < release.version
            if status.update_available:
                log.warning("newer tikflow release available", running=__version__,
                            latest=status.latest, url=release.url)
        except ReleaseCheckError as err:
            status.error = str(err)
            log.warning("update check failed", error=str(err))
        await asyncio.sleep(interval)
