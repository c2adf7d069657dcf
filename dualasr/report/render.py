"""Rendering a :class:`~dualasr.report.build.Report` through Jinja2 templates
(``templates/report.html.j2``, ``templates/report.md.j2``).

Every value reaches the page escaped: HTML through Jinja2's autoescaping, the
markdown through :func:`~dualasr.tables.md_escape` applied to every ``{{ }}``
expression (the environment's ``finalize``), so a model named ``<b>|x`` or a
note quoting a file path cannot change the page's structure. Tables are
rendered by :mod:`dualasr.tables` (which escapes every cell), as the stages'
``.md`` files are; only they and URL-quoted figure paths pass unescaped.
"""

from __future__ import annotations

import base64
import functools
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from dualasr import tables
from dualasr.report.build import Report
from dualasr.report.inputs import ReportError
from dualasr.tables import MdSafe, md_escape

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def data_uri(path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI; not a PNG is a ReportError."""
    data = path.read_bytes()
    if not data.startswith(PNG_MAGIC):
        raise ReportError(f"{path}: not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


@functools.cache
def _environment(kind: str) -> Environment:
    if kind == "html":
        env = Environment(loader=PackageLoader("dualasr.report", "templates"), autoescape=True,
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip
        env.globals["table"] = lambda t: Markup(tables.html(t))  # cells escaped by tables.html
    else:
        env = Environment(loader=PackageLoader("dualasr.report", "templates"), autoescape=False,
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                          finalize=md_escape, keep_trailing_newline=True)  # fmt: skip
        env.filters["url"] = lambda path: MdSafe(quote(str(path)))
        env.globals["table"] = tables.markdown  # MdSafe: cells escaped by tables.markdown
    return env


def render_html(report: Report) -> str:
    """The self-contained page: figures inlined as data URIs."""
    images = {
        fig.path: data_uri(report.study_dir / fig.path)
        for section in report.sections
        for fig in section.figures
    }
    return _environment("html").get_template("report.html.j2").render(report=report, images=images)


def render_markdown(report: Report) -> str:
    """The markdown twin: figures linked by their path relative to the study directory."""
    return _environment("md").get_template("report.md.j2").render(report=report)
