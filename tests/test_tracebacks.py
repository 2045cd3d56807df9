"""A failed run's record keeps the whole traceback, and the page, `harness report` and
`harness run` show the plugin's frames of it first."""
from __future__ import annotations

import pytest

from harness.cli import main
from harness.plugins import load_registry
from harness.reports.page import write_page
from harness.running.runner import execute_run
from harness.running.store import ResultStore
from harness.running.tracebacks import failure_lines, frames, plugin_frames
from tests.conftest import CPU, make_spec
from tests.plugins_for_tests import Misbehaving

PLUGIN_FILE = "plugins_for_tests.py"


@pytest.fixture(scope="module")
def failed_record():
    registry = load_registry([("misbehaving", Misbehaving())])
    record = execute_run(make_spec(model="grad_of_energy", epochs=1), registry, CPU)
    assert record["status"] == "failed"
    return record


def test_the_record_keeps_the_whole_traceback_with_the_plugins_file(failed_record):
    text = failed_record["traceback"]
    every = frames(text)
    assert len(every) > 10  # the runner's frames down to torch's, not the last three
    assert any(frame.function == "_execute" for frame in every)  # the outermost: the engine
    assert "torch.autograd.grad(energy, h" in text
    own = plugin_frames(text)
    assert [frame.function for frame in own[-2:]] == ["derivatives", "energy_gradient"]
    assert all(frame.file.endswith(PLUGIN_FILE) for frame in own[-2:])
    assert "torch.autograd.grad" in own[-1].code
    innermost = every[-1]  # the failing call itself is inside torch, not the plugin's
    assert "torch" in innermost.file and not innermost.file.endswith(PLUGIN_FILE)


def test_a_summary_names_the_plugins_frames_first(failed_record):
    error, heading, *rest = failure_lines(failed_record)
    assert error == failed_record["error"]
    assert heading == "in the plugin's code (innermost last):"
    assert PLUGIN_FILE in rest[-2] and "energy_gradient" in rest[-2]
    assert rest[-1].endswith("more frames (harness, torch, Python) in the record's traceback")
    assert failure_lines({"error": "E: x", "traceback": None}) == ["E: x"]


def test_the_page_and_the_report_command_show_the_plugins_frames(failed_record, tmp_path,
                                                                 capsys):
    with ResultStore(tmp_path) as store:
        store.append(failed_record)
    written = write_page([tmp_path], formats=["png"])
    page = written.markdown.read_text()
    section = page[page.index("Failed runs"):]
    assert "energy\\_gradient" in section or "energy_gradient" in section
    assert PLUGIN_FILE in section
    assert main(["report", str(tmp_path), "--formats", "png"]) == 0
    out = capsys.readouterr().out
    assert "failed: point_cloud/grad_of_energy/seed0" in out
    assert "in the plugin's code" in out and f"{PLUGIN_FILE}:" in out
