"""``tikflow config show`` and ``tikflow config check``: sources, masking and error messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tikflow.commands import config
from tikflow.configinfo import masking, reference
from tikflow.settings import Settings

SECRET = "s3cr3t-never-printed"
runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Remove every tikflow variable of the surrounding shell so each test sets its own."""
    for name in list(os.environ):
        if name.upper().startswith("TIKFLOW_") or name.upper() == "MCP_ENV":
            monkeypatch.delenv(name)


def show_json() -> dict:
    result = runner.invoke(config.app, ["show", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_show_names_each_source(tmp_path, monkeypatch):
    """Each value is attributed to env, secret file, config file, profile default or default."""
    config_file = write(tmp_path / "tikflow.yaml", "api:\n  port: 9000\n")
    key_file = write(tmp_path / "master_key", SECRET + "\n")
    monkeypatch.setenv("TIKFLOW_CONFIG", str(config_file))
    monkeypatch.setenv("TIKFLOW_MASTER_KEY_FILE", str(key_file))
    monkeypatch.setenv("TIKFLOW_TEMPORAL__ADDRESS", "temporal:7233")
    monkeypatch.setenv("MCP_ENV", "staging")

    displayed = show_json()

    assert displayed["temporal.address"] == {
        "value": "temporal:7233",
        "source": "env",
        "origin": "TIKFLOW_TEMPORAL__ADDRESS",
    }
    assert displayed["env"] == {"value": "staging", "source": "env", "origin": "MCP_ENV"}
    assert displayed["master_key"]["source"] == "secret file"
    assert displayed["master_key"]["origin"] == "TIKFLOW_MASTER_KEY_FILE"
    assert displayed["api.port"] == {"value": 9000, "source": "config file", "origin": str(config_file)}
    assert displayed["plans.require_approval"] == {
        "value": True,
        "source": "profile default",
        "origin": "staging",
    }
    assert displayed["routeros.retries"]["source"] == "default"


def test_config_show_env_beats_config_file(tmp_path, monkeypatch):
    """An environment variable overrides the same key in the config file."""
    monkeypatch.setenv("TIKFLOW_CONFIG", str(write(tmp_path / "c.json", '{"api": {"port": 9000}}')))
    monkeypatch.setenv("TIKFLOW_API__PORT", "9100")

    displayed = show_json()

    assert displayed["api.port"]["value"] == 9100
    assert displayed["api.port"]["source"] == "env"


def test_config_show_masks_secrets(tmp_path, monkeypatch):
    """Secrets from env, secret files and URL passwords appear only as a mask."""
    monkeypatch.setenv("TIKFLOW_DEV_TOKEN", SECRET)
    monkeypatch.setenv("TIKFLOW_OIDC_CLIENT_SECRET_FILE", str(write(tmp_path / "cs", SECRET)))
    monkeypatch.setenv("TIKFLOW_DATABASE__URL", f"postgresql+asyncpg://tikflow:{SECRET}@db/tikflow")

    for arguments in (["show"], ["show", "--json"]):
        result = runner.invoke(config.app, arguments)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
    displayed = show_json()
    assert displayed["dev_token"]["value"] == masking.MASK
    assert displayed["oidc.client_secret"]["value"] == masking.MASK
    assert displayed["database.url"]["value"] == f"postgresql+asyncpg://tikflow:{masking.MASK}@db/tikflow"


def test_config_show_masks_password_file_in_url(tmp_path, monkeypatch):
    """A database password from a mounted file is merged into the URL but displayed masked."""
    monkeypatch.setenv("TIKFLOW_DATABASE__URL", "postgresql+asyncpg://tikflow@db:5432/tikflow")
    monkeypatch.setenv("TIKFLOW_DATABASE_PASSWORD_FILE", str(write(tmp_path / "pw", SECRET)))

    result = runner.invoke(config.app, ["show", "--json"])

    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    displayed = json.loads(result.stdout)
    assert displayed["database.url"]["value"] == f"postgresql+asyncpg://tikflow:{masking.MASK}@db:5432/tikflow"
    assert displayed["database.password"]["source"] == "secret file"


def test_config_show_table_lists_every_key(monkeypatch):
    """The plain table has one line per setting with its source at the end."""
    monkeypatch.setenv("TIKFLOW_LOGGING__LEVEL", "DEBUG")

    result = runner.invoke(config.app, ["show"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(show_json())
    level_line = next(line for line in lines if line.startswith("logging.level "))
    assert level_line.endswith("env (TIKFLOW_LOGGING__LEVEL)")


def test_config_show_invalid_env_exits_2(monkeypatch):
    """An invalid environment value exits 2 and names the key and the allowed range."""
    monkeypatch.setenv("TIKFLOW_API__PORT", "70000")

    result = runner.invoke(config.app, ["show"])

    assert result.exit_code == 2
    assert "api.port: Input should be less than or equal to 65535" in result.output


def test_config_show_rejected_secret_not_echoed(monkeypatch):
    """A secret rejected by the profile rules is named but never printed."""
    monkeypatch.setenv("TIKFLOW_ENV", "prod")
    monkeypatch.setenv("TIKFLOW_DEV_TOKEN", SECRET)

    result = runner.invoke(config.app, ["show"])

    assert result.exit_code == 2
    assert SECRET not in result.output
    assert "dev_token is only accepted in the lab profile" in result.output


def test_config_show_warns_about_ignored_keys(tmp_path, monkeypatch):
    """Unknown nested keys from env or the config file are named on stderr, not applied."""
    monkeypatch.setenv("TIKFLOW_ROUTEROS__TIMEOUT", "5")
    monkeypatch.setenv("TIKFLOW_CONFIG", str(write(tmp_path / "c.yaml", "api:\n  prot: 9000\n")))

    result = runner.invoke(config.app, ["show", "--json"])

    assert result.exit_code == 0, result.output
    assert "warning: ignored env: routeros.timeout: unknown key" in result.stderr
    assert "warning: ignored config file: api.prot: unknown key" in result.stderr
    assert "did you mean 'port'?" in result.stderr
    assert json.loads(result.stdout)["api.port"]["source"] == "default"


def test_config_show_rejects_secret_in_config_file(tmp_path, monkeypatch):
    """A config file holding a secret stops `config show` with the key named, not the value."""
    monkeypatch.setenv("TIKFLOW_CONFIG", str(write(tmp_path / "c.yaml", f"master_key: {SECRET}\n")))

    result = runner.invoke(config.app, ["show"])

    assert result.exit_code == 2
    assert SECRET not in result.output
    assert "contains the secret master_key" in result.output


def test_config_show_unreadable_secret_file_exits_2(tmp_path, monkeypatch):
    """A *_FILE variable naming a missing file is reported with the variable name."""
    monkeypatch.setenv("TIKFLOW_MASTER_KEY_FILE", str(tmp_path / "absent"))

    result = runner.invoke(config.app, ["show"])

    assert result.exit_code == 2
    assert "TIKFLOW_MASTER_KEY_FILE" in result.output


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("ok.yaml", "env: prod\napi:\n  port: 9000\ndisabled_tools: [firewall.apply.v1]\n"),
        ("ok.toml", 'env = "staging"\n[routeros]\nretries = 3\n'),
        ("ok.json", '{"temporal": {"address": "temporal:7233"}}'),
    ],
)
def test_config_check_valid_file_exits_0(tmp_path, name, text):
    """A valid YAML, TOML or JSON file passes with exit code 0."""
    result = runner.invoke(config.app, ["check", str(write(tmp_path / name, text))])

    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_config_check_names_each_wrong_key(tmp_path):
    """Every invalid key is listed with its value and what is allowed."""
    path = write(
        tmp_path / "bad.yaml",
        "env: test\napi:\n  port: 0\nlogging:\n  format: xml\nrouteros:\n  retires: 3\nbogus: 1\n",
    )

    result = runner.invoke(config.app, ["check", str(path)])

    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: 5 problem(s)"
    assert "  env = \"test\": Input should be 'lab', 'staging' or 'prod'" in lines
    assert "  api.port = 0: Input should be greater than or equal to 1" in lines
    assert any(line.startswith('  logging.format = "xml": ') for line in lines)
    assert any(line.startswith("  bogus: unknown key; allowed here: api, ") for line in lines)
    assert any(
        line.startswith("  routeros.retires: unknown key") and "did you mean 'retries'?" in line
        for line in lines
    )


def test_config_check_rejects_secret_without_echo(tmp_path):
    """A secret stored in the file fails the check and is not printed."""
    path = write(tmp_path / "secret.toml", f'[oidc]\nclient_secret = "{SECRET}"\n')

    result = runner.invoke(config.app, ["check", str(path)])

    assert result.exit_code == 2
    assert SECRET not in result.output
    assert "oidc.client_secret" in result.output


def test_config_check_syntax_error_hides_line(tmp_path):
    """A YAML syntax error gives the position, not the text of the broken line."""
    path = write(tmp_path / "broken.yaml", f"api: [1\n  token: {SECRET}\n")

    result = runner.invoke(config.app, ["check", str(path)])

    assert result.exit_code == 2
    assert SECRET not in result.output
    assert "not valid YAML at line 2" in result.output


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.json", '{"api": ', "Expecting value"),
        ("broken.toml", "[api\n", "line 1"),
        ("list.yaml", "- 1\n- 2\n", "must contain a mapping"),
        ("settings.ini", "[api]\n", "must end in .yaml, .yml, .toml or .json"),
    ],
)
def test_config_check_unparsable_file_exits_2(tmp_path, name, text, message):
    """Files that cannot be parsed into a mapping exit 2 with the reason."""
    result = runner.invoke(config.app, ["check", str(write(tmp_path / name, text))])

    assert result.exit_code == 2
    assert message in result.output


