"""Static checks of the deployment files: compose, Dockerfile, systemd units, Kubernetes, CI."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tikflow.configinfo.sources import ConfigInvalidError, effective_settings, ignored_keys
from tikflow.configinfo.validation import check_file

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = REPO / "tests" / "data" / "compose-spec.json"
WORKFLOW_SCHEMA = REPO / "tests" / "data" / "github-workflow.json"
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
SYSTEMD_DIR = REPO / "deploy" / "systemd"
KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
INSTALLED_TIKFLOW = "/opt/tikflow/venv/bin/tikflow"
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|MASTER_KEY|PRIVATE_KEY|CREDENTIAL", re.I)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# ------------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed docker-compose.yml."""
    return load_yaml(COMPOSE_FILE)


def schema_errors(schema_file: Path, document: Any) -> list[str]:
    """Validate a document against a vendored JSON schema, using the draft the schema names."""
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def compose_schema_errors(document: Any) -> list[str]:
    return schema_errors(COMPOSE_SCHEMA, document)


def test_compose_matches_compose_spec_schema(compose):
    """docker-compose.yml is valid against the Compose Specification schema."""
    assert compose_schema_errors(compose) == []


def test_compose_schema_rejects_unknown_keys(compose):
    """The schema check fails on a misspelt service key, so it can catch mistakes."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["helthcheck"] = {"test": ["CMD", "true"]}

    errors = compose_schema_errors(broken)

    assert any(error.startswith("services/api") for error in errors)


def test_compose_defines_the_stack(compose):
    """All services of the stack are present, and cloudflared only under the tunnel profile."""
    services = compose["services"]

    assert set(services) == {
        "postgres", "temporal", "temporal-ui", "migrate", "api", "worker", "cloudflared",
    }
    assert services["cloudflared"]["profiles"] == ["tunnel"]
    for name, service in services.items():
        if name != "cloudflared":
            assert "profiles" not in service, f"{name} should start without a profile"


@pytest.mark.parametrize("name", ["postgres", "temporal", "api"])
def test_compose_long_running_services_have_healthchecks(compose, name):
    """Services others depend on declare a healthcheck command."""
    healthcheck = compose["services"][name]["healthcheck"]

    assert healthcheck.get("disable") is not True
    assert healthcheck["test"][0] in ("CMD", "CMD-SHELL")


def test_compose_api_healthcheck_uses_healthz(compose):
    """The api's container healthcheck probes /healthz."""
    assert any("/healthz" in part for part in compose["services"]["api"]["healthcheck"]["test"])


def test_compose_migrate_gates_api_and_worker(compose):
    """api and worker start only after the one-shot migration succeeded."""
    services = compose["services"]

    assert services["migrate"]["command"] == ["migrate", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_compose_postgres_keeps_data_in_volume(compose):
    """PostgreSQL stores its data in a named volume."""
    mounts = compose["services"]["postgres"]["volumes"]

    assert "postgres-data:/var/lib/postgresql/data" in mounts
    assert "postgres-data" in compose["volumes"]


def test_compose_cloudflared_targets_api_origin_port(compose):
    """cloudflared forwards to the api service on tikflow's configured origin port."""
    command = compose["services"]["cloudflared"]["command"]
    settings_file = load_yaml(REPO / "deploy" / "compose" / "tikflow.yaml")
    origin_port = settings_file["tunnel"]["origin_port"]
    api_port = int(compose["services"]["api"]["ports"][0].rsplit(":", 1)[1])

    url = command[command.index("--url") + 1]
    assert url == f"http://api:{origin_port}"
    assert api_port == origin_port


def test_compose_secrets_come_from_files(compose):
    """Secrets are compose file secrets, and no environment entry carries a secret value."""
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, f"secret {name} must be a file reference"
        assert secret["file"].startswith("./secrets/"), name

    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        for key, value in environment.items():
            if SECRET_NAME.search(key) and not key.endswith(("_FILE", "_USER")):
                pytest.fail(f"{name}: {key}={value!r} puts a secret in the environment")
            if key.endswith("_FILE"):
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}"


