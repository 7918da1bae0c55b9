"""Devices loaded from real exports and from the shipped samples return their items."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import librouteros
import pytest
from librouteros.query import Key

from routeros.rsc import parse_export
from simulator.background import BackgroundFleet
from simulator.fleet import Fleet
from simulator.runner import SAMPLES
from simulator.state import DeviceState

HOST = "127.0.0.1"
WAIT = 5.0
REAL_EXPORTS = Path(__file__).parents[2].parent / "shared" / "data" / "exports"


def _export_files() -> list[Path]:
    samples = sorted(SAMPLES.glob("*.rsc"))
    real = sorted(REAL_EXPORTS.glob("*.rsc")) if REAL_EXPORTS.is_dir() else []
    return samples + real


def _expected_adds(path: Path) -> dict[str, list[dict[str, str]]]:
    """Group the ``add`` commands of an export by menu, with flag values as empty strings."""
    parsed = parse_export(path.read_bytes())
    grouped: dict[str, list[dict[str, str]]] = {}
    for command in parsed.commands:
        if command.verb == "add":
            properties = {k: "" if v is None else v for k, v in command.properties if not k.startswith("!")}
            grouped.setdefault(command.path, []).append(properties)
    return grouped


@pytest.mark.parametrize("export", _export_files(), ids=lambda path: path.name)
def test_export_load_keeps_every_added_item(export: Path) -> None:
    """Every ``add`` of the export becomes one item with the same non-boolean values."""
    state = DeviceState.from_export(parse_export(export.read_bytes()))
    for menu, added in _expected_adds(export).items():
        table = state.table(menu)
        assert table is not None, menu
        stored = [item for item in table.items if state.builtin(menu, item) is None]
        assert len(stored) == len(added), menu
        for expected, item in zip(added, stored, strict=True):
            for name, value in expected.items():
                if value not in ("yes", "no"):
                    assert item.get(name) == value, (menu, name)


def test_export_samples_exist() -> None:
    """The product ships a RouterOS 7 and a RouterOS 6 lab sample."""
    names = {path.name for path in SAMPLES.glob("*.rsc")}
    assert {"lab-router.rsc", "lab-router-v6.rsc"} <= names


@pytest.fixture(scope="module", params=_export_files(), ids=lambda path: path.name)
def loaded(request: pytest.FixtureRequest) -> Iterator[tuple[Path, BackgroundFleet]]:
    export: Path = request.param
    fleet = Fleet(1, export=export, transports=("api",))
    open_api_service(fleet.device("r1").state)
    with BackgroundFleet(fleet) as background:
        yield export, background


def open_api_service(state: DeviceState) -> None:
    """Enable the API for every address: real exports disable it or limit it to one network."""
    service = state.table("/ip/service").find("api")
    state.update_item("/ip/service", service[".id"], {"disabled": "false", "address": None})


def test_export_items_read_back_over_api(loaded: tuple[Path, BackgroundFleet]) -> None:
    """Over the API the device reports the export's version, identity and addresses."""
    export, sim = loaded
    parsed = parse_export(export.read_bytes())
    api = librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r1"), timeout=WAIT)
    resource = next(iter(api("/system/resource/print")))
    assert str(resource["version"]).startswith(str(parsed.header.version))
    identity_lines = [c for c in parsed.commands if c.path == "/system/identity" and c.get("name")]
    if identity_lines:
        assert next(iter(api("/system/identity/print")))["name"] == identity_lines[-1].get("name")
    expected = [c.get("address") for c in parsed.commands if c.path == "/ip/address" and c.verb == "add"]
    got = [row["address"] for row in api.path("ip", "address").select(Key("address"))]
    assert got == expected
    api.close()


def test_export_rules_count_over_api(loaded: tuple[Path, BackgroundFleet]) -> None:
    """count-only on the firewall filter matches the number of filter rules in the export."""
    export, sim = loaded
    parsed = parse_export(export.read_bytes())
    expected = sum(1 for c in parsed.commands if c.path == "/ip/firewall/filter" and c.verb == "add")
    api = librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r1"), timeout=WAIT)
    rows = list(api.rawCmd("/ip/firewall/filter/print", "=count-only="))
    api.close()
    assert rows == [{"ret": expected}]


def test_export_of_loaded_device_reparses(loaded: tuple[Path, BackgroundFleet]) -> None:
    """The device's own export parses back with the same number of ``add`` commands."""
    export, sim = loaded
    api = librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r1"), timeout=WAIT)
    text = api.config().export() if sim.fleet.device("r1").state.version_at_least(7, 13) else None
    api.close()
    if text is None:
        text = _export_in_process(sim)
    adds = [c for c in parse_export(text).commands if c.verb == "add"]
    original = [c for c in parse_export(export.read_bytes()).commands if c.verb == "add" and c.path != "/user"]
    assert len(adds) == len(original)


def _export_in_process(sim: BackgroundFleet) -> str:
    from simulator.export import render_export

    return sim.call(render_export, sim.fleet.device("r1").state)