def test_config_check_missing_file_exits_2(tmp_path):
    """A path that does not exist is reported as unreadable."""
    result = runner.invoke(config.app, ["check", str(tmp_path / "absent.yaml")])

    assert result.exit_code == 2
    assert "cannot read config file" in result.output


def test_config_check_ignores_environment(tmp_path, monkeypatch):
    """Environment variables do not mask or add problems in the file being checked."""
    monkeypatch.setenv("TIKFLOW_API__PORT", "9000")
    monkeypatch.setenv("TIKFLOW_ROUTEROS__RETRIES", "not-a-number")

    result = runner.invoke(config.app, ["check", str(write(tmp_path / "c.yaml", "api:\n  port: 0\n"))])

    assert result.exit_code == 2
    assert "api.port = 0" in result.output
    assert "routeros" not in result.output


def test_mask_url_keeps_urls_without_password():
    """URLs without a password and plain strings pass unchanged."""
    assert masking.mask_url("sqlite+aiosqlite:///var/tikflow.db") == "sqlite+aiosqlite:///var/tikflow.db"
    assert masking.mask_url("postgresql://tikflow@db/tikflow") == "postgresql://tikflow@db/tikflow"
    assert masking.mask_url("not a url") == "not a url"
    assert masking.mask_url("https://a:b@[::1/") == "https://a:b@[::1/"


