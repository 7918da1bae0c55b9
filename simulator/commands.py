"""Commands that are more than print/add/set/remove: files, export/import, backups, system.

Each handler has the signature ``(session, command, attributes, queries) -> Result`` and
is looked up by full command path in :data:`SPECIAL_COMMANDS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from simulator import export as exporter
from simulator.executor import (
    CATEGORY_ARGUMENT,
    CATEGORY_GENERAL,
    CATEGORY_SCRIPT,
    NO_SUCH_ITEM,
    PERMISSION_DENIED,
    CommandError,
    Result,
    Session,
    Trap,
    add_item,
    remove_items,
    set_items,
    unknown_command,
)
from simulator.state import DeviceState, FileBlob, Item, normalize_boolean

SpecialHandler = Callable[[Session, str, dict[str, str], list[str]], Result]

MAX_FILE_CONTENTS = 60 * 1024
MAX_READ_CHUNK = 32768
MAX_LOG_ENTRIES = 1000


def _require(session: Session, *policies: str) -> None:
    if not all(session.can(policy) for policy in policies):
        raise CommandError(Trap(PERMISSION_DENIED))


def _flag(attrs: dict[str, str], name: str) -> bool:
    if name not in attrs:
        return False
    return normalize_boolean(attrs[name] or "yes") == "true"


# -- files --------------------------------------------------------------------------------


def _file_type(name: str) -> str:
    if name.endswith(".rsc"):
        return "script"
    if name.endswith(".backup"):
        return "backup"
    return "file"


def find_file(state: DeviceState, name: str) -> Item | None:
    """Return the ``/file`` item called ``name``, or ``None``."""
    table = state.table("/file")
    return table.find(name) if table is not None else None


def write_file(state: DeviceState, name: str, contents: str, *, blob: FileBlob | None = None) -> Item:
    """Create or overwrite a file; ``contents`` may carry surrogate-escaped raw bytes."""
    size = str(len(contents.encode("utf-8", "surrogateescape")))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    properties = {"name": name, "type": _file_type(name), "size": size, "creation-time": stamp, "contents": contents}
    existing = find_file(state, name)
    if blob is not None:
        state.blobs[name] = blob
    if existing is not None:
        return state.update_item("/file", existing[".id"], dict(properties))
    return state.create_item("/file", properties)


def file_add(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/file/add name= contents=``; an existing name fails like RouterOS."""
    _require(session, "write")
    name = attrs.get("name", "")
    if not name:
        raise CommandError(Trap("failure: name is not specified", CATEGORY_ARGUMENT))
    if find_file(session.state, name) is not None:
        raise CommandError(Trap("failure: file already exists"))
    contents = attrs.get("contents", "")
    _check_contents_size(contents)
    item = write_file(session.state, name, contents)
    return Result(done={"ret": item[".id"]})


def _check_contents_size(contents: str) -> None:
    if len(contents.encode("utf-8", "surrogateescape")) > MAX_FILE_CONTENTS:
        raise CommandError(Trap("failure: new contents too long", CATEGORY_ARGUMENT))


