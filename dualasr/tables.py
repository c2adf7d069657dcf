"""One table model and one renderer for every table of a study.

Each stage turns its typed rows into :class:`Table` objects (one function per
table layout, beside the rows it reads); the stage writes them to its ``.md``
with :func:`markdown` and the report shows the very same tables with
:func:`html` and :func:`markdown`, so a layout is written once.

Every cell reaches the output escaped: HTML with markupsafe (as Jinja2), markdown
with :func:`md_escape`, so a model named ``<b>|x`` or a note quoting a path
cannot change the page's or the table's structure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cell:
    """A table cell; ``strong`` marks a notable value (e.g. a CI excluding 0)."""

    text: str
    strong: bool = False


@dataclass
class Row:
    """A table row; ``reference`` marks a row of the reference study's numbers."""

    cells: list[Cell]
    reference: bool = False


@dataclass
class Table:
    """``labels``: how many leading columns are labels (left-aligned), not numbers."""

    head: list[str]
    rows: list[Row] = field(default_factory=list)
    caption: str = ""
    labels: int = 1

    def add(self, cells: list[str | Cell], reference: bool = False) -> None:
        """Append a row of plain strings or cells."""
        self.rows.append(Row([c if isinstance(c, Cell) else Cell(c) for c in cells], reference))


class MdSafe(str):
    """Markdown that is already safe (built from escaped or quoted parts)."""


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#&])")


def md_escape(value: object) -> str:
    """Backslash-escape the characters that make markdown structure (CommonMark
    allows it for any ASCII punctuation); newlines become spaces so a value stays
    inside its table cell or list item."""
    if isinstance(value, MdSafe):
        return value
    text = "" if value is None else str(value)
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.splitlines()))


def markdown(table: Table) -> MdSafe:
    """GitHub-flavoured markdown lines of ``table`` (its caption in bold above it, if any)."""

    def cell(c: Cell) -> str:
        return f"**{md_escape(c.text)}**" if c.strong and c.text else md_escape(c.text)

    lines = [f"**{md_escape(table.caption)}**", ""] if table.caption else []
    lines += ["| " + " | ".join(md_escape(h) for h in table.head) + " |", "|" + "---|" * len(table.head)]
    lines += ["| " + " | ".join(cell(c) for c in r.cells) + " |" for r in table.rows]
    return MdSafe("\n".join(lines))


def html(table: Table) -> str:
    """An HTML ``<table>`` of ``table`` (label columns and reference rows carry classes),
    escaped as Jinja2 escapes the rest of the report's page."""
    from markupsafe import escape

    def td(tag: str, i: int, c: Cell) -> str:
        cls = ' class="label"' if i < table.labels else ""
        text = escape(c.text)
        return f"<{tag}{cls}>{f'<strong>{text}</strong>' if c.strong and c.text else text}</{tag}>"

    parts = ["<table>"]
    if table.caption:
        parts.append(f"<caption>{escape(table.caption)}</caption>")
    parts.append("<thead><tr>" + "".join(td("th", i, Cell(h)) for i, h in enumerate(table.head)) + "</tr></thead>")
    parts.append("<tbody>")
    for r in table.rows:
        cls = ' class="reference"' if r.reference else ""
        parts.append(f"<tr{cls}>" + "".join(td("td", i, c) for i, c in enumerate(r.cells)) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)