def test_config_reference_covers_every_setting():
    """The generated reference has one row per setting, secrets without a default."""
    table = reference.settings_reference_markdown()
    rows = [line for line in table.splitlines() if line.startswith("| `")]

    assert len(rows) == len(reference.setting_descriptions(Settings))
    assert any(row.startswith("| `routeros.max_per_device` |") and "| `2` | `2` | `1` |" in row
               for row in rows)
    master_key = next(row for row in rows if row.startswith("| `master_key` |"))
    assert "`TIKFLOW_MASTER_KEY_FILE`" in master_key
    assert "secret, no default" in master_key


def test_config_reference_update_rewrites_marked_section(tmp_path):
    """--update replaces only the text between the markers and reports no change the second time."""
    document = write(
        tmp_path / "doc.md",
        f"intro\n{reference.REFERENCE_START}\nstale\n{reference.REFERENCE_END}\noutro\n",
    )

    first = runner.invoke(config.app, ["reference", "--update", str(document)])
    second = runner.invoke(config.app, ["reference", "--update", str(document)])

    text = document.read_text()
    assert first.exit_code == 0
    assert "updated" in first.output
    assert "already up to date" in second.output
    assert "stale" not in text
    assert text.startswith("intro\n")
    assert text.endswith(f"{reference.REFERENCE_END}\noutro\n")
    assert reference.settings_reference_markdown() in text


def test_config_reference_update_needs_markers(tmp_path):
    """A document without the markers is left alone and the command exits 2."""
    document = write(tmp_path / "doc.md", "no markers here\n")

    result = runner.invoke(config.app, ["reference", "--update", str(document)])

    assert result.exit_code == 2
    assert reference.REFERENCE_START in result.output
    assert document.read_text() == "no markers here\n"


def test_configuration_doc_names_every_variable():
    """docs/configuration.md lists the environment variable of every setting."""
    document = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [
        reference.env_variable_name(path)
        for path in reference.setting_descriptions(Settings)
        if f"`{reference.env_variable_name(path)}`" not in document
    ]

    assert missing == [], (
        "docs/configuration.md is out of date; run "
        "`tikflow config reference --update docs/configuration.md`"
    )
