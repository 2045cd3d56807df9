"""A report page as a list of blocks, rendered to Markdown or to one self-contained HTML file.

The page content is assembled once (:mod:`harness.reports.page`); these renderers only lay it
out. The HTML has its style inline and refers to nothing but relative paths of files beside
it, so it opens from the file system with no server and no network.

Block text is plain text (record strings among it: model, task and suite names, errors), so
both renderers escape all of it: the HTML with :func:`html.escape`, the Markdown with
:func:`markdown_text`, which every Markdown the harness writes goes through.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Union
from urllib.parse import quote

from tabulate import tabulate

#: A table cell: one line of text, or several.
Cell = Union[str, list[str]]


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Paragraph:
    text: str


@dataclass
class Link:
    text: str
    href: str


@dataclass
class Items:
    """A bullet list; an item is text or a link."""

    items: list[Union[str, Link]]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    row_classes: list[str] = field(default_factory=list)
    align_numbers: bool = True  # right-align cells that hold one number


@dataclass
class Image:
    """A figure: ``src`` (PNG, relative to the page), an optional ``link`` (e.g. the SVG)."""

    src: str
    title: str
    caption: str
    link: str = ""


Block = Union[Heading, Paragraph, Items, Table, Image]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 90%; }
th, td { border: 1px solid #ccc; padding: .3em .6em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; white-space: nowrap; }
tr.holds td:first-child { color: #070; font-weight: bold; }
tr.refuted td:first-child { color: #b00; font-weight: bold; }
tr.inconclusive td:first-child { color: #a60; }
tr.incomplete td:first-child, tr.not-run td:first-child,
tr.not-comparable td:first-child { color: #777; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 90%; color: #444; }
code { background: #f3f3f3; padding: 0 .2em; }
"""


def to_markdown(blocks: list[Block]) -> str:
    """The blocks as GitHub-flavoured Markdown (images as relative links), text escaped."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {markdown_text(block.text)}")
        elif isinstance(block, Paragraph):
            parts.append(markdown_text(block.text))
        elif isinstance(block, Items):
            parts.append("\n".join(
                f"- [{markdown_text(item.text)}]({_md_href(item.href)})" if isinstance(item, Link)
                else f"- {markdown_text(item)}" for item in block.items))
        elif isinstance(block, Table):
            rows = [[_md_cell(cell) for cell in row] for row in block.rows]
            headers = [markdown_text(header) for header in block.headers]
            parts.append(tabulate(rows, headers, tablefmt="github", disable_numparse=True))
        else:
            link = f" ([SVG]({_md_href(block.link)}))" if block.link else ""
            parts.append(f"![{markdown_text(block.title)}]({_md_href(block.src)})\n\n"
                         f"*{markdown_text(block.caption)}*{link}")
    return "\n\n".join(parts) + "\n"


#: Characters Markdown would read as markup (emphasis, code, links, table cells, escapes).
_MARKUP = re.compile(r"([\\`*\[\]|])")


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown, safe in a table cell: ``<``, ``>``, ``&`` as HTML entities
    (no raw HTML gets through), markup characters backslash-escaped, line breaks as ``<br>``
    (a newline would end a table row or a list item)."""
    escaped = _MARKUP.sub(r"\\\1", html.escape(text, quote=False))
    return re.sub(r"\r\n|\r|\n", "<br>", escaped)


def _md_href(href: str) -> str:
    """A relative link target with spaces, parentheses and the like percent-encoded."""
    return quote(href, safe="/#")


def to_html(title: str, blocks: list[Block]) -> str:
    """The blocks as one HTML page with inline style and relative image paths."""
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            anchor = f' id="{html.escape(block.anchor)}"' if block.anchor else ""
            body.append(f"<h{block.level}{anchor}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Items):
            items = "".join(
                f'<li><a href="{html.escape(item.href)}">{html.escape(item.text)}</a></li>'
                if isinstance(item, Link) else f"<li>{html.escape(item)}</li>"
                for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            body.append(_html_table(block))
        else:
            image = (f'<img src="{html.escape(block.src)}" alt="{html.escape(block.title)}" '
                     f'loading="eager">')
            if block.link:
                image = f'<a href="{html.escape(block.link)}">{image}</a>'
            body.append(f"<figure>{image}<figcaption>{html.escape(block.caption)}"
                        f"</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(header)}</th>" for header in table.headers)
    rows = []
    for index, row in enumerate(table.rows):
        css = table.row_classes[index] if index < len(table.row_classes) else ""
        cells = "".join(_html_cell(cell, table.align_numbers) for cell in row)
        rows.append(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _html_cell(cell: Cell, align_numbers: bool) -> str:
    lines = cell if isinstance(cell, list) else [cell]
    numeric = align_numbers and len(lines) == 1 and _looks_numeric(lines[0])
    text = "<br>".join(_indent(line) for line in lines)
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


def _indent(line: str) -> str:
    """A line escaped, its leading spaces kept (HTML would collapse them)."""
    stripped = line.lstrip(" ")
    return "&nbsp;" * (len(line) - len(stripped)) + html.escape(stripped)


def _looks_numeric(text: str) -> bool:
    return bool(text) and text[0] in "0123456789-—+." and not any(c.isalpha() for c in
                                                                   text.replace("e", ""))


def _md_cell(cell: Cell) -> str:
    lines = cell if isinstance(cell, list) else [cell]
    return "<br>".join(markdown_text(line) for line in lines)
