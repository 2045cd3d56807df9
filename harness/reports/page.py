"""``harness report``: the whole report of one or more results directories.

Writes into the report directory ``index.html`` (opens from the file system: inline style,
relative image paths, nothing fetched), ``index.md`` (the same content as Markdown),
``summary.md`` and ``summary.csv`` (the tables, :mod:`harness.reports.tables`) and ``figures/`` (PNG,
and SVG unless left out), with, per (suite, task): the table, the figures, the failed runs;
then the claims checklist; then the environment the runs were measured in.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from harness.reports import figures as figs
from harness.reports import work_precision
from harness.reports.aggregate import Group, group_runs, older
from harness.reports.claim_results import INCONCLUSIVE, SYMBOLS
from harness.reports.claim_verdicts import ClaimResult, evaluate
from harness.reports.claims import (PAPER_CLAIMS, RESULTS_CLAIMS, ClaimsFile, load_claims,
                                    paper_claims_path)
from harness.reports.latex import write_latex
from harness.reports.render import Block, Heading, Image, Items, Link, Paragraph, Table, to_html, \
    to_markdown
from harness.reports.tables import (REPORT_DIR, section_title, sections, seeds_line, summarize, table,
                            write_summary)
from harness.running.safe_files import Folder
from harness.running.store import ResultsError, load_results
from harness.running.tracebacks import failure_lines

#: Environment fields shown, in order (``argv`` is shown as the commands run).
_ENVIRONMENT_KEYS = ("harness", "git_revision", "python", "torch", "torchdiffeq", "platform",
                     "device", "device_name", "torch_threads")


@dataclass
class Written:
    """What a report wrote, and the claims verdicts for the command to print."""

    html: Path
    markdown: Path
    summary: Path
    figures: list[Path]
    claims: list[tuple[ClaimsFile, list[ClaimResult]]]
    failed: list[dict[str, Any]]
    """The records of the runs that failed."""


def claims_files(results: Sequence[Path], extra: Sequence[Path],
                 paper: bool = True) -> list[tuple[ClaimsFile, int | None]]:
    """The claims files to check, each with the index of the results directory it is
    limited to (None: all): the paper's claims (unless ``paper`` is false), each results
    directory's own ``claims.yaml`` (a suite's, copied there by ``harness run``) for that
    directory's records, then the ``extra`` files."""
    paths: list[tuple[Path, int | None]] = [(paper_claims_path(), None)] if paper else []
    paths += [(Path(d) / RESULTS_CLAIMS, index) for index, d in enumerate(results)
              if (Path(d) / RESULTS_CLAIMS).is_file()]
    paths += [(Path(p), None) for p in extra]
    return [(load_claims(path), scope) for path, scope in paths]


def write_page(results: Sequence[Path], out: Path | None = None, extra_claims: Sequence[Path] = (),
               paper_claims: bool = True,
               formats: Sequence[str] = figs.DEFAULT_FORMATS) -> Written:
    """Write the report of the results directories into ``out`` (default: the only
    directory's ``report/``), following no link below ``out`` (or below the results directory):
    :mod:`harness.running.safe_files`; raise :class:`harness.running.store.ResultsError` or
    :class:`harness.reports.claims.ClaimsError` on bad input before writing anything."""
    if out is None:
        if len(results) != 1:
            raise ResultsError("several results directories need --out (where to write the "
                               "report)")
        given = Path(results[0])  # the results folder is the user's; its report/ is not followed
        folder = Folder(given if given.is_dir() else given.parent, PurePosixPath(REPORT_DIR))
    else:
        folder = Folder(Path(out))
    out = folder.path
    per_dir, shared = _told_apart([load_results([directory]) for directory in results], results)
    records = [record for found in per_dir for record in found]
    files = claims_files(results, extra_claims, paper_claims)
    rows = summarize(records)
    summary = write_summary(rows, folder)
    write_latex(rows, folder)
    verdicts = [(file, evaluate(file, records if scope is None else per_dir[scope]))
                for file, scope in files]
    paper_figures = {task: name for file, _ in files for task, name in file.figures.items()}

    groups: dict[tuple[str, str], list[Group]] = {}
    for group in group_runs(records):
        groups.setdefault((group.suite, group.task), []).append(group)
    row_sections = sections(rows)
    blocks: list[Block] = []
    drawn: list[Path] = []
    toc: list[str | Link] = []
    for (suite, task), section_rows in row_sections.items():
        title = section_title(suite, task, row_sections)
        anchor = _slug(f"{task}-{suite}")
        toc.append(Link(title, f"#{anchor}"))
        section_groups = groups[(suite, task)]
        blocks += _section(title, anchor, suite, section_rows, section_groups,
                           paper_figures.get(task))
        for figure in [*figs.draw_all(section_groups, folder / "figures", anchor, formats),
                       *work_precision.draw(section_groups, folder / "figures" / anchor,
                                            formats)]:
            drawn += figure.files
            blocks.append(_image(figure, out))
    toc += [Link("Paper claims", "#claims"), Link("Environment", "#environment")]

    head = _head(records, results, out, verdicts, toc, shared)
    page = head + blocks + _claims_blocks(verdicts, out) + _environment_blocks(records)
    title = f"harness report — {', '.join(dict.fromkeys(r.get('suite', '') for r in records))}"
    html_path = folder.write("index.html", to_html(title, page))
    markdown_path = folder.write("index.md", to_markdown(page))
    return Written(html_path, markdown_path, summary, drawn, verdicts,
                   [r for r in records if r.get("status") != "ok"])


