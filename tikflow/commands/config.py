"""``tikflow config``: show the effective configuration and check configuration files.

Both commands print values only after masking secrets (see ``tikflow.configinfo.masking``), and
validation messages never repeat a rejected secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from tikflow.configinfo.reference import settings_reference_markdown, update_reference
from tikflow.configinfo.sources import (
    ConfigInvalidError,
    SettingOrigin,
    effective_settings,
    ignored_keys,
)
from tikflow.configinfo.validation import check_file

app = typer.Typer(
    name="config",
    help="Show the effective configuration or check a configuration file.",
    no_args_is_help=True,
)

EXIT_INVALID = 2


def _print_table(rows: list[SettingOrigin]) -> None:
    # Plain aligned columns, never truncated, so the output can be searched with grep.
    key_width = max(len(row.key) for row in rows)
    values = [json.dumps(row.value) for row in rows]
    value_width = min(max(len(value) for value in values), 48)
    for row, value in zip(rows, values, strict=True):
        source = f"{row.source} ({row.origin})" if row.origin else row.source
        typer.echo(f"{row.key:<{key_width}}  {value:<{value_width}}  {source}")


@app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the effective configuration, where each value came from, with secrets masked."""
    try:
        rows = effective_settings()
        warnings = ignored_keys()
    except ConfigInvalidError as exc:
        typer.echo("configuration is invalid:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(EXIT_INVALID) from None

    for warning in warnings:
        typer.echo(f"warning: ignored {warning}", err=True)

    if as_json:
        payload = {row.key: {k: v for k, v in asdict(row).items() if k != "key"} for row in rows}
        typer.echo(json.dumps(payload, indent=2))
        return
    _print_table(rows)


@app.command("reference")
def reference(
    update: Annotated[
        Path | None,
        typer.Option(help="Markdown file whose settings table (between the markers) to rewrite."),
    ] = None,
) -> None:
    """Print every setting with its variables and per-profile defaults as a Markdown table."""
    if update is None:
        typer.echo(settings_reference_markdown(), nl=False)
        return
    try:
        changed = update_reference(update)
    except (ValueError, OSError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(f"{update}: {'updated' if changed else 'already up to date'}")


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="YAML, TOML or JSON file to validate.")],
) -> None:
    """Validate a configuration file; exit 0 when valid, 2 when invalid."""
    problems = check_file(file)
    if not problems:
        typer.echo(f"{file}: valid")
        return
    typer.echo(f"{file}: {len(problems)} problem(s)")
    for problem in problems:
        typer.echo(f"  {problem}")
    raise typer.Exit(EXIT_INVALID)
