"""The access matrix, claim-to-role mapping and the auth settings guards."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.authz import (
    DEFAULT_MATRIX,
    ENVIRONMENTS,
    ROLES,
    TIERS,
    AccessDenied,
    AccessMatrix,
    roles_from_claims,
)
from tikflow.settings import AuthSettings, Settings, is_loopback_host


def test_authz_default_matrix_cells() -> None:
    """The default matrix grants each role the documented tiers and environments."""
    matrix = AccessMatrix.from_settings(AuthSettings())
    assert matrix.environments(["reader"], "read") == {"lab", "staging", "prod"}
    assert matrix.environments(["reader"], "plan") == set()
    assert matrix.environments(["operator"], "apply") == {"lab", "staging"}
    assert matrix.environments(["approver"], "apply") == {"lab", "staging", "prod"}
    assert matrix.environments(["approver"], "admin") == set()
    assert matrix.environments(["admin"], "admin") == {"lab", "staging", "prod"}


def test_authz_matrix_covers_every_cell() -> None:
    """Every role has an entry for every tier, so no combination falls through."""
    for role in ROLES:
        assert set(DEFAULT_MATRIX[role]) == set(TIERS)
        for tier in TIERS:
            assert DEFAULT_MATRIX[role][tier] <= set(ENVIRONMENTS)


def test_authz_overrides_replace_cells() -> None:
    """A configured cell replaces the default cell and leaves the others alone."""
    auth = AuthSettings(matrix={"operator": {"apply": ["lab"]}, "reader": {"plan": ["lab"]}})
    matrix = AccessMatrix.from_settings(auth)
    assert matrix.environments(["operator"], "apply") == {"lab"}
    assert matrix.environments(["operator"], "plan") == {"lab", "staging", "prod"}
    assert matrix.environments(["reader"], "plan") == {"lab"}


def test_authz_union_of_roles() -> None:
    """A caller with several roles gets the union of their cells."""
    matrix = AccessMatrix.from_settings(AuthSettings(matrix={"operator": {"apply": ["lab"]}}))
    assert matrix.allows(["reader", "operator"], "apply", "lab")
    assert not matrix.allows(["reader", "operator"], "apply", "prod")
    assert matrix.allows(["operator", "approver"], "apply", "prod")


def test_authz_no_role_allows_nothing() -> None:
    """A caller without tikflow roles may not use any tier anywhere."""
    matrix = AccessMatrix.from_settings(AuthSettings())
    for tier in TIERS:
        assert not matrix.allows([], tier)
        assert not matrix.allows(["unknown-role"], tier, "lab")


def test_authz_check_message_names_fix() -> None:
    """A refusal names the tool, the tier, the environment, the caller's roles and who may."""
    matrix = AccessMatrix.from_settings(AuthSettings())
    with pytest.raises(AccessDenied) as caught:
        matrix.check(["operator"], "apply", "prod", what="tool plan.apply.v1")
    message = str(caught.value)
    assert "tool plan.apply.v1 needs apply access on prod devices" in message
    assert "(operator)" in message
    assert "approver, admin" in message


def test_authz_check_without_roles() -> None:
    """A refusal for a caller without roles states that instead of listing an empty set."""
    matrix = AccessMatrix.from_settings(AuthSettings())
    with pytest.raises(AccessDenied, match="no tikflow role"):
        matrix.check([], "read", what="tool device.list.v1")


def test_authz_rejects_unknown_matrix_names() -> None:
    """Unknown roles, tiers or environments in overrides are configuration errors."""
    with pytest.raises(ValidationError):
        AuthSettings(matrix={"superuser": {"read": ["lab"]}})
    with pytest.raises(ValidationError):
        AuthSettings(matrix={"reader": {"write": ["lab"]}})
    with pytest.raises(ValidationError):
        AuthSettings(matrix={"reader": {"read": ["production"]}})


@pytest.mark.parametrize("claims, expected", [
    ({"groups": ["tikflow-reader"]}, {"reader"}),
    ({"groups": ["tikflow-operator", "staff"], "roles": ["tikflow-approver"]}, {"operator", "approver"}),
    ({"scope": "openid tikflow:admin email"}, {"admin"}),
    ({"scp": ["tikflow:read"]}, {"reader"}),
    ({"groups": "tikflow-admin"}, {"admin"}),
    ({"groups": ["admin"]}, set()),
    ({"groups": [1, None, {"x": "tikflow-admin"}]}, set()),
    ({"groups": None}, set()),
    ({}, set()),
])
def test_authz_roles_from_claims(claims: dict, expected: set[str]) -> None:
    """Role claims map to roles through role_map; odd claim shapes grant nothing."""
    assert roles_from_claims(claims, AuthSettings()) == expected


def test_authz_roles_from_nested_claim() -> None:
    """A dotted claim name reaches into nested objects, e.g. Keycloak's realm_access.roles."""
    auth = AuthSettings(role_claims=["realm_access.roles"], role_map={"operator": ["ops"]})
    assert roles_from_claims({"realm_access": {"roles": ["ops"]}}, auth) == {"operator"}
    assert roles_from_claims({"realm_access": ["ops"]}, auth) == set()


@pytest.mark.parametrize("algorithm", ["none", "HS256", "hs512"])
def test_authz_settings_reject_weak_algorithms(algorithm: str) -> None:
    """Unsigned and symmetric algorithms cannot be allowed for access tokens."""
    with pytest.raises(ValidationError, match="only asymmetric"):
        AuthSettings(algorithms=["RS256", algorithm])


def test_authz_settings_reject_empty_algorithms() -> None:
    """An empty algorithm list is a configuration error, not an open door."""
    with pytest.raises(ValidationError, match="at least one"):
        AuthSettings(algorithms=[])


def test_authz_dev_token_needs_loopback() -> None:
    """The development token is refused when the api binds a non-loopback address."""
    with pytest.raises(ValidationError, match="loopback"):
        Settings(env="lab", dev_token="dev", api={"host": "0.0.0.0"})
    assert Settings(env="lab", dev_token="dev", api={"host": "127.0.0.1"}).dev_token is not None


def test_authz_dev_token_refused_when_published() -> None:
    """The development token is refused when a tunnel or public URL exposes the api."""
    with pytest.raises(ValidationError, match="published"):
        Settings(env="lab", dev_token="dev", tunnel={"hostname": "tikflow.example.com"})
    with pytest.raises(ValidationError, match="published"):
        Settings(env="lab", dev_token="dev", api={"public_url": "https://tikflow.example.com"})
    local = Settings(env="lab", dev_token="dev", api={"public_url": "http://127.0.0.1:8080"})
    assert local.dev_token is not None


def test_authz_dev_token_refused_in_prod() -> None:
    """The development token is refused outside the lab profile."""
    with pytest.raises(ValidationError, match="lab profile"):
        Settings(env="prod", dev_token="dev")


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
    ("tikflow.example.com", False),
])
def test_authz_loopback_hosts(host: str, loopback: bool) -> None:
    """Only loopback addresses and localhost count as loopback."""
    assert is_loopback_host(host) is loopback
