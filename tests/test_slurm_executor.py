"""The Slurm executor (``harness_plugins.executors.slurm``, an executor plugin on submitit)
end to end through ``harness run``, with submitit's local executor standing in for Slurm
(``cluster: local``: each job a process here): a job killed mid-ensemble fails only its runs
(``worker_died``, with the epochs of the ensemble's checkpoint, which stays) while the other
job finishes, and the rerun resumes them from the checkpoint. The crawling family reaches the
jobs through ``HARNESS_PLUGINS``."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness import ExecutorUnavailable
from harness.cli import main
from harness.plugins import load_registry
from harness.running.checkpoints import Checkpoints
from harness.running.driver import run_suite
from harness.running.ensembles import ensemble_id
from harness.suites.loader import load_suite
from harness_plugins.executors import slurm
from tests.conftest import make_spec

pytest.importorskip("submitit")

SUITE = """
name: slurm-local
execution:
  executor: slurm
  ensemble: auto
  slurm: {{cluster: local, gpus: 0, cpus: 1, poll_s: 0.2, time_min: 10, folder: {jobs}}}
defaults:
  lr: 0.01
  task_options: {{inner: 10, outer: 20}}
  solver: {{backend: fast, rtol: 1.0e-3, atol: 1.0e-3}}
runs:
  - {{task: point_cloud, model: crawler, seeds: [0, 1], epochs: 6,
     model_options: {{pid_file: {pid}}}}}
  - {{task: point_cloud, model: node, seed: 0, epochs: 1}}
"""


def _kill_job_once_checkpointed(pid_file: Path, checkpoint: Path) -> threading.Thread:
    """A thread that waits until the ensemble has checkpointed and its worker has written its
    pid, then SIGKILLs the worker's parent: the submitit job's process (a lost job; the
    worker dies with it)."""
    def kill() -> None:
        deadline = time.monotonic() + 300
        while not (pid_file.exists() and checkpoint.is_file()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if time.monotonic() < deadline:
            worker = int(pid_file.read_text())
            job = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
            os.kill(job, signal.SIGKILL)
    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_a_lost_slurm_job_fails_only_its_runs_and_a_rerun_resumes_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGINS", "tests.fault_plugins")
    jobs, pid, out = tmp_path / "jobs", tmp_path / "pid", tmp_path / "out"
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(jobs=jobs, pid=pid))
    victims = [spec for spec in load_suite(suite, load_registry()).runs if spec.model == "crawler"]
    identity = ensemble_id(victims)
    checkpoints = Checkpoints(out / "checkpoints")

    killer = _kill_job_once_checkpointed(pid, checkpoints.path(identity))
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--device", "cpu"]) == 1
    killer.join(timeout=5)
    first = {record["key"]: record for record in _records(out)}
    (other,) = [record for record in first.values() if record["model"] == "node"]
    assert other["status"] == "ok" and len(other["epochs"]) == 1
    assert other["environment"]["torch_threads"] == 1  # execution.slurm.cpus reached the job
    assert list(jobs.glob("*/*.out")), "no job logs in execution.slurm.folder"
    kept = checkpoints.read(identity, victims)
    assert kept is not None, "the lost ensemble's checkpoint was dropped"
    lost = [first[spec.key] for spec in victims]
    for index, record in enumerate(lost):
        assert record["status"] == "failed" and record["failure_kind"] == "worker_died"
        assert "Slurm job" in record["error"] and "ended without its runs' records" in \
            record["error"], record["error"]
        assert record["ensemble"] == {"id": identity, "size": 2, "index": index}
        assert record["epochs"] == kept["epochs"][index] and len(record["epochs"]) >= 1

    assert main(["run", str(suite), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    again = {record["key"]: record for record in _records(out)[len(first):]}
    assert sorted(again) == sorted(spec.key for spec in victims)  # the other run was skipped
    for spec, before in zip(victims, lost):
        record = again[spec.key]
        assert record["status"] == "ok" and record["resumed_from_epoch"] == len(before["epochs"])
        assert [epoch["epoch"] for epoch in record["epochs"]] == [1, 2, 3, 4, 5, 6]
        assert record["epochs"][:len(before["epochs"])] == before["epochs"]
    assert not list((out / "checkpoints").glob("*.pt"))


def test_without_submitit_the_slurm_executor_says_what_to_install(tmp_path, monkeypatch, registry):
    monkeypatch.setattr(slurm, "submitit", None)
    spec = make_spec(model="node", epochs=1)
    with pytest.raises(ExecutorUnavailable, match=r"pip install 'harness\[slurm\]'"):
        run_suite([spec], registry, tmp_path, "cpu", executor="slurm")
    results = tmp_path / "results.jsonl"
    assert not results.exists() or not results.read_text()  # nothing ran, nothing recorded


def test_away_from_a_slurm_cluster_the_executor_says_so(tmp_path, monkeypatch, registry):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    with pytest.raises(ExecutorUnavailable, match="cannot submit jobs from here.*cluster: local"):
        run_suite([make_spec(model="node", epochs=1)], registry, tmp_path, "cpu",
                  executor="slurm")


FAKE_SLURM = {
    "srun": "exit 0",
    "sbatch": 'cp "$1" "$SBATCH_COPY"\necho "Submitted batch job 4242"',
    "sacct": 'printf "JobID|State|NodeList\\n4242|NODE_FAIL|node7\\n"',
}


def test_the_settings_reach_sbatch_and_a_failed_node_fails_the_jobs_runs(tmp_path, monkeypatch,
                                                                         registry):
    """With a stand-in for Slurm's commands (sbatch keeps the script it is given; sacct says
    the job's node failed): the suite's settings are in the job's sbatch script, and the run
    ends ``worker_died`` naming the job's state and its log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command, body in FAKE_SLURM.items():
        (bin_dir / command).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / command).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_COPY", str(tmp_path / "job.sh"))
    settings = slurm.SlurmSettings(partition="gpu", account="my-lab", time_min=240, gpus=1,
                                   cpus=8, mem_gb=32, setup=["module load cuda/12.4"],
                                   additional={"mail_type": "END"}, poll_s=0.5)
    (record,) = run_suite([make_spec(model="node", epochs=1)], registry, tmp_path / "out",
                          "auto", executor="slurm", settings=settings).records
    script = (tmp_path / "job.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=my-lab", "#SBATCH --time=240",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB",
                 "#SBATCH --mail-type=END", "#SBATCH --job-name=harness-test",
                 "module load cuda/12.4"):
        assert line in script.splitlines(), (line, script)
    assert record["failure_kind"] == "worker_died" and record["environment"]["device"] == "cuda"
    assert "Slurm job 4242 ended without its runs' records" in record["error"]
    assert "NODE_FAIL" in record["error"] and "4242_0_log.err" in record["error"]