def file_set(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/file/set =.id= contents=`` rewrites a file and its size."""
    _require(session, "write")
    if "contents" not in attrs:
        return set_items(session, "/file", attrs, queries)
    _check_contents_size(attrs["contents"])
    for key in [part for part in attrs.get(".id", "").split(",") if part]:
        table = session.state.table("/file")
        item = table.find(key) if table is not None else None
        if item is None:
            raise CommandError(Trap(NO_SUCH_ITEM))
        write_file(session.state, item["name"], attrs["contents"])
    return Result()


def file_remove(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/file/remove`` also drops a backup's snapshot."""
    _require(session, "write")
    table = session.state.table("/file")
    names = []
    for key in [part for part in attrs.get(".id", "").split(",") if part]:
        item = table.find(key) if table is not None else None
        if item is not None:
            names.append(item["name"])
    result = remove_items(session, "/file", attrs, queries)
    for name in names:
        session.state.blobs.pop(name, None)
    return result


def file_read(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/file/read file= offset= chunk-size=`` (RouterOS 7.13+) returns one ``data`` row."""
    if not session.state.version_at_least(7, 13):
        raise unknown_command(session.state, command)
    _require(session, "read")
    item = find_file(session.state, attrs.get("file", ""))
    if item is None:
        raise CommandError(Trap("failure: no such file", CATEGORY_GENERAL))
    try:
        offset = int(attrs.get("offset", "0"))
        size = min(int(attrs.get("chunk-size", str(MAX_READ_CHUNK))), MAX_READ_CHUNK)
    except ValueError as error:
        raise CommandError(Trap("invalid value for argument offset", CATEGORY_ARGUMENT)) from error
    raw = item.get("contents", "").encode("utf-8", "surrogateescape")
    chunk = raw[offset : offset + size].decode("utf-8", "surrogateescape")
    return Result(rows=[{"data": chunk}])


# -- export / import ------------------------------------------------------------------------


def export_command(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/export`` and ``/<menu>/export``: over the API only ``file=`` produces anything."""
    _require(session, "read")
    state = session.state
    if "show-sensitive" in attrs and not state.version_at_least(7):
        raise CommandError(Trap("unknown parameter show-sensitive"))
    if _flag(attrs, "show-sensitive"):
        _require(session, "sensitive")
    # RouterOS 6 shows secrets unless hide-sensitive is given, but only to users with "sensitive".
    v6_default = not state.version_at_least(7) and "hide-sensitive" not in attrs and session.can("sensitive")
    show = _flag(attrs, "show-sensitive") or v6_default
    menu = command.rpartition("/")[0] or None
    try:
        text = exporter.render_export(
            state, terse=_flag(attrs, "terse"), show_sensitive=show, menu=menu, verbose=_flag(attrs, "verbose")
        )
    except ValueError as error:
        raise CommandError(Trap(f"failure: export failed: {error}", CATEGORY_GENERAL)) from error
    name = attrs.get("file")
    if name:
        _require(session, "write")
        if not name.endswith(".rsc"):
            name += ".rsc"
        write_file(state, name, text)
    # RouterOS sends nothing back for an export over the API, even without file=.
    return Result()


def import_command(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/import file-name= [verbose=yes] [dry-run]`` runs a script file line by line."""
    from simulator.scripting import ScriptFailure, run_script_text

    _require(session, "write")
    state = session.state
    dry_run = "dry-run" in attrs
    if dry_run and not state.version_at_least(7, 16):
        raise CommandError(Trap("unknown parameter dry-run"))
    if dry_run and not _flag(attrs, "verbose"):
        raise CommandError(Trap("failure: dry-run requires verbose=yes", CATEGORY_ARGUMENT))
    item = find_file(state, attrs.get("file-name", ""))
    if item is None:
        raise CommandError(Trap("failure: no such file", CATEGORY_GENERAL))
    target = state.deep_copy() if dry_run else state
    run_session = Session(state=target, user=session.user, transport=session.transport)
    try:
        run_script_text(run_session, item.get("contents", ""), export_file=True)
    except ScriptFailure as failure:
        raise CommandError(Trap(str(failure), CATEGORY_SCRIPT)) from failure
    return Result()


# -- system ---------------------------------------------------------------------------------


def resource_print(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/system/resource/print``: version, board, uptime and fixed hardware numbers."""
    state = session.state
    uptime = state.uptime_seconds
    days, rest = divmod(uptime, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    weeks, days = divmod(days, 7)
    text = "".join(f"{n}{unit}" for n, unit in ((weeks, "w"), (days, "d"), (hours, "h"), (minutes, "m")) if n)
    row = {
        "uptime": f"{text}{seconds}s",
        "version": f"{state.version} (stable)",
        "build-time": "2025-06-01 10:00:00",
        "factory-software": "7.1" if state.version_at_least(7) else "6.0",
        "free-memory": "201326592",
        "total-memory": "268435456",
        "cpu": "Intel(R)" if state.board_name == "CHR" else "ARM",
        "cpu-count": "2",
        "cpu-frequency": "2400",
        "cpu-load": "1",
        "free-hdd-space": "83886080",
        "total-hdd-space": "134217728",
        "architecture-name": "x86_64",
        "board-name": state.board_name,
        "platform": "MikroTik",
    }
    return _single_row(row, attrs)


def _single_row(row: dict[str, str], attrs: dict[str, str]) -> Result:
    proplist = attrs.get(".proplist")
    if proplist is not None:
        row = {name: row[name] for name in proplist.split(",") if name in row}
    return Result(rows=[row])


def routerboard_print(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/system/routerboard/print``: a CHR reports ``routerboard=false``."""
    header = session.state.header
    model = getattr(header, "model", None)
    serial = getattr(header, "serial", None)
    if model:
        row = {"routerboard": "true", "model": str(model), "serial-number": str(serial or ""),
               "firmware-type": "generic", "current-firmware": session.state.version,
               "upgrade-firmware": session.state.version}
    else:
        row = {"routerboard": "false"}
    return _single_row(row, attrs)


def clock_print(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/system/clock/print`` with the simulator's current UTC time."""
    table = session.state.table("/system/clock")
    row = dict(table.items[0]) if table is not None else {}
    now = time.gmtime()
    row.update({"time": time.strftime("%H:%M:%S", now), "date": time.strftime("%Y-%m-%d", now),
                "gmt-offset": "+00:00"})
    return _single_row(row, attrs)


def backup_save(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/system/backup/save name= [password=] [dont-encrypt]`` stores a snapshot as a file."""
    _require(session, "write", "sensitive")
    name = attrs.get("name") or f"{_identity(session.state)}-{time.strftime('%Y%m%d-%H%M')}"
    if not name.endswith(".backup"):
        name += ".backup"
    blob = FileBlob(snapshot=session.state.snapshot(), password=attrs.get("password", ""))
    # The file body is opaque binary on RouterOS; only its presence and size matter here.
    write_file(session.state, name, "\0" * 1024, blob=blob)
    return Result()


def _identity(state: DeviceState) -> str:
    table = state.table("/system/identity")
    return table.items[0].get("name", "MikroTik") if table is not None else "MikroTik"


def backup_load(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/system/backup/load name= password=`` restores the snapshot and reboots."""
    _require(session, "write", "policy")
    state = session.state
    name = attrs.get("name", "")
    candidates = [name, f"{name}.backup"]
    blob = next((state.blobs[c] for c in candidates if c in state.blobs and state.blobs[c].snapshot), None)
    if blob is None or blob.snapshot is None:
        raise CommandError(Trap("failure: no such backup file", CATEGORY_GENERAL))
    if blob.password and blob.password != attrs.get("password", ""):
        raise CommandError(Trap("failure: wrong password", CATEGORY_GENERAL))
    snapshot = blob.snapshot

    def restore_and_reboot() -> None:
        state.restore(snapshot)
        state.reboot()

    return Result(after_reply=restore_and_reboot)


def reboot_command(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/system/reboot`` drops every session once the reply is out."""
    _require(session, "reboot")
    return Result(after_reply=session.state.reboot)


def reset_configuration(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/system/reset-configuration`` wipes to defaults, then runs ``run-after-reset``."""
    from simulator.scripting import ScriptFailure, run_script_text

    _require(session, "write", "policy", "reboot")
    state = session.state
    script = ""
    if attrs.get("run-after-reset"):
        item = find_file(state, attrs["run-after-reset"])
        if item is None:
            raise CommandError(Trap("failure: no such file", CATEGORY_GENERAL))
        script = item.get("contents", "")
    keep_users = _flag(attrs, "keep-users")
    no_defaults = _flag(attrs, "no-defaults")

    def wipe_and_reboot() -> None:
        fresh = DeviceState.factory(state.version)
        if no_defaults:
            # Without defaults only users and built-in hardware survive.
            fresh.tables = {p: t for p, t in fresh.tables.items() if p.startswith(("/user", "/interface/ethernet"))}
        kept = ("/file", "/user", "/user/group") if keep_users else ("/file",)
        passwords = dict(state.passwords)
        state.restore(fresh.tables, keep=kept)
        if keep_users:
            state.passwords = passwords
        else:
            state.passwords = dict(fresh.passwords)
        if script:
            admin = state.user_info("admin")
            try:
                run_script_text(Session(state=state, user=admin, transport="script"), script, export_file=True)
            except ScriptFailure:
                pass  # RouterOS stops the script at the failing line and keeps what ran.
        state.reboot()

    return Result(after_reply=wipe_and_reboot)


def scheduler_add(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/system/scheduler/add``: the user must have every policy the job requests."""
    _require(session, "write")
    wanted = [word for word in attrs.get("policy", "").split(",") if word]
    if any(not session.can(word) for word in wanted):
        raise CommandError(Trap(PERMISSION_DENIED))
    attrs = {**attrs}
    if "interval" in attrs and attrs["interval"] and not _is_duration(attrs["interval"]):
        raise CommandError(Trap("invalid value for argument interval", CATEGORY_ARGUMENT))
    result = add_item(session, "/system/scheduler", attrs, queries)
    session.state.update_item(
        "/system/scheduler", result.done["ret"], {"owner": session.user.name, "run-count": "0"}
    )
    return result


def _is_duration(value: str) -> bool:
    from simulator.scripting import parse_duration

    return parse_duration(value) is not None


def script_run(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/system/script/run`` runs a stored script's ``source`` and counts the run."""
    from simulator.scripting import ScriptFailure, run_script_text

    _require(session, "read", "test")
    key = attrs.get(".id") or attrs.get("number", "")
    table = session.state.table("/system/script")
    item = table.find(key) if table is not None and key else None
    if item is None:
        raise CommandError(Trap(NO_SUCH_ITEM))
    runs = int(item.get("run-count", "0") or 0) + 1
    session.state.update_item("/system/script", item[".id"], {"run-count": str(runs)})
    try:
        run_script_text(session, item.get("source", ""))
    except ScriptFailure as failure:
        raise CommandError(Trap(str(failure), CATEGORY_SCRIPT)) from failure
    return Result()


def log_message(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/log/info message=...`` (and warning, error, debug) appends to ``/log``."""
    level = command.rpartition("/")[2]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    entry = {"time": stamp, "topics": f"script,{level}", "message": attrs.get("message", "")}
    session.state.create_item("/log", entry)
    log_table = session.state.writable("/log")
    # RouterOS keeps a bounded memory log; the oldest entries go first.
    del log_table.items[:-MAX_LOG_ENTRIES]
    return Result()


def identity_set(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/system/identity/set name=``."""
    _require(session, "write")
    return set_items(session, "/system/identity", attrs, queries)


SPECIAL_COMMANDS: dict[str, SpecialHandler] = {
    "/export": export_command,
    "/import": import_command,
    "/file/add": file_add,
    "/file/set": file_set,
    "/file/remove": file_remove,
    "/file/read": file_read,
    "/system/resource/print": resource_print,
    "/system/resource/getall": resource_print,
    "/system/routerboard/print": routerboard_print,
    "/system/clock/print": clock_print,
    "/system/backup/save": backup_save,
    "/system/backup/load": backup_load,
    "/system/reboot": reboot_command,
    "/system/reset-configuration": reset_configuration,
    "/system/scheduler/add": scheduler_add,
    "/system/identity/set": identity_set,
    "/system/script/run": script_run,
    "/log/info": log_message,
    "/log/warning": log_message,
    "/log/error": log_message,
    "/log/debug": log_message,
}

