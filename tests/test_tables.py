"""The one table renderer: markdown and HTML from the same rows, every cell escaped."""

from dualasr.tables import Cell, Table, html, markdown


def table() -> Table:
    t = Table(["model", "CER"], caption="Error | rates", labels=1)
    t.add(["<b>do|x</b>", Cell("1.50", strong=True)])
    t.add(["reference study", "1.30"], reference=True)
    return t


def test_markdown_escapes_cells_and_keeps_the_columns():
    lines = markdown(table()).splitlines()
    assert lines[0] == "**Error \\| rates**"
    assert lines[2:4] == ["| model | CER |", "|---|---|"]
    assert lines[4] == "| \\<b\\>do\\|x\\</b\\> | **1.50** |"  # the escaped pipe does not split the cell
    assert lines[5] == "| reference study | 1.30 |"


def test_html_marks_labels_strong_cells_and_reference_rows():
    page = html(table())
    assert "<caption>Error | rates</caption>" in page
    assert '<th class="label">model</th><th>CER</th>' in page
    assert '<tr><td class="label">&lt;b&gt;do|x&lt;/b&gt;</td><td><strong>1.50</strong></td></tr>' in page
    assert '<tr class="reference"><td class="label">reference study</td><td>1.30</td></tr>' in page