def _told_apart(per_dir: list[list[dict[str, Any]]], results: Sequence[Path]
                ) -> tuple[list[list[dict[str, Any]]], list[str]]:
    """Each directory's records, where a suite's name is in more than one directory renamed
    ``<suite> (<directory>)``, so that each directory's runs stay apart (the same run in two
    directories is two records, both shown); and the names so split."""
    holders: dict[str, set[int]] = {}
    for index, found in enumerate(per_dir):
        for record in found:
            holders.setdefault(record.get("suite", ""), set()).add(index)
    shared = [suite for suite, where in holders.items() if len(where) > 1]
    return [[{**record, "suite": f"{record.get('suite', '')} ({directory})"}
             if record.get("suite", "") in shared else record for record in found]
            for found, directory in zip(per_dir, results)], shared


def _head(records: list[dict[str, Any]], results: Sequence[Path], out: Path,
          verdicts: list[tuple[ClaimsFile, list[ClaimResult]]], toc: list[str | Link],
          shared: list[str]) -> list[Block]:
    ok = sum(r.get("status") == "ok" for r in records)
    suites = ", ".join(dict.fromkeys(r.get("suite", "") for r in records))
    sources = ", ".join(f'"{_relative(Path(d), out)}"' for d in results)
    where = "the results directory" if len(results) == 1 else "the results directories"
    counts = _verdict_counts([result for _, results_ in verdicts for result in results_])
    return [
        Heading(1, f"harness report: {suites}"),
        Paragraph(f"{len(records)} run records ({ok} ok, {len(records) - ok} failed) from "
                  f"{where} {sources} (relative to this page). Every number is over seeds: "
                  f"mean ± sample standard deviation, then in brackets the 95 % confidence "
                  f"interval of the mean (no ± with one seed; n is the runs ok, or given); "
                  f"figures draw the mean as a line, ±1 std as a band and the 95 % CI as a "
                  f"fainter band. NFE are per training iteration, averaged over a run's epochs."),
        *([Paragraph(f"Suite names found in more than one of the directories: "
                     f"{', '.join(shared)}. Each directory's runs are shown apart, the suite "
                     f"named with the directory (a run recorded in both appears in both).")]
          if shared else []),
        Paragraph(f"Claims checked (all files): {counts}."),
        Items(toc),
    ]


def _section(title: str, anchor: str, suite: str, rows: list[dict[str, Any]],
             groups: list[Group], paper_figure: str | None) -> list[Block]:
    headers, cells = table(rows)
    text = (f"Suite {suite}. Settings: {figs.describe_settings(groups)}. {seeds_line(rows)} "
            f"({figs.describe_seeds(groups)}).")
    if paper_figure:
        text += f" The paper shows this task in {paper_figure}."
    blocks: list[Block] = [Heading(2, title, anchor), Paragraph(text), Table(headers, cells)]
    stale = older(groups)
    if stale:
        blocks.append(Paragraph(
            f"Older versions: {', '.join(group.label for group in stale)} — recorded with an "
            f"older version of the task or model (its plugin's version) than other runs here, "
            f"so their numbers may predate a change; `harness run` reruns them."))
    failed = [[f"{group.task}/{group.label}/seed {run.get('seed')}", failure_lines(run)]
              for group in groups for run in group.failed]
    if failed:
        blocks += [Paragraph("Failed runs, each with the plugin's frames of its traceback "
                             "(the record keeps the whole traceback):"),
                   Table(["run", "error"], failed, align_numbers=False)]
    return blocks


