"""deploy/ci/deploy.sh against a stand-in kubectl, and deploy/ci/smoke.sh against a local API."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = "ghcr.io/acme/tikflow:3f2c1ab"

# Records every call and the overlay it was asked to apply; fails the call named by FAIL_ON.
FAKE_KUBECTL = """#!/bin/bash
echo "kubectl $*" >> "$KUBECTL_LOG"
case "$*" in
  *"apply -k "*) cat "${@: -1}/kustomization.yaml" >> "$KUBECTL_LOG" 2>/dev/null || true ;;
esac
if [ -n "$FAIL_ON" ] && echo "$*" | grep -q -- "$FAIL_ON"; then exit 1; fi
exit 0
"""


@pytest.fixture
def deploy_tree(tmp_path: Path) -> Path:
    """A copy of the deploy scripts and manifests, so overlays are written under tmp_path."""
    shutil.copytree(REPO / "deploy" / "ci", tmp_path / "deploy" / "ci")
    shutil.copytree(REPO / "deploy" / "kubernetes", tmp_path / "deploy" / "kubernetes")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    return tmp_path


def run_deploy(tree: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run deploy.sh with the fake kubectl first on PATH; return the result and kubectl calls."""
    log = tree / "kubectl.log"
    environment = {
        "PATH": f"{tree / 'bin'}:/usr/bin:/bin",
        "KUBECTL_LOG": str(log),
        **env,
    }
    completed = subprocess.run(
        ["bash", str(tree / "deploy" / "ci" / "deploy.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    lines = log.read_text().splitlines() if log.exists() else []
    return completed, lines


def kubectl_calls(lines: list[str]) -> list[str]:
    return [line.removeprefix("kubectl ") for line in lines if line.startswith("kubectl ")]


def test_deploy_migrates_then_rolls_out(deploy_tree):
    """A release deletes the old Job, applies the pinned overlay, waits, then rolls out."""
    completed, lines = run_deploy(deploy_tree, IMAGE)

    assert completed.returncode == 0, completed.stderr
    calls = kubectl_calls(lines)
    assert calls[0] == "-n tikflow delete job tikflow-migrate --ignore-not-found --wait=true"
    assert calls[1].startswith("apply -k ")
    assert calls[2] == "-n tikflow wait --for=condition=complete job/tikflow-migrate --timeout=15m"
    assert calls[3] == "-n tikflow rollout status deployment/tikflow-api --timeout=10m"
    assert calls[4] == "-n tikflow rollout status deployment/tikflow-worker --timeout=10m"
    assert "    newName: ghcr.io/acme/tikflow" in lines
    assert "    newTag: 3f2c1ab" in lines
    assert "  - ../../deploy/kubernetes" in lines
    assert not any("$patch: delete" in line for line in lines)
    assert not list((deploy_tree / "build").glob("overlay.*")), "the overlay must be removed"


def test_deploy_failed_migration_undoes_rollout(deploy_tree):
    """A migration Job that does not complete rolls both Deployments back and exits 1."""
    completed, lines = run_deploy(deploy_tree, IMAGE, FAIL_ON="wait --for=condition=complete")

    assert completed.returncode == 1
    assert "migration Job did not complete" in completed.stderr
    calls = kubectl_calls(lines)
    assert "-n tikflow rollout undo deployment/tikflow-api" in calls
    assert "-n tikflow rollout undo deployment/tikflow-worker" in calls
    assert not any(call.startswith("-n tikflow rollout status") for call in calls)


def test_deploy_unready_rollout_is_undone(deploy_tree):
    """A Deployment that does not become ready rolls both back and exits 1."""
    completed, lines = run_deploy(
        deploy_tree, IMAGE, FAIL_ON="rollout status deployment/tikflow-worker"
    )

    assert completed.returncode == 1
    assert "tikflow-worker did not become ready" in completed.stderr
    calls = kubectl_calls(lines)
    assert calls[-2:] == [
        "-n tikflow rollout undo deployment/tikflow-api",
        "-n tikflow rollout undo deployment/tikflow-worker",
    ]


def test_deploy_rollback_skips_migration(deploy_tree):
    """TIKFLOW_SKIP_MIGRATION=1 removes the Job from the overlay and does not wait for it."""
    completed, lines = run_deploy(deploy_tree, IMAGE, TIKFLOW_SKIP_MIGRATION="1")

    assert completed.returncode == 0, completed.stderr
    assert "migrations skipped" in completed.stdout
    assert "      $patch: delete" in lines
    assert "        name: tikflow-migrate" in lines
    assert not any("wait --for=condition=complete" in call for call in kubectl_calls(lines))


def test_deploy_rejects_image_without_tag(deploy_tree):
    """An image reference without a tag is rejected before kubectl runs."""
    completed, lines = run_deploy(deploy_tree, "ghcr.io/acme/tikflow")

    assert completed.returncode == 2
    assert "must include a tag" in completed.stderr
    assert kubectl_calls(lines) == []


class FakeApi:
    """A tikflow API stand-in on 127.0.0.1 serving health, version and an MCP 401."""

    def __init__(self, version: str) -> None:
        self.version = version
        api = self

        class Handler(BaseHTTPRequestHandler):
            def reply(self, status: int, document: object) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                routes = {
                    "/healthz": {"status": "ok"},
                    "/readyz": {"ready": True},
                    "/version": {"version": api.version},
                }
                if self.path in routes:
                    self.reply(200, routes[self.path])
                else:
                    self.reply(404, {"detail": "not found"})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.reply(401, {"error": "missing bearer token"})

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    """A running API stand-in reporting version 1.2.3."""
    if shutil.which("curl") is None:
        pytest.fail(
            "curl not found: install the Debian package 'curl' (listed in .ci/debian-packages.txt)"
        )
    api = FakeApi("1.2.3")
    yield api
    api.stop()


def run_smoke(url: str, version: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / "deploy" / "ci" / "smoke.sh"), url, version],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_smoke_passes_on_healthy_api(fake_api):
    """Health, readiness, the expected version and an MCP 401 without a token pass."""
    completed = run_smoke(fake_api.url, "1.2.3")

    assert completed.returncode == 0, completed.stderr
    assert "is healthy, ready and runs 1.2.3" in completed.stdout


def test_smoke_fails_on_wrong_version(fake_api):
    """A deployment running another version fails the smoke test."""
    completed = run_smoke(fake_api.url, "1.2.4")

    assert completed.returncode == 1
    assert "runs version 1.2.3, expected 1.2.4" in completed.stderr
