"""Console helpers without servers: snapshot diffs, the session secret, API error texts."""

from __future__ import annotations

import pytest

from api.console.admin_client import ApiResult
from api.console.session import SECRET_ENV, ConsoleUnavailable, session_secret
from api.console.snapshots import MAX_DIFF_ROWS, side_by_side
from tikflow.settings import Profile, Settings


def test_snapshot_diff_pairs_changed_lines() -> None:
    """A changed line sits beside its replacement; added and removed lines face blanks."""
    left = ["a", "b", "c", "d"]
    right = ["a", "B", "c", "d", "e"]

    rows, cut = side_by_side(left, right)

    assert not cut
    kinds = [(r.kind, r.left, r.right) for r in rows]
    assert ("changed", "b", "B") in kinds
    assert ("added", "", "e") in kinds
    assert [r.left_number for r in rows if r.kind == "equal"] == [1, 3, 4]


def test_snapshot_diff_of_equal_texts_is_empty() -> None:
    """Identical snapshots produce no rows."""
    assert side_by_side(["x", "y"], ["x", "y"]) == ([], False)


def test_snapshot_diff_marks_gaps_between_hunks() -> None:
    """Far-apart changes are separate hunks with a gap row between them."""
    left = [f"line {i}" for i in range(40)]
    right = list(left)
    right[2] = "first change"
    right[35] = "second change"

    rows, _ = side_by_side(left, right)

    assert [r.kind for r in rows].count("gap") == 1
    assert len(rows) < 20


def test_snapshot_diff_is_cut_when_huge() -> None:
    """A diff longer than the row limit is cut and flagged as cut."""
    left = [f"old {i}" for i in range(MAX_DIFF_ROWS + 10)]
    right = [f"new {i}" for i in range(MAX_DIFF_ROWS + 10)]

    rows, cut = side_by_side(left, right)

    assert cut
    assert len(rows) == MAX_DIFF_ROWS


def test_session_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A configured secret is used as it is, in any profile."""
    monkeypatch.setenv(SECRET_ENV, "k" * 40)
    assert session_secret(Settings(env=Profile.PROD, master_key="q" * 43 + "=")) == "k" * 40


def test_session_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """A mounted secret file is read and stripped of its newline."""
    secret_file = tmp_path / "console-secret"
    secret_file.write_text("f" * 40 + "\n")
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.setenv(f"{SECRET_ENV}_FILE", str(secret_file))
    assert session_secret(Settings()) == "f" * 40


def test_session_secret_generated_in_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab profile makes up a fresh secret at each start."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.delenv(f"{SECRET_ENV}_FILE", raising=False)
    first, second = session_secret(Settings(env=Profile.LAB)), session_secret(Settings(env=Profile.LAB))
    assert len(first) >= 32
    assert first != second


def test_session_secret_required_outside_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    """Staging and prod without a secret raise an error naming the variable."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.delenv(f"{SECRET_ENV}_FILE", raising=False)
    with pytest.raises(ConsoleUnavailable, match=SECRET_ENV):
        session_secret(Settings(env=Profile.STAGING, master_key="q" * 43 + "="))


def test_session_secret_rejects_short_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret shorter than 32 characters is rejected with how to make a good one."""
    monkeypatch.setenv(SECRET_ENV, "short")
    with pytest.raises(ConsoleUnavailable, match="shorter than 32"):
        session_secret(Settings())


def test_api_result_turns_validation_errors_into_fields() -> None:
    """A 422 list becomes one sentence and per-field messages without the body prefix."""
    result = ApiResult(status=422, body={"detail": [
        {"loc": ["body", "name"], "msg": "name is invalid"},
        {"loc": ["body", "port"], "msg": "port is too large"},
    ]})

    assert result.error_text() == "name: name is invalid; port: port is too large"
    assert result.field_errors() == {"name": "name is invalid", "port": "port is too large"}


def test_api_result_plain_detail() -> None:
    """A string detail is shown as it is and maps to no field."""
    result = ApiResult(status=409, body={"detail": "device r1 is already inactive"})

    assert not result.ok
    assert result.error_text() == "device r1 is already inactive"
    assert result.field_errors() == {}