def _image(figure: figs.Figure, out: Path) -> Image:
    by_format = {path.suffix: _relative(path, out) for path in figure.files}
    src = by_format.get(".png") or next(iter(by_format.values()))
    link = by_format.get(".svg", "")
    return Image(src, figure.title, figure.caption, link)


def _claims_blocks(verdicts: list[tuple[ClaimsFile, list[ClaimResult]]],
                   out: Path) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Paper claims", "claims")]
    if not verdicts:
        return blocks + [Paragraph("No claims file was given.")]
    blocks.append(Paragraph(
        "Each claim is checked on the runs above, as docs/claims.md of the harness says. Models "
        "are compared over seeds with exact tests, two-sided at α = 0.05: a permutation test of "
        "Welch's t per pair of models (on ranks when runs failed at the NFE cap, which rank "
        "above every run that finished), Fisher's exact test for how often seeds stall, a "
        "sign-flip test of each seed's slope for trends and growing advantages. ✓ holds: every "
        "test significant in the claimed direction (no correction: all must pass); ✗ refuted: "
        "some test significant the other way after Holm's correction across the claim's tests "
        "that can reach α; ? inconclusive: neither (with the seeds per model that would decide "
        "it at 80 % joint power, where known). incomplete: a model a check needs did not run "
        "in a setting or has failed runs that cannot enter its test; ≠ not comparable: two "
        "models ran under different settings (the keys are named); not run: no model did. "
        "Thresholds and parameter counts are checked on the numbers. Under each check, the "
        "numbers it compared (mean ± std, n and 95 % CI over seeds), each test and how many "
        "runs failed, why, and how they entered."))
    for file, results in verdicts:
        shipped = file.path == paper_claims_path()
        blocks.append(Heading(3, f"{file.paper or 'Claims'}"))
        source: Block = (Paragraph(f"{PAPER_CLAIMS}, shipped with the harness: "
                                   f"{_verdict_counts(results)}.") if shipped else
                         Items([Link(_relative(file.path, out), _relative(file.path, out)),
                                f"{_verdict_counts(results)}"]))
        blocks.append(source)
        rows, classes = [], []
        for result in results:
            claim = result.claim
            text = [claim.claim, f"({claim.id})"] + ([f"Note: {claim.note}"] if claim.note else [])
            checks = []
            for check in result.checks:
                checks.append(f"{SYMBOLS[check.verdict]} {check.check.describe()}")
                checks += [f"    {line}" for line in check.evidence]
            verdict = [SYMBOLS[result.verdict]]
            if result.verdict == INCONCLUSIVE and result.seeds_needed:
                verdict.append(f"~{result.seeds_needed} seeds per model would decide it")
            rows.append([verdict, text, result.task, claim.source, checks])
            classes.append(result.verdict.replace(" ", "-"))
        blocks.append(Table(["", "claim", "task", "source", "checks and numbers"], rows, classes))
    return blocks


def _environment_blocks(records: list[dict[str, Any]]) -> list[Block]:
    rows = []
    for key in _ENVIRONMENT_KEYS:
        values: dict[str, int] = {}
        for record in records:
            value = record.get("environment", {}).get(key)
            values[str(value)] = values.get(str(value), 0) + 1
        rows.append([key, [f"{value} ({count} runs)" if len(values) > 1 else value
                           for value, count in values.items()]])
    commands = dict.fromkeys(" ".join(_command(record)) for record in records)
    started = sorted(r["started_at"] for r in records if r.get("started_at"))
    finished = sorted(r["finished_at"] for r in records if r.get("finished_at"))
    blocks: list[Block] = [Heading(2, "Environment", "environment"),
                           Table(["", "value"], rows, align_numbers=False)]
    if started and finished:
        blocks.append(Paragraph(f"Runs started {started[0]} and finished by {finished[-1]}."))
    return blocks + [Paragraph("Commands:"), Items([c for c in commands if c])]


def _command(record: dict[str, Any]) -> list[str]:
    """The command line of a run, with the program as its base name."""
    argv = list(record.get("environment", {}).get("argv") or [])
    return [os.path.basename(argv[0]), *argv[1:]] if argv else []


def _verdict_counts(results: list[ClaimResult]) -> str:
    counts = {symbol: 0 for symbol in SYMBOLS}
    for result in results:
        counts[result.verdict] += 1
    return ", ".join(f"{SYMBOLS[v]} {n}" for v, n in counts.items())


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` with forward slashes (for links in the page)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
