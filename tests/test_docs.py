"""The README and the pages in docs/: every relative link reaches a file of the repository and
every #anchor a heading of its page (GitHub's rule for heading anchors), and no page sends a
user to files they do not have (this project's own shared folder beside the checkout)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUITES = sorted((ROOT / "suites").glob("*.yaml"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
#: Files users do not have: the project's working folder beside the checkout.
NOT_THEIRS = ("../shared", "shared/data", "shared/papers", "PAPER_DIGEST")


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in prose(page).splitlines()
            if re.match(r"#{1,6} ", line)}


def prose(page: Path) -> str:
    """The page without its fenced code blocks (a ``#`` there is a comment, a link is code)."""
    return re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)


def test_anchor_follows_githubs_rule():
    assert anchor(" Data: where each data set comes from") == "data-where-each-data-set-comes-from"
    assert anchor("`harness run`") == "harness-run"
    assert anchor("Work–precision on 1-D diffusion (Fig. 5.3)") == "workprecision-on-1-d-diffusion-fig-53"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{fragment} in {linked.name}")
    assert not broken, f"{page.name}:\n" + "\n".join(broken)


@pytest.mark.parametrize("path", [*PAGES, *SUITES], ids=lambda p: p.name)
def test_no_page_or_suite_points_at_files_users_do_not_have(path):
    text = path.read_text(encoding="utf-8")
    assert not [name for name in NOT_THEIRS if name in text], path
