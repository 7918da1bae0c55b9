"""The operations docs: runbooks are indexed, links resolve, and tikflow commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from tikflow.cli import app

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks"
DOCS = sorted(RUNBOOKS.glob("*.md")) + [
    REPO / "docs" / "configuration.md",
    REPO / "docs" / "deployment.md",
]

# A tikflow invocation starts a line (possibly after VAR=value assignments) or follows a shell
# operator, `--` or a path ending in bin/, so `kubectl -n tikflow logs` is not one.
COMMAND = re.compile(
    r"(?:^[ \t]*(?:\w+=\S+[ \t]+)*|&&[ \t]*|\|\|[ \t]*|[;|(][ \t]*|--[ \t]+|bin/)"
    r"tikflow[ \t]+([a-z][a-z-]*)(?:[ \t]+([a-z][a-z-]*))?(?:[ \t]+([a-z][a-z-]*))?",
    re.MULTILINE,
)
OPTION = re.compile(r"(?<!\S)(--[a-z][a-z-]*)")
CODE_BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")



def registered_commands() -> dict[str, set[str] | None]:
    """Map each top-level command to its sub-commands, or None when it has none."""
    # Groups are recognised by their `commands` mapping because typer may bring its own click.
    root = typer.main.get_command(app)
    commands: dict[str, set[str] | None] = {}
    for name, command in root.commands.items():
        subcommands = getattr(command, "commands", None)
        commands[name] = set(subcommands) if subcommands is not None else None
    return commands


def invocations(text: str) -> list[tuple[str, str | None, str | None, set[str]]]:
    """Return (command, sub-command, next word, options) for each tikflow call in a text.

    The next word is the third level of nested groups such as `tikflow auth break-glass create`,
    or a positional argument.
    """
    snippets = CODE_BLOCK.findall(text) + INLINE_CODE.findall(CODE_BLOCK.sub("", text))
    found = []
    for snippet in snippets:
        for match in COMMAND.finditer(snippet):
            rest = snippet[match.end():].split("\n", 1)[0]
            arguments = re.split(r"[|;#)]|&&", rest, maxsplit=1)[0]
            options = set(OPTION.findall(arguments))
            found.append((match[1], match[2] or None, match[3] or None, options))
    return found


def referenced_commands(text: str) -> set[tuple[str, str | None]]:
    """Return the (command, sub-command) pairs invoked in the code of a Markdown text."""
    return {(command, subcommand) for command, subcommand, _, _ in invocations(text)}


def unknown_options(text: str) -> set[str]:
    """Return `command --option` strings whose option the registered command lacks."""
    root = typer.main.get_command(app)
    unknown = set()
    for command, subcommand, third, options in invocations(text):
        target = root.commands.get(command)
        for word in (subcommand, third):
            if target is not None and getattr(target, "commands", None) is not None:
                target = target.commands.get(word)
        if target is None:
            continue  # Unregistered commands are reported by unknown_commands instead.
        known = {opt for param in target.params for opt in param.opts} | {"--help"}
        unknown |= {f"{command} {subcommand or ''} {option}".replace("  ", " ")
                    for option in options - known}
    return unknown


def unknown_commands(references: set[tuple[str, str | None]]) -> set[tuple[str, str | None]]:
    """Return the references that the command line does not register."""
    registered = registered_commands()
    unknown = set()
    for command, subcommand in references:
        if command not in registered:
            unknown.add((command, subcommand))
            continue
        subcommands = registered[command]
        if subcommands is not None and subcommand not in subcommands:
            unknown.add((command, subcommand))
    return unknown


def test_runbook_command_pattern_finds_invocations():
    """The pattern finds real invocations and skips namespaces and user names."""
    text = (
        "```sh\n"
        "tikflow config show | grep api\n"
        "TIKFLOW_X=1 tikflow migrate current\n"
        "kubectl -n tikflow exec deploy/tikflow-api -- tikflow version\n"
        "kubectl -n tikflow logs deploy/tikflow-worker\n"
        "sudo -u tikflow env /opt/tikflow/venv/bin/tikflow worker\n"
        "```\n"
        "Run `tikflow incident pause` first.\n"
    )

    assert referenced_commands(text) == {
        ("config", "show"), ("migrate", "current"), ("version", None), ("worker", None),
        ("incident", "pause"),
    }


def test_runbook_commands_exist():
    """Every tikflow command in the docs is registered."""
    references = set()
    for document in DOCS:
        references |= referenced_commands(document.read_text())

    assert references, "the pattern found no tikflow command at all"
    assert unknown_commands(references) == set()


def test_runbook_options_exist():
    """Every option passed to a registered tikflow command in the docs is one it accepts."""
    for document in DOCS:
        assert unknown_options(document.read_text()) == set(), document.name


def test_runbook_unknown_option_is_reported():
    """An option the command lacks is reported, so the option check can fail."""
    text = (
        "```sh\ntikflow config show --jsn | jq .\ntikflow config show --json # --nope\n"
        "tikflow auth break-glass create oncall-1 --valid-days 2\n```\n"
    )

    assert unknown_options(text) == {"config show --jsn", "auth break-glass --valid-days"}


def test_runbook_unknown_command_is_reported():
    """A command neither registered nor pending is reported, so the check can fail."""
    assert unknown_commands({("reboot-everything", None)}) == {("reboot-everything", None)}
    assert unknown_commands({("config", "explode")}) == {("config", "explode")}
    assert unknown_commands({("config", "show")}) == set()


def test_runbook_index_lists_every_runbook():
    """README.md links every runbook in the folder."""
    index = (RUNBOOKS / "README.md").read_text()
    runbooks = {path.name for path in RUNBOOKS.glob("*.md")} - {"README.md"}

    assert runbooks == {
        "routeros-unavailable.md", "auth-failures.md", "misbehaving-tools.md",
        "performance-degradation.md", "restore-from-backup.md", "rollback-release.md",
    }
    for name in runbooks:
        assert f"]({name})" in index, name


@pytest.mark.parametrize("document", DOCS, ids=lambda path: path.name)
def test_docs_relative_links_resolve(document):
    """Relative links in the operations docs point at files that exist."""
    for target in LINK.findall(document.read_text()):
        if "://" in target:
            continue
        assert (document.parent / target).exists(), f"{document.name}: {target}"
