"""The ``slurm`` executor: each unit of work (a run, or an ensemble of seeds) one Slurm job,
submitted through submitit (``pip install 'harness[slurm]'``).

It uses only the public API (``harness.Executor``, ``harness.Work``), as any third party's
executor would: :meth:`harness.Work.job` is the picklable call submitit ships to the job, which
executes the unit in a worker process it supervises (the run's time limit, its death);
:meth:`harness.Work.lost` gives the records of a unit whose job ended without them (killed,
its node lost, cancelled, past its Slurm time limit): each run fails ``worker_died`` with the
epochs its checkpoint holds, and the checkpoint stays, so the next ``harness run`` resumes it.
The results directory must be on storage the nodes share (runs checkpoint into it; submitit
keeps its job files in its ``slurm/`` folder), and the harness and the plugins installed there.

``cluster: local`` runs each job as a local process through submitit's local executor (no
Slurm needed): a way to try a suite's set-up, and what the tests run.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from harness import Executor, ExecutorUnavailable, Work, hookimpl

try:
    import submitit
except ImportError:  # the executor says so when it is used
    submitit = None

HARNESS_CONTRACT = 2
CLUSTERS = ("slurm", "local")
#: Lines of submitit's message for a job without a result that say nothing of why.
_NOISE = ("-", "You can check", "submitit ", "No error stream", "No output/error stream")


@dataclass(frozen=True)
class SlurmSettings:
    """``execution.slurm`` in a suite: what each job asks Slurm for."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time_min: int = 60
    """Each job's time limit in minutes (``sbatch --time``): a unit's runs should fit; a job
    Slurm ends at it fails its unfinished runs (``worker_died``) and a rerun resumes them."""
    gpus: int = 1
    """GPUs per job (0: CPU jobs); with GPUs the runs train on ``cuda``."""
    cpus: int = 4
    """CPUs per job, and the torch threads of its runs."""
    mem_gb: float | None = None
    setup: list[str] = field(default_factory=list)
    """Shell lines each job runs first (``module load …``, activating the environment)."""
    additional: dict[str, Any] = field(default_factory=dict)
    """More ``sbatch`` options, by name without the dashes (``{mail_type: END}``)."""
    folder: str | None = None
    """Where submitit keeps the job files and logs; default: ``slurm/`` in the results
    directory."""
    poll_s: float = 10.0
    """How often the driver asks whether jobs ended."""
    cluster: str = "slurm"
    """"slurm", or "local": each job a process here (submitit's local executor)."""

    def __post_init__(self) -> None:
        wrong = [(self.time_min > 0, f"time_min: {self.time_min} is not > 0; valid: minutes > 0"),
                 (self.gpus >= 0, f"gpus: {self.gpus} is negative; valid: GPUs per job, >= 0"),
                 (self.cpus > 0, f"cpus: {self.cpus} is not > 0; valid: CPUs per job, > 0"),
                 (self.mem_gb is None or self.mem_gb > 0,
                  f"mem_gb: {self.mem_gb} is not > 0; valid: GB per job, > 0, or null"),
                 (self.poll_s > 0, f"poll_s: {self.poll_s} is not > 0; valid: seconds > 0"),
                 (self.cluster in CLUSTERS,
                  f"cluster: {self.cluster!r} is not a cluster; valid: {', '.join(CLUSTERS)}")]
        problems = [message for holds, message in wrong if not holds]
        if problems:
            raise ValueError("; ".join(problems))


class Slurm(Executor):
    """Each unit of work a Slurm job; at most ``workers`` jobs queued or running at once
    (default: all)."""

    name = "slurm"
    runs_ensembles = True
    Settings = SlurmSettings

    def run(self, work: Work) -> Iterator[dict]:
        settings: SlurmSettings = self.settings
        if self.device == "cuda" and not settings.gpus:
            raise ExecutorUnavailable("--device cuda with execution.slurm.gpus: 0; valid: gpus "
                                      ">= 1 for CUDA jobs, or --device cpu")
        device = "cuda" if settings.gpus and self.device != "cpu" else "cpu"
        submitter = self._submitter(work)
        waiting = deque(work.units)
        running: dict[Any, list] = {}  # submitit job → its unit
        try:
            while waiting or running:
                while waiting and len(running) < (self.workers or len(work.units)):
                    unit = waiting.popleft()
                    running[submitter.submit(work.job(unit, device, settings.cpus))] = unit
                ended = [job for job in running if job.done()]
                if not ended:
                    time.sleep(settings.poll_s)
                for job in ended:
                    unit = running.pop(job)
                    yield from work.finish(unit, _records(job, unit, work, device))
        finally:  # interrupted: cancel what is still queued or running (checkpoints stay)
            for job in running:
                job.cancel(check=False)

    def _submitter(self, work: Work) -> Any:
        """A submitit executor with this executor's settings."""
        if submitit is None:
            raise ExecutorUnavailable("the slurm executor needs submitit: pip install "
                                      "'harness[slurm]'")
        settings: SlurmSettings = self.settings
        folder = Path(settings.folder) if settings.folder else work.out_dir / "slurm"
        try:
            submitter = submitit.AutoExecutor(folder=folder / "%j", cluster=settings.cluster)
        except RuntimeError as error:  # no srun here: not a machine of a Slurm cluster
            raise ExecutorUnavailable(
                f"the slurm executor cannot submit jobs from here ({error}); run harness on a "
                f"machine of the cluster, or set execution.slurm.cluster: local to try the "
                f"suite on this one") from None
        slurm = {"partition": settings.partition, "account": settings.account,
                 "qos": settings.qos, "constraint": settings.constraint,
                 "setup": settings.setup or None,
                 "additional_parameters": settings.additional or None}
        options = {f"slurm_{key}": value for key, value in slurm.items()
                   if value is not None and settings.cluster == "slurm"}
        if settings.mem_gb is not None:
            options["mem_gb"] = settings.mem_gb
        submitter.update_parameters(name=f"harness-{work.units[0][0].suite}", nodes=1,
                                    tasks_per_node=1, timeout_min=settings.time_min,
                                    gpus_per_node=settings.gpus, cpus_per_task=settings.cpus,
                                    **options)
        return submitter


def _records(job: Any, unit: list, work: Work, device: str) -> list[dict]:
    """The records the job returned, or, when it ended without them (killed, cancelled, past
    its time limit, lost with its node, or it raised), the unit's records as lost: each run
    ``worker_died``, resumable from its checkpoint."""
    try:
        return job.result()
    except submitit.core.utils.UncompletedJobError as error:
        said = [line.strip() for line in str(error).splitlines()]
        why = [line for line in said if line and not line.startswith(_NOISE)][-1:] or ["?"]
        return work.lost(unit, f"Slurm job {job.job_id} ended without its runs' records "
                               f"({why[0]}); its log: {job.paths.stderr}", device)


@hookimpl
def harness_executors() -> list[type[Executor]]:
    return [Slurm]
