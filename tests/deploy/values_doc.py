"""The chart's values reference: read from the `# --` comments of values.yaml.

Every key of helm/alis-import/values.yaml (outside list items) carries a `# --` comment
just above it. This module reads them and renders the table of README.md between the
`<!-- values:start -->` and `<!-- values:end -->` markers, so the two cannot drift:

    python3 tests/deploy/values_doc.py           # check README.md is current (exit 1 if not)
    python3 tests/deploy/values_doc.py --write   # rewrite the table in README.md
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "alis-import"
VALUES = CHART / "values.yaml"
README = CHART / "README.md"
START, END = "<!-- values:start -->", "<!-- values:end -->"

_KEY = re.compile(r'^(?P<key>[A-Za-z0-9_.-]+|"[^"]+"):(?:\s+(?P<rest>.*))?$')


@dataclass
class Entry:
    """One key of values.yaml: its dotted path and its `# --` description."""

    path: str
    description: str
    line: int


def entries(text: str) -> list[Entry]:
    """Every mapping key outside list items, with the `# --` comment right above it
    (an empty description when there is none)."""
    found: list[Entry] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing maps
    comment: list[str] = []
    list_owner: int | None = None  # indent of the key whose block list we are inside
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if not stripped:
            comment = []
            continue
        if list_owner is not None:
            if indent > list_owner or (indent == list_owner and stripped.startswith("-")):
                continue
            list_owner = None
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        if stripped.startswith("-"):
            list_owner = stack[-1][0] if stack else 0
            comment = []
            continue
        match = _KEY.match(stripped)
        if not match:
            raise ValueError(f"values.yaml:{number}: cannot read {line!r}")
        key = match.group("key").strip('"')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        found.append(Entry(".".join([k for _, k in stack] + [key]), _description(comment), number))
        comment = []
        rest = (match.group("rest") or "").strip()
        if not rest or rest.startswith("#"):
            stack.append((indent, key))
    return found


def _description(comment: list[str]) -> str:
    for index, line in enumerate(comment):
        if line.startswith("# --"):
            parts = [line[len("# --") :].strip()]
            parts += [c.lstrip("#").strip() for c in comment[index + 1 :]]
            return " ".join(p for p in parts if p)
    return ""


def _lookup(values: dict, path: str):
    node = values
    for part in path.split("."):
        node = node[part]
    return node


def table(values_text: str) -> str:
    """The Markdown table of every leaf value: key, default, description."""
    values = yaml.safe_load(values_text)
    rows = ["| Key | Default | Description |", "|---|---|---|"]
    for entry in entries(values_text):
        default = _lookup(values, entry.path)
        if isinstance(default, dict) and default:
            continue  # a section: its keys have rows of their own
        shown = json.dumps(default, separators=(", ", ": "))
        rows.append(
            f"| `{entry.path}` | `{_cell(shown)}` | {_cell(entry.description)} |"
        )
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def readme_with_table(readme: str, values_text: str) -> str:
    """README text with its values table replaced by the current one."""
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table(values_text)}\n{END}{after}"


def main(argv: list[str]) -> int:
    values_text = VALUES.read_text()
    readme = README.read_text()
    current = readme_with_table(readme, values_text)
    if "--write" in argv:
        README.write_text(current)
        return 0
    if current != readme:
        print(f"{README} is out of date: run python3 tests/deploy/values_doc.py --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
