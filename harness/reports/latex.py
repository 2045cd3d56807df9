"""``summary.tex``: the summary tables (:mod:`harness.reports.tables`) as LaTeX, one
``table`` environment per (suite, task), for pasting into a paper (needs ``booktabs``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.reports.tables import section_title, sections, seeds_line, table
from harness.running.safe_files import Destination, Folder


def render_latex(rows: list[dict[str, Any]]) -> str:
    """Every section's table in booktabs style, captioned with its task and seeds."""
    grouped = sections(rows)
    parts = ["% harness report: the summary tables (mean +- sample std over seeds); "
             "\\usepackage{booktabs}"]
    for (suite, task), task_rows in grouped.items():
        headers, cells = table(task_rows)
        body = tabulate(cells, headers, tablefmt="latex_booktabs", disable_numparse=True)
        caption = _escape(f"{section_title(suite, task, grouped)}, suite {suite}: "
                          f"{seeds_line(task_rows)}.")
        parts.append("\n".join(["\\begin{table}", "\\centering", _math(body),
                                f"\\caption{{{_math(caption)}}}", "\\end{table}"]))
    return "\n\n".join(parts) + "\n"


def write_latex(rows: list[dict[str, Any]], out: Destination) -> Path:
    """Write ``summary.tex`` into ``out`` (no link followed below its root); return its path."""
    return Folder.of(out).write("summary.tex", render_latex(rows))


def _math(text: str) -> str:
    return text.replace("±", "\\ensuremath{\\pm}")


def _escape(text: str) -> str:
    for char, escaped in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("$", "\\$"),
                          ("#", "\\#"), ("_", "\\_"), ("{", "\\{"), ("}", "\\}"),
                          ("~", "\\textasciitilde{}"), ("^", "\\textasciicircum{}")):
        text = text.replace(char, escaped)
    return text
