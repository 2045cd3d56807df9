"""The results directory check: never the file-system root, never a file."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.running.outdir import OutDirError, check_out_dir


@pytest.mark.parametrize("given", ["/", "/tmp/..", "/tmp/../tmp/.."])
def test_the_file_system_root_is_refused(given):
    with pytest.raises(OutDirError, match=r"is the file-system root; valid: a directory for"):
        check_out_dir(Path(given))


def test_a_file_is_refused_naming_it(tmp_path):
    file = tmp_path / "results.jsonl"
    file.write_text("")
    with pytest.raises(OutDirError, match=f"^{file}: is a file, not a directory; valid: "):
        check_out_dir(file)


def test_a_directory_new_or_existing_is_returned_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_out_dir(Path("results/smoke")) == tmp_path.resolve() / "results" / "smoke"
    assert check_out_dir(tmp_path / "x" / "..") == tmp_path.resolve()
