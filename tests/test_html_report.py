"""`harness report`: the page and its files, relative links only, the claims and the
environment; in Chromium (when installed) every image loads from the file system."""
from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.cli import main
from harness.reports.page import write_page
from tests.result_records import curve_run, epoch, record, write_records

CHROMIUM = shutil.which("chromium")


def _runs() -> list:
    """Point cloud: hbnode (2 seeds) and node over 3 epochs, one failed sonode run; a
    Silverbox study at initialisation."""
    runs = [curve_run("point_cloud", model, seed,
                      {"forward_nfe": [10.0 + k, 20.0, 30.0], "backward_nfe": [15.0, 25.0, 35.0 + k],
                       "loss": [1.0, 0.1, 0.01 * k], "accuracy": [0.5, 0.9, acc],
                       "test_accuracy": [0.5, 0.9, acc]}, params=params)
            for model, k, acc, params, seeds in (("hbnode", 1.0, 1.0, 568, (0, 1)),
                                                 ("node", 3.0, 0.9, 525, (0,)))
            for seed in seeds]
    runs.append(record("point_cloud", "sonode", 0, [], status="failed", params=527))
    runs += [record("silverbox_init", model, 0,
                    [epoch(0, h_norm=[1.0, 2.0, growth], h_norm_log10_growth=growth)],
                    metric="mse") for model, growth in (("node", 1.0), ("ghbnode", 0.5))]
    return runs


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("results")
    for run in _runs():
        write_records(directory, [run])
    (directory / "claims.yaml").write_text(
        "paper: The suite's own\nclaims:\n  - id: mine\n    claim: NODE is bigger than "
        "HBNODE\n    task: point_cloud\n    checks:\n      - params: {counts: {node: 600}}\n")
    return directory


@pytest.fixture(scope="module")
def page(results: Path) -> Path:
    write_page([results], formats=("png", "svg"))
    return results / "report" / "index.html"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values["src"])
        if tag == "a":
            self.links.append(values["href"])


def test_the_page_refers_only_to_files_beside_it(page: Path) -> None:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    assert len(parser.images) == 4     # point cloud: nfe, learning, time; silverbox: h-norm
    for src in parser.images:
        assert src.endswith(".png") and not src.startswith(("/", "http:", "https:", "file:"))
        assert (page.parent / src).is_file()
    for href in parser.links:
        assert href.startswith("#") or (page.parent / href).is_file()
    assert not re.search(r"(src|href)=\"(https?:)?//", page.read_text(encoding="utf-8"))


