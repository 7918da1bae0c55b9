"""``tikflow version`` and ``tikflow check-update`` against a release endpoint on loopback."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import typer
from typer.testing import CliRunner

from tikflow.commands import version_cmds
from tikflow.commands.version_cmds import SemanticVersion
from tikflow.version import __version__

runner = CliRunner()
cli = typer.Typer()
version_cmds.register(cli)

Responder = Callable[[BaseHTTPRequestHandler], None]


class ReleaseServer:
    """A release endpoint on 127.0.0.1 whose response each test chooses."""

    def __init__(self) -> None:
        self.respond: Responder = lambda handler: None
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.respond(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/release.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def reply(self, body: bytes, status: int = 200) -> None:
        def respond(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        self.respond = respond

    def reply_json(self, document: object) -> None:
        self.reply(json.dumps(document).encode())

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def release_server(monkeypatch) -> Iterator[ReleaseServer]:
    """A running release endpoint configured as updates.release_url."""
    for name in list(os.environ):
        if name.upper().startswith("TIKFLOW_") or name.upper() == "MCP_ENV":
            monkeypatch.delenv(name)
    server = ReleaseServer()
    monkeypatch.setenv("TIKFLOW_UPDATES__RELEASE_URL", server.url)
    monkeypatch.setenv("TIKFLOW_UPDATES__TIMEOUT_SECONDS", "2")
    yield server
    server.stop()


def bump_major(version: str) -> str:
    return f"{SemanticVersion.parse(version).major + 1}.0.0"


def test_check_update_newer_release_exits_10(release_server):
    """A newer release is reported with its link and exit code 10."""
    newer = bump_major(__version__)
    release_server.reply_json({"version": newer, "url": "https://example.invalid/tikflow"})

    result = runner.invoke(cli, ["check-update"])

    assert result.exit_code == 10, result.output
    assert f"tikflow {newer} is available (running {__version__})" in result.output
    assert "https://example.invalid/tikflow" in result.output


def test_check_update_same_release_exits_0(release_server):
    """The running version itself counts as up to date."""
    release_server.reply_json({"version": __version__, "url": None})

    result = runner.invoke(cli, ["check-update"])

    assert result.exit_code == 0, result.output
    assert "is up to date" in result.output


def test_check_update_older_release_exits_0(release_server):
    """An endpoint announcing an older version does not suggest a downgrade."""
    release_server.reply_json({"version": "0.0.1"})

    result = runner.invoke(cli, ["check-update", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "current": __version__,
        "latest": "0.0.1",
        "url": None,
        "update_available": False,
    }


def test_check_update_url_option_overrides_setting(release_server, monkeypatch):
    """--url queries the given endpoint instead of the configured one."""
    monkeypatch.setenv("TIKFLOW_UPDATES__RELEASE_URL", "http://127.0.0.1:9/unused")
    release_server.reply_json({"version": bump_major(__version__)})

    result = runner.invoke(cli, ["check-update", "--url", release_server.url])

    assert result.exit_code == 10, result.output


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"<html>maintenance</html>", 200, "did not return JSON"),
        (b'{"version": "\xff\xfe"}', 200, "did not return JSON"),
        (b'{"name": "tikflow"}', 200, 'returned no "version" string'),
        (b'["1.0.0"]', 200, 'returned no "version" string'),
        (b'{"version": "latest"}', 200, "is not a semantic version"),
        (b'{"error": "boom"}', 500, "returned HTTP 500"),
        (b'{"version": "1.0.0", "pad": "' + b"x" * 70_000 + b'"}', 200, "more than 65536 bytes"),
    ],
)
def test_check_update_bad_response_exits_1(release_server, body, status, message):
    """Unusable responses from the endpoint exit 1 with the reason."""
    release_server.reply(body, status=status)

    result = runner.invoke(cli, ["check-update"])

    assert result.exit_code == 1
    assert message in result.output


def test_check_update_slow_endpoint_times_out(release_server, monkeypatch):
    """An endpoint slower than updates.timeout_seconds fails with exit 1."""
    monkeypatch.setenv("TIKFLOW_UPDATES__TIMEOUT_SECONDS", "0.2")
    release_server.respond = lambda handler: release_server.release.wait(timeout=10)

    result = runner.invoke(cli, ["check-update"])

    assert result.exit_code == 1
    assert "timed out after 0.2 s" in result.output


def test_check_update_refused_connection_exits_1(release_server, monkeypatch):
    """A closed port is reported as a failed request."""
    port = release_server.httpd.server_address[1]
    release_server.stop()

    result = runner.invoke(cli, ["check-update", "--url", f"http://127.0.0.1:{port}/r.json"])

    assert result.exit_code == 1
    assert "failed: ConnectError" in result.output


def test_check_update_hides_url_credentials(release_server):
    """User info and query strings of the endpoint URL never reach the output."""
    release_server.reply(b"not json")
    url = release_server.url.replace("http://", "http://reader:pw-123@") + "?token=tok-456"

    result = runner.invoke(cli, ["check-update", "--url", url])

    assert result.exit_code == 1
    assert "pw-123" not in result.output
    assert "tok-456" not in result.output
    assert release_server.url in result.output


def test_check_update_rejects_non_http_url(release_server):
    """Only http and https endpoints are asked."""
    result = runner.invoke(cli, ["check-update", "--url", "file:///etc/passwd"])

    assert result.exit_code == 1
    assert "must be an http or https URL" in result.output


def test_check_update_without_endpoint_exits_1(release_server, monkeypatch):
    """Without a configured endpoint the error names the setting to set."""
    monkeypatch.delenv("TIKFLOW_UPDATES__RELEASE_URL")

    result = runner.invoke(cli, ["check-update"])

    assert result.exit_code == 1
    assert "TIKFLOW_UPDATES__RELEASE_URL" in result.output


def test_check_update_ignores_unsafe_link(release_server):
    """A release link that is not a printable http(s) URL is left out."""
    release_server.reply_json({"version": bump_major(__version__), "url": "javascript:alert(1)"})

    result = runner.invoke(cli, ["check-update", "--json"])

    assert result.exit_code == 10
    assert json.loads(result.stdout)["url"] is None


def test_version_prints_baked_git_sha(monkeypatch):
    """The image's TIKFLOW_GIT_SHA appears next to the version."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("TIKFLOW_GIT_SHA", sha)

    text = runner.invoke(cli, ["version"])
    as_json = runner.invoke(cli, ["version", "--json"])

    assert text.exit_code == 0
    assert text.stdout.strip() == f"tikflow {__version__} (git 0123456789ab)"
    assert json.loads(as_json.stdout) == {"version": __version__, "git_sha": sha}


