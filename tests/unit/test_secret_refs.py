"""Secret references resolve env and file secrets and reject anything else clearly."""

from __future__ import annotations

import pytest

from inventory.secret_refs import MAX_SECRET_BYTES, SecretRefError, resolve_secret_ref


def test_secret_ref_reads_environment_variable(monkeypatch) -> None:
    """``env:NAME`` returns the variable's value without a trailing newline."""
    monkeypatch.setenv("TIKFLOW_TEST_ROUTER_PW", "s3cret\n")

    assert resolve_secret_ref("env:TIKFLOW_TEST_ROUTER_PW") == "s3cret"


def test_secret_ref_reads_file(tmp_path) -> None:
    """``file:/path`` returns the file's text without a trailing newline."""
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-a-file\n")

    assert resolve_secret_ref(f"file:{secret_file}") == "from-a-file"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("plain-password", "use env:NAME or file:"),
        ("vault:kv/router", "invalid secret reference scheme 'vault'"),
        ("env:", "use env:NAME or file:"),
        ("env:1BAD", "invalid environment variable name"),
        ("env:TIKFLOW_TEST_UNSET_VARIABLE", "is not set"),
        ("file:relative/pw", "must be absolute"),
        ("file:/nonexistent/tikflow/pw", "cannot read secret file"),
    ],
)
def test_secret_ref_rejects_bad_reference(ref: str, expected: str) -> None:
    """Malformed or unreadable references raise SecretRefError saying what to change."""
    with pytest.raises(SecretRefError) as raised:
        resolve_secret_ref(ref)

    assert expected in str(raised.value)


def test_secret_ref_rejects_empty_and_oversized_secrets(tmp_path, monkeypatch) -> None:
    """An empty secret or one above the size limit is rejected without echoing it."""
    monkeypatch.setenv("TIKFLOW_TEST_EMPTY_PW", "")
    big = tmp_path / "big"
    big.write_text("x" * (MAX_SECRET_BYTES + 1))

    with pytest.raises(SecretRefError, match="empty secret"):
        resolve_secret_ref("env:TIKFLOW_TEST_EMPTY_PW")
    with pytest.raises(SecretRefError) as raised:
        resolve_secret_ref(f"file:{big}")
    assert "x" * 20 not in str(raised.value)


def test_secret_ref_rejects_binary_file(tmp_path) -> None:
    """A secret file that is not UTF-8 is rejected instead of decoded wrongly."""
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00pw")

    with pytest.raises(SecretRefError, match="not UTF-8"):
        resolve_secret_ref(f"file:{binary}")