def test_the_page_content(page: Path, results: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert '<h2 id="point-cloud-test">point_cloud</h2>' in text
    assert "<td>hbnode</td><td class=\"num\">2</td><td class=\"num\">0</td>" in text
    assert ("<tr><td>point_cloud/sonode/seed 0</td><td>SolverFailure: too many steps</td></tr>"
            in text)  # the failed runs' table (a record without a traceback: the error alone)
    # the shipped paper claims, then the results dir's own claims.yaml
    assert ">Heavy Ball Neural ODEs (Xia et al., NeurIPS 2021)</h3>" in text
    assert "hbnode.yaml, shipped with the harness: ✓ holds " in text
    assert '<a href="../claims.yaml">../claims.yaml</a>' in text
    assert '<tr class="holds"><td>✓ holds</td><td>NODE cannot separate the point cloud' in text
    assert '<tr class="refuted"><td>✗ refuted</td><td>NODE is bigger than HBNODE' in text
    assert '<tr class="not-run"><td>not run</td>' in text
    assert "node: 525 vs paper 600 (-12.50%)" in text
    assert "<td>torchdiffeq</td><td>0.2.5</td>" in text and "harness run suites/x.yaml" in text
    markdown = (results / "report" / "index.md").read_text(encoding="utf-8")
    assert "## point_cloud" in markdown and "![point_cloud — " in markdown
    assert "(figures/point-cloud-test/nfe.png)" in markdown
    assert "([SVG](figures/point-cloud-test/nfe.svg))" in markdown
    assert (results / "report" / "summary.csv").is_file()


def test_the_page_shows_the_test_behind_a_verdict(tmp_path: Path) -> None:
    write_records(tmp_path, [curve_run("pc", model, seed, {"backward_nfe": [base + seed]})
                             for model, base in (("hbnode", 10.0), ("node", 40.0))
                             for seed in range(5)])
    claims = tmp_path / "mine.yaml"
    claims.write_text("claims:\n  - id: fewer\n    claim: HBNODE needs fewer\n    task: pc\n"
                      "    checks:\n      - compare: {value: backward_nfe, lower: [hbnode], "
                      "than: [node]}\n")
    written = write_page([tmp_path], formats=("png",), extra_claims=[claims], paper_claims=False)
    text = written.html.read_text(encoding="utf-8")
    assert '<tr class="holds"><td>✓ holds</td><td>HBNODE needs fewer' in text
    assert ("hbnode 12 ± 1.6 (n=5, 95% CI [10.04, 13.96]), node 42 ± 1.6 (n=5, 95% CI [40.04, "
            "43.96])") in text
    assert ("hbnode &lt; node: d = -19, difference -30 [95% CI -32.31, -27.69]; permutation "
            "test of Welch&#x27;s t = -30, p = 0.0079 (exact, 252 splits) → holds") in text


def test_record_strings_reach_index_md_escaped(tmp_path: Path) -> None:
    model = "<script>alert(1)</script>|x"
    runs = [record("point_cloud", model, 0, [epoch(1, test_accuracy=0.5)], suite="s<u>"),
            record("point_cloud", model, 1, [], suite="s<u>", status="failed")]
    runs[1]["error"] = "Boom | <img src=x onerror=alert(1)>\nnext"
    write_records(tmp_path, runs)
    written = write_page([tmp_path], formats=("png",), paper_claims=False)
    markdown = written.markdown.read_text(encoding="utf-8")
    assert "<script>" not in markdown and "<img" not in markdown and "<u>" not in markdown
    assert "# harness report: s&lt;u&gt;" in markdown
    assert "/seed 1 | Boom \\| &lt;img src=x onerror=alert(1)&gt;<br>next |" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| &lt;script&gt;"))
    assert len(re.split(r"(?<!\\)\|", row)) == 12  # the table's 10 cells, none split
    assert "&lt;script&gt;" in written.html.read_text(encoding="utf-8")  # HTML: escaped once


def test_the_command(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = tmp_path / "other"
    write_records(other, [record("point_cloud", "node", 0, [epoch(1)], suite="b", params=600)])
    out = tmp_path / "combined"
    assert main(["report", str(results), str(other), "--out", str(out), "--formats", "png",
                 "--no-paper-claims"]) == 0
    printed = capsys.readouterr().out
    # the first dir's claims.yaml sees its records only (the other dir's node has 600)
    assert (f"claims of {results / 'claims.yaml'}: 0 holds, 1 refuted, 0 inconclusive, "
            f"0 incomplete, 0 not comparable, 0 not run") in printed
    assert "## point_cloud (test)" in (out / "index.md").read_text(encoding="utf-8")
    assert "hbnode.yaml" not in printed and f"written: {out / 'index.html'}" in printed
    assert not list(out.rglob("*.svg")) and list(out.rglob("*.png"))
    assert main(["report", str(results), str(results)]) == 2
    assert "several results directories need --out" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("claims: {}\n")
    assert main(["report", str(results), "--out", str(out), "--claims", str(bad)]) == 2
    assert f"{bad}: claims: {{}} is not a list of claims" in capsys.readouterr().err
    assert main(["report", str(results), "--formats", "gif"]) == 2


# The instrumented copy's script: after load, write how many images decoded into the DOM.
_PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-images", `${loaded}/${images.length}`);
});
</script></body>"""

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_every_image_loads_in_chromium(page: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    shutil.copytree(page.parent, report)
    probe = report / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE),
                     encoding="utf-8")
    command = [CHROMIUM, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*command, "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert 'data-images="4/4"' in dom
    shot = tmp_path / "page.png"
    subprocess.run([*command, f"--screenshot={shot}", "--window-size=1200,900",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