def test_version_ignores_malformed_git_sha(monkeypatch):
    """A TIKFLOW_GIT_SHA that is not hexadecimal is not printed."""
    monkeypatch.setenv("TIKFLOW_GIT_SHA", "$(rm -rf /)")

    result = runner.invoke(cli, ["version", "--json"])

    assert "rm -rf" not in result.output
    assert json.loads(result.stdout)["version"] == __version__


def test_semantic_version_precedence_order():
    """Versions sort by the precedence rules of Semantic Versioning 2.0.0."""
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.2.0",
        "2.0.0",
        "10.0.0",
    ]
    parsed = [SemanticVersion.parse(text) for text in ordered]

    assert sorted(reversed(parsed)) == parsed
    for lower, higher in zip(parsed, parsed[1:], strict=False):
        assert lower < higher


def test_semantic_version_ignores_build_metadata():
    """Build metadata and a leading v do not change precedence."""
    plain = SemanticVersion.parse("1.4.2")
    tagged = SemanticVersion.parse("v1.4.2+build.7")

    assert not plain < tagged
    assert not tagged < plain
    assert str(tagged) == "1.4.2+build.7"


@pytest.mark.parametrize("text", ["1.2", "01.2.3", "1.2.3-", "1.2.3-a..b", "one.two.three", ""])
def test_semantic_version_rejects_malformed(text):
    """Strings that are not semantic versions raise ValueError."""
    with pytest.raises(ValueError, match="not a semantic version"):
        SemanticVersion.parse(text)
