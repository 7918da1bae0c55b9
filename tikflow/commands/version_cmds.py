"""``tikflow version`` and ``tikflow check-update``.

``check-update`` only reports: upgrades go through the deployment pipeline, never through the
running service. Its exit codes let scripts and monitoring act on the result: 0 up to date,
10 newer release available, 1 the check failed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import typer
from pydantic import ValidationError

from tikflow.settings import Settings
from tikflow.version import __version__

EXIT_UP_TO_DATE = 0
EXIT_ERROR = 1
EXIT_UPDATE_AVAILABLE = 10

GIT_SHA_VARIABLE = "TIKFLOW_GIT_SHA"
MAX_RELEASE_BYTES = 64 * 1024
_GIT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


class ReleaseCheckError(Exception):
    """The release endpoint could not be asked or returned something unusable."""


@dataclass(frozen=True)
class SemanticVersion:
    """A version following Semantic Versioning 2.0.0, ordered by its precedence rules."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> SemanticVersion:
        """Parse ``1.2.3``, ``v1.2.3``, ``1.2.3-rc.1`` or ``1.2.3+build.5``.

        Raises:
            ValueError: ``text`` is not a semantic version.
        """
        match = _SEMVER.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a semantic version such as 1.2.3 or 1.2.3-rc.1")
        pre = match["pre"]
        return cls(
            major=int(match["major"]),
            minor=int(match["minor"]),
            patch=int(match["patch"]),
            prerelease=tuple(pre.split(".")) if pre else (),
            build=match["build"] or "",
        )

    def precedence_key(self) -> tuple[Any, ...]:
        """Return a sort key: a release sorts after its pre-releases, build metadata is ignored."""
        # Numeric identifiers sort below alphanumeric ones and compare as numbers.
        identifiers = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease
        )
        return (self.major, self.minor, self.patch, not self.prerelease, identifiers)

    def __lt__(self, other: SemanticVersion) -> bool:
        return self.precedence_key() < other.precedence_key()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


@dataclass(frozen=True)
class Release:
    """The newest release as announced by the release endpoint."""

    version: SemanticVersion
    url: str | None


def git_sha() -> str | None:
    """Return the git commit this build came from, or None when it is unknown.

    Container images set ``TIKFLOW_GIT_SHA`` at build time, and a source checkout runs git.
    """
    baked = os.environ.get(GIT_SHA_VARIABLE, "").strip().lower()
    if _GIT_SHA.match(baked):
        return baked
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / ".git").exists():
        return None
    try:
        completed = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = completed.stdout.strip()
    return sha if completed.returncode == 0 and _GIT_SHA.match(sha) else None


def redact_url(url: str) -> str:
    """Drop credentials, query and fragment so a URL can appear in messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def _parse_release(body: bytes, shown_url: str) -> Release:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ReleaseCheckError(f"release endpoint {shown_url} did not return JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("version"), str):
        raise ReleaseCheckError(
            f'release endpoint {shown_url} returned no "version" string; '
            'expected {"version": "x.y.z", "url": ...}'
        )
    try:
        version = SemanticVersion.parse(document["version"][:100])
    except ValueError as exc:
        raise ReleaseCheckError(f"release endpoint {shown_url}: {exc}") from None
    return Release(version=version, url=_release_link(document.get("url")))


def _release_link(value: Any) -> str | None:
    # The link is printed to a terminal, so accept only a plain http(s) URL.
    if not isinstance(value, str) or not value.isprintable() or len(value) > 2000:
        return None
    try:
        scheme = urlsplit(value).scheme
    except ValueError:
        return None
    return value if scheme in ("http", "https") else None


def fetch_latest_release(url: str, timeout: float) -> Release:
    """Ask the release endpoint for the newest release.

    Raises:
        ReleaseCheckError: the URL is not HTTP(S), the request failed or timed out, or the
            response is not the expected JSON document.
    """
    shown_url = redact_url(url)
    if urlsplit(url).scheme not in ("http", "https"):
        raise ReleaseCheckError(f"updates.release_url must be an http or https URL, not {shown_url}")
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5) as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise ReleaseCheckError(
                    f"release endpoint {shown_url} returned HTTP {response.status_code}"
                )
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_RELEASE_BYTES:
                    raise ReleaseCheckError(
                        f"release endpoint {shown_url} returned more than {MAX_RELEASE_BYTES} bytes"
                    )
    except httpx.TimeoutException:
        raise ReleaseCheckError(
            f"release endpoint {shown_url} timed out after {timeout:g} s"
        ) from None
    except httpx.HTTPError as exc:
        raise ReleaseCheckError(
            f"release endpoint {shown_url} failed: {type(exc).__name__}"
        ) from None
    return _parse_release(body, shown_url)


def version(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Print the tikflow version and, when known, the git commit it was built from."""
    sha = git_sha()
    if as_json:
        typer.echo(json.dumps({"version": __version__, "git_sha": sha}))
        return
    typer.echo(f"tikflow {__version__}" + (f" (git {sha[:12]})" if sha else ""))


def check_update(
    url: Annotated[
        str | None,
        typer.Option(help="Release endpoint to ask; defaults to the updates.release_url setting."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Report whether a newer release exists; never installs it.

    Exit codes: 0 up to date, 10 newer release available, 1 the check failed.
    """
    try:
        settings = Settings()
    except (ValidationError, ValueError):
        typer.echo("configuration is invalid; run `tikflow config show` for details", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    release_url = url or settings.updates.release_url
    if not release_url:
        typer.echo(
            "no release endpoint configured; set TIKFLOW_UPDATES__RELEASE_URL or pass --url",
            err=True,
        )
        raise typer.Exit(EXIT_ERROR)

    try:
        latest = fetch_latest_release(release_url, settings.updates.timeout_seconds)
    except ReleaseCheckError as exc:
        typer.echo(f"update check failed: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None

    current = SemanticVersion.parse(__version__)
    newer = current < latest.version
    if as_json:
        report = {"current": str(current), "latest": str(latest.version), "url": latest.url}
        typer.echo(json.dumps({**report, "update_available": newer}))
    elif newer:
        where = f": {latest.url}" if latest.url else ""
        typer.echo(f"tikflow {latest.version} is available (running {current}){where}")
    else:
        typer.echo(f"tikflow {current} is up to date (latest release {latest.version})")
    raise typer.Exit(EXIT_UPDATE_AVAILABLE if newer else EXIT_UP_TO_DATE)


def register(app: typer.Typer) -> None:
    """Add ``version`` and ``check-update`` to the ``tikflow`` command line."""
    app.command("version")(version)
    app.command("check-update")(check_update)