def test_compose_tikflow_containers_are_locked_down(compose):
    """tikflow containers run read-only, without capabilities or privilege escalation."""
    for name in ("migrate", "api", "worker"):
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_compose_settings_file_is_valid():
    """The settings file mounted into the containers passes `tikflow config check`."""
    assert check_file(REPO / "deploy" / "compose" / "tikflow.yaml") == []


@dataclass(frozen=True)
class ComposeCliResult:
    """Outcome of `docker compose config -q`: whether the client could run it, and its verdict."""

    available: bool
    ok: bool
    output: str


def run_compose_cli(compose_file: Path, docker: str = "docker") -> ComposeCliResult:
    """Validate with `docker compose config -q` when the client and its compose plugin exist.

    The command parses and interpolates the file without contacting a Docker engine. Where the
    client or the plugin is missing, the result is unavailable and only the schema check runs.
    """
    executable = shutil.which(docker)
    if executable is None:
        return ComposeCliResult(available=False, ok=False, output=f"{docker} not found")
    probe = subprocess.run(
        [executable, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        return ComposeCliResult(available=False, ok=False, output=probe.stderr.strip())
    completed = subprocess.run(
        [executable, "compose", "-f", str(compose_file), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=compose_file.parent,
    )
    output = (completed.stdout + completed.stderr).strip()
    return ComposeCliResult(available=True, ok=completed.returncode == 0, output=output)


def fake_docker(directory: Path, compose_exit: int | None, config_exit: int = 0) -> str:
    """Write a stand-in `docker` client; compose_exit None means it has no compose plugin."""
    script = directory / "docker"
    if compose_exit is None:
        body = 'echo "docker: unknown command: docker $1" >&2; exit 1'
    else:
        body = (
            'if [ "$2" = version ]; then echo "Docker Compose version v2.29.0"; exit 0; fi\n'
            f'echo "services.api Additional property helthcheck is not allowed" >&2; exit {config_exit}'
        )
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_compose_cli_check_when_available():
    """Where `docker compose` exists it accepts the file; elsewhere it reports unavailable."""
    result = run_compose_cli(COMPOSE_FILE)

    if result.available:
        assert result.ok, result.output
    else:
        assert result.output


def test_compose_cli_check_falls_back_without_plugin(tmp_path):
    """A docker client without the compose plugin yields an unavailable result."""
    result = run_compose_cli(COMPOSE_FILE, docker=fake_docker(tmp_path, compose_exit=None))

    assert result.available is False
    assert "unknown command" in result.output


def test_compose_cli_check_reports_invalid_file(tmp_path):
    """A compose plugin that rejects the file yields a failed result with its message."""
    result = run_compose_cli(COMPOSE_FILE, docker=fake_docker(tmp_path, compose_exit=0, config_exit=1))

    assert result.available is True
    assert result.ok is False
    assert "helthcheck" in result.output


def test_compose_cli_check_accepts_valid_file(tmp_path):
    """A compose plugin that accepts the file yields an ok result."""
    result = run_compose_cli(COMPOSE_FILE, docker=fake_docker(tmp_path, compose_exit=0))

    assert result.available is True
    assert result.ok is True


def check_environment(variables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Load settings from exactly these TIKFLOW_* variables; return problems and ignored keys.

    ``*_FILE`` variables are left out because their files exist only in the deployment.
    """
    for name in list(os.environ):
        if name.upper().startswith("TIKFLOW_") or name.upper() == "MCP_ENV":
            monkeypatch.delenv(name)
    for name, value in variables.items():
        if name.startswith("TIKFLOW_") and not name.endswith("_FILE"):
            monkeypatch.setenv(name, str(value))
    try:
        effective_settings()
        return ignored_keys()
    except ConfigInvalidError as exc:
        return exc.problems


def test_compose_environment_is_valid_settings(compose, monkeypatch):
    """The tikflow variables in docker-compose.yml, with the mounted config file, are valid."""
    service = compose["x-tikflow-service"]
    mounts = dict(volume.split(":")[1::-1] for volume in service["volumes"])
    environment = {
        # Compose substitutes ${NAME:-default}; without NAME set the default applies.
        name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
        for name, value in service["environment"].items()
    }
    environment["TIKFLOW_CONFIG"] = str(REPO / mounts[environment["TIKFLOW_CONFIG"]])

    assert environment["TIKFLOW_ENV"] == "staging"
    assert check_environment(environment, monkeypatch) == []


def test_environment_check_reports_unknown_variable(monkeypatch):
    """A misspelt nested variable is reported, so the environment checks can fail."""
    problems = check_environment({"TIKFLOW_API__PROT": "8080"}, monkeypatch)

    assert problems == [
        "env: api.prot: unknown key; allowed here: host, port, public_url; did you mean 'port'?"
    ]


# ---------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs of the Dockerfile with continuations joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def test_dockerfile_is_multistage_on_python_slim():
    """The image builds in one stage and runs from a clean python:3.11-slim stage."""
    instructions = dockerfile_instructions()
    stages = [arguments for keyword, arguments in instructions if keyword == "FROM"]

    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in instructions
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    assert any(k == "COPY" and a.startswith("--from=build ") for k, a in instructions)


def test_dockerfile_runs_as_non_root_with_entrypoint():
    """The runtime user is unprivileged and the entrypoint is the tikflow command."""
    instructions = dockerfile_instructions()
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]

    assert users, "the image must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("0", "root")
    assert ("ENTRYPOINT", '["tikflow"]') in instructions


def test_dockerfile_labels_and_healthcheck():
    """GIT_SHA and VERSION become OCI labels, and HEALTHCHECK probes /healthz."""
    instructions = dockerfile_instructions()
    labels = " ".join(arguments for keyword, arguments in instructions if keyword == "LABEL")
    healthchecks = [arguments for keyword, arguments in instructions if keyword == "HEALTHCHECK"]

    assert ("ARG", "GIT_SHA=unknown") in instructions
    assert ("ARG", "VERSION=0.0.0") in instructions
    assert 'org.opencontainers.image.revision="${GIT_SHA}"' in labels
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert len(healthchecks) == 1
    assert "/healthz" in healthchecks[0]


def dockerignored(relative: str) -> bool:
    """Tell whether .dockerignore keeps a top-level path out of the build context."""
    patterns = [
        line.strip().removeprefix("**/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)


def test_docker_context_keeps_what_pip_install_needs():
    """The build context keeps pyproject.toml, the README and every packaged top-level folder."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [
        path.name
        for path in REPO.iterdir()
        if (path / "__init__.py").exists() and any(fnmatch.fnmatch(path.name, i) for i in includes)
    ]

    assert "tikflow" in packages
    for name in ["pyproject.toml", pyproject["project"]["readme"], *packages]:
        assert (REPO / name).exists(), name
        assert not dockerignored(name), f".dockerignore drops {name}, which the image build needs"


def test_dockerignore_keeps_secrets_and_tooling_out():
    """The build context excludes git data, local environments, secrets and tests."""
    ignored = set((REPO / ".dockerignore").read_text().split())

    assert {".git", ".venv", "secrets", "tests", "var"} <= ignored


# ------------------------------------------------------------------------------- systemd


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Parse a unit file into sections of (key, value) pairs, keeping repeated keys."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], [])
            continue
        key, _, value = stripped.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def systemd_verify(unit_files: list[Path], workdir: Path) -> list[str]:
    """Run `systemd-analyze verify` on copies of the units and return its diagnostics.

    The copies point ExecStart at a stub executable, because verify rejects commands that do
    not exist on this machine. Diagnostics about other units of the host are dropped.
    """
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail(
            "systemd-analyze not found: install the Debian package 'systemd' "
            "(listed in .ci/debian-packages.txt, installed by `make test` when run as root)"
        )
    stub = workdir / "tikflow"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    copies = []
    for unit_file in unit_files:
        copy = workdir / unit_file.name
        copy.write_text(unit_file.read_text().replace(INSTALLED_TIKFLOW, str(stub)))
        copies.append(copy)

    completed = subprocess.run(
        [tool, "verify", "--man=no", *map(str, copies)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=workdir,
    )
    names = [copy.name for copy in copies]
    diagnostics = [
        line
        for line in (completed.stdout + completed.stderr).splitlines()
        if str(workdir) in line or any(name in line for name in names)
    ]
    if completed.returncode != 0:
        diagnostics.append(f"systemd-analyze exited {completed.returncode}")
    return diagnostics


def test_systemd_units_pass_verify(tmp_path):
    """systemd-analyze verify reports nothing about the shipped units."""
    units = sorted(SYSTEMD_DIR.glob("*.service"))

    assert [unit.name for unit in units] == [
        "tikflow-api.service", "tikflow-migrate.service", "tikflow-worker.service",
    ]
    assert systemd_verify(units, tmp_path) == []


def test_systemd_verify_catches_bad_directive(tmp_path):
    """The verify check reports a misspelt directive, so it can fail."""
    broken = tmp_path / "source" / "tikflow-api.service"
    broken.parent.mkdir()
    broken.write_text((SYSTEMD_DIR / "tikflow-api.service").read_text() + "\n[Service]\nRestrt=always\n")
    migrate = SYSTEMD_DIR / "tikflow-migrate.service"
    workdir = tmp_path / "verify"
    workdir.mkdir()

    diagnostics = systemd_verify([broken, migrate], workdir)

    assert any("Restrt" in line for line in diagnostics)


@pytest.mark.parametrize(("name", "command"), [("api", "api"), ("worker", "worker")])
def test_systemd_service_units_notify_and_restart(name, command):
    """api and worker units use sd_notify with a watchdog and restart on failure."""
    unit = parse_unit(SYSTEMD_DIR / f"tikflow-{name}.service")

    assert unit_values(unit, "Service", "Type") == ["notify"]
    assert unit_values(unit, "Service", "WatchdogSec")
    assert unit_values(unit, "Service", "Restart") == ["on-failure"]
    assert unit_values(unit, "Service", "ExecStart") == [f"{INSTALLED_TIKFLOW} {command}"]
    assert unit_values(unit, "Service", "StandardOutput") == ["journal"]
    assert "tikflow-migrate.service" in unit_values(unit, "Unit", "Requires")
    assert unit_values(unit, "Install", "WantedBy") == ["multi-user.target"]


def test_systemd_env_example_is_valid_settings(monkeypatch):
    """The example environment file for the units sets only known, valid settings."""
    lines = (SYSTEMD_DIR / "tikflow.env.example").read_text().splitlines()
    variables = dict(
        line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")
    )

    assert variables
    assert check_environment(variables, monkeypatch) == []


def test_systemd_migrate_unit_is_oneshot():
    """The migration unit runs `tikflow migrate upgrade` once."""
    unit = parse_unit(SYSTEMD_DIR / "tikflow-migrate.service")

    assert unit_values(unit, "Service", "Type") == ["oneshot"]
    assert unit_values(unit, "Service", "ExecStart") == [f"{INSTALLED_TIKFLOW} migrate upgrade"]


@pytest.mark.parametrize("name", ["api", "worker", "migrate"])
def test_systemd_units_are_hardened(name):
    """Every unit runs unprivileged with a read-only system and its own state directory."""
    unit = parse_unit(SYSTEMD_DIR / f"tikflow-{name}.service")
    required = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "tikflow",
        "User": "tikflow",
        "EnvironmentFile": "/etc/tikflow/tikflow.env",
        "CapabilityBoundingSet": "",
    }

    for key, value in required.items():
        assert unit_values(unit, "Service", key) == [value], key


@pytest.mark.parametrize("name", ["api", "worker", "migrate"])
def test_systemd_secrets_are_credentials(name):
    """Secrets reach the units as credential files, never as environment values."""
    unit = parse_unit(SYSTEMD_DIR / f"tikflow-{name}.service")

    assert unit_values(unit, "Service", "LoadCredential")
    for assignment in unit_values(unit, "Service", "Environment"):
        key, _, value = assignment.partition("=")
        if SECRET_NAME.search(key):
            assert key.endswith("_FILE"), assignment
            assert value.startswith("%d/"), assignment


# ---------------------------------------------------------------------------- Kubernetes


def kubernetes_manifests() -> list[Path]:
    return sorted(p for p in KUBERNETES_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def kubernetes_errors(document: dict[str, Any]) -> list[str]:
    """Validate one resource strictly against the Kubernetes schema; return the errors."""
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(part) for part in exc.path)
        return [f"{document.get('kind')}/{path}: {exc.message}"]
    return []


@pytest.mark.parametrize("path", kubernetes_manifests(), ids=lambda p: p.name)
def test_kubernetes_manifest_is_valid(path):
    """Each manifest validates strictly against the Kubernetes API schema."""
    documents = load_yaml_documents(path)

    assert documents
    for document in documents:
        assert kubernetes_errors(document) == []


def test_kubernetes_strict_validation_rejects_unknown_field():
    """Strict validation reports a misspelt field, so the check can fail."""
    deployment = load_yaml(KUBERNETES_DIR / "api-deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}

    assert kubernetes_errors(deployment)


def test_kustomization_lists_every_manifest():
    """kustomization.yaml includes every manifest in the folder and nothing else."""
    kustomization = load_yaml(KUBERNETES_DIR / "kustomization.yaml")

    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [p.name for p in kubernetes_manifests()]
    assert kustomization["images"][0]["name"] == "tikflow"


def kubernetes_pod_specs() -> dict[str, dict[str, Any]]:
    specs = {}
    for path in kubernetes_manifests():
        for document in load_yaml_documents(path):
            if document["kind"] in ("Deployment", "Job"):
                specs[document["metadata"]["name"]] = document["spec"]["template"]["spec"]
    return specs


def test_kubernetes_workloads_present():
    """api and worker Deployments and the migration Job exist."""
    assert set(kubernetes_pod_specs()) == {"tikflow-api", "tikflow-worker", "tikflow-migrate"}


@pytest.mark.parametrize("name", ["tikflow-api", "tikflow-worker", "tikflow-migrate"])
def test_kubernetes_pods_are_locked_down(name):
    """Pods meet the restricted Pod Security Standard, read-only and with resource limits."""
    pod = kubernetes_pod_specs()[name]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]["memory"]


def test_kubernetes_api_probes_health_endpoints():
    """The api's liveness probe uses /healthz and its readiness probe /readyz."""
    container = kubernetes_pod_specs()["tikflow-api"]["containers"][0]

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_kubernetes_worker_has_no_http_probes():
    """The worker serves no HTTP yet, so it declares no HTTP probes that would always fail."""
    container = kubernetes_pod_specs()["tikflow-worker"]["containers"][0]

    assert "livenessProbe" not in container
    assert "readinessProbe" not in container


@pytest.mark.parametrize("name", ["tikflow-api", "tikflow-worker", "tikflow-migrate"])
def test_kubernetes_environment_is_valid_settings(name, monkeypatch):
    """The ConfigMap plus each container's env form known, valid settings."""
    configmap = load_yaml(KUBERNETES_DIR / "configmap.yaml")
    container = kubernetes_pod_specs()[name]["containers"][0]
    variables = dict(configmap["data"])
    variables.update({item["name"]: item["value"] for item in container.get("env", [])})

    assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    assert check_environment(variables, monkeypatch) == []


def test_kubernetes_has_no_secret_values():
    """Manifests reference the Secret by name and never contain secret data."""
    for path in kubernetes_manifests():
        for document in load_yaml_documents(path):
            assert document["kind"] != "Secret", path.name
            if document["kind"] == "ConfigMap":
                for key in document["data"]:
                    assert not SECRET_NAME.search(key), f"{path.name}: {key}"
    for name, pod in kubernetes_pod_specs().items():
        for container in pod["containers"]:
            for variable in container.get("env", []):
                if SECRET_NAME.search(variable["name"]):
                    assert variable["name"].endswith("_FILE"), f"{name}: {variable['name']}"
                    assert variable["value"].startswith("/run/secrets/"), name
        secret_volumes = [v for v in pod["volumes"] if "secret" in v]
        assert [v["secret"]["secretName"] for v in secret_volumes] == ["tikflow-secrets"], name


# ------------------------------------------------------------------------------------ CI


def load_workflow(path: Path) -> dict[str, Any]:
    """Parse a workflow file; PyYAML reads the `on` key as True, so it is renamed back."""
    workflow = load_yaml(path)
    workflow["on"] = workflow.pop(True)
    return workflow


@pytest.fixture(scope="module")
def ci_workflow() -> dict[str, Any]:
    """The parsed CI workflow."""
    return load_workflow(REPO / ".github" / "workflows" / "ci.yml")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_ci_workflow_matches_schema(path):
    """Each GitHub Actions workflow is valid against the SchemaStore workflow schema."""
    assert schema_errors(WORKFLOW_SCHEMA, load_workflow(path)) == []


def test_ci_workflow_schema_rejects_unknown_keys(ci_workflow):
    """The workflow schema check fails on a misspelt job key, so it can catch mistakes."""
    broken = json.loads(json.dumps(ci_workflow))
    broken["jobs"]["lint"]["runs_on"] = "ubuntu-24.04"

    assert schema_errors(WORKFLOW_SCHEMA, broken)


def job_commands(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_ci_runs_lint_and_make_test(ci_workflow):
    """Lint and the full suite run on pushes and pull requests."""
    jobs = ci_workflow["jobs"]

    assert "pull_request" in ci_workflow["on"]
    assert "make lint" in job_commands(jobs["lint"])
    assert "make test" in job_commands(jobs["test"])


def test_ci_builds_image_tagged_with_sha_and_version(ci_workflow):
    """The image is built after the tests and tagged with the git SHA and the version."""
    build = ci_workflow["jobs"]["build"]
    push_step = next(step for step in build["steps"] if "build-push-action" in step.get("uses", ""))

    assert set(build["needs"]) == {"lint", "test"}
    assert "${{ github.sha }}" in push_step["with"]["tags"]
    assert "steps.meta.outputs.version" in push_step["with"]["tags"]
    assert "GIT_SHA=${{ github.sha }}" in push_step["with"]["build-args"]


def test_ci_promotes_lab_staging_production(ci_workflow):
    """Releases go lab (smoke test), then staging, then production, each in its environment."""
    jobs = ci_workflow["jobs"]
    chain = [("smoke-lab", "lab", "build"), ("deploy-staging", "staging", "smoke-lab"),
             ("deploy-production", "production", "deploy-staging")]

    for job_name, environment, previous in chain:
        job = jobs[job_name]
        assert job["environment"]["name"] == environment, job_name
        assert previous in job["needs"], job_name
        assert "deploy/ci/deploy.sh" in job_commands(job), job_name
        assert "deploy/ci/smoke.sh" in job_commands(job), job_name


def test_ci_scripts_exist_and_are_executable():
    """The deploy and smoke scripts the pipeline calls are executable."""
    for name in ("deploy.sh", "smoke.sh"):
        script = REPO / "deploy" / "ci" / name
        assert script.stat().st_mode & 0o111, name
        completed = subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30)
        assert completed.returncode == 0, completed.stderr
