"""Machine description and the two result files: ``results.json`` and ``results.md``.

The JSON keeps every number as measured. The Markdown page is rendered from the same data,
one section per benchmark, each naming the script behind its numbers.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

MACHINE_NOTE = ("Numbers are noisy: the benchmarks share the cores with the simulator, Temporal, "
                "the database and any other load on the machine.")


def machine_info() -> dict[str, Any]:
    """Describe the machine and checkout: CPUs, memory, Python, OS, date (UTC) and git SHA."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "git_sha": _git(["rev-parse", "HEAD"]),
        "git_dirty": bool(_git(["status", "--porcelain", "--untracked-files=no"])),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git(arguments: list[str]) -> str | None:
    try:
        done = subprocess.run(["git", *arguments], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def write_results(results: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``directory`` and return both paths."""
    json_path = directory / "results.json"
    markdown_path = directory / "results.md"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    markdown_path.write_text(render_markdown(results))
    return json_path, markdown_path


def render_markdown(results: dict[str, Any]) -> str:
    """Render the results as a Markdown page: machine first, then one section per benchmark."""
    lines = ["# tikflow benchmark results", "",
             f"Recorded by `make bench` ({results['mode']} run). {MACHINE_NOTE}", "",
             "## Machine", ""]
    lines += _table(["property", "value"], [[key, _cell(value)] for key, value in results["machine"].items()])
    for section in results["benchmarks"].values():
        lines += ["", f"## {section['title']}", "", f"Script: `{section['script']}`. {section['method']}", ""]
        if "error" in section:
            lines += [f"**Failed:** {section['error']}"]
            continue
        lines += _table(section["columns"], [[_cell(value) for value in row] for row in section["rows"]])
        for note in section.get("notes", []):
            lines += ["", note]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _cell(value: Any) -> str:
    """Format one table cell: floats with three significant places, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == float("inf"):
            return "inf"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value).replace("|", "\\|")
