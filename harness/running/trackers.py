"""Experiment trackers: observers that log every run's per-epoch metrics, NFE and times, and
its configuration, to TensorBoard or MLflow. Each is an optional extra
(``pip install 'harness[tensorboard]'``, ``'harness[mlflow]'``), imported only when asked for
(``harness run --track tensorboard --track mlflow``).

* ``tensorboard``: one event directory per run under ``OUT/tensorboard/<task>/<model>/
  seed<N>-<key>`` (``tensorboard --logdir OUT/tensorboard``); scalars per epoch, the
  configuration as the run's ``config`` text.
* ``mlflow``: one MLflow run per run in the experiment named after the suite, on the tracking
  server or store ``MLFLOW_TRACKING_URI`` names, else in ``OUT/mlflow.db`` (SQLite); metrics per
  epoch (step = epoch), the configuration as tags (``solver.method``, …), the run's status.

Observers run in the driver process (workers send their events there), so a tracker sees every
run whichever executor runs it; under Ray, which reports only a run's end, a run's epochs are
logged from its record when it ends.
"""
from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any

from harness.contract import hookimpl
from harness.running.configs import flatten
from harness.running.safe_files import Folder, check_regular
from harness.suites.runspec import RunSpec


class TrackerUnavailable(RuntimeError):
    """A tracker's library is not installed; the message says which extra to install."""


def epoch_metrics(epoch: dict[str, Any]) -> dict[str, float]:
    """The numbers of an epoch record (loss, metrics, NFE, times), without its epoch number
    and without the curves (lists) some tasks add."""
    return {name: float(value) for name, value in epoch.items()
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)}


def run_tags(run: RunSpec) -> dict[str, str]:
    """The run's configuration, flattened, as text tags, with its key and suite."""
    tags = {name: json.dumps(value) if not isinstance(value, str) else value
            for name, value in flatten(run.config()).items()}
    return {**tags, "harness.key": run.key, "harness.suite": run.suite}


class TensorBoardTracker:
    """Logs runs to TensorBoard event files (``torch.utils.tensorboard``)."""

    def __init__(self, out_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TrackerUnavailable("--track tensorboard needs TensorBoard: "
                                     "pip install 'harness[tensorboard]'") from None
        self.make_writer = SummaryWriter
        self.root = Folder(Path(out_dir)) / "tensorboard"
        self.writers: dict[str, Any] = {}

    def directory(self, run: RunSpec) -> Folder:
        return self.root / run.task / run.model / f"seed{run.seed}-{run.key[:8]}"

    def _writer(self, run: RunSpec) -> Any:
        if run.key not in self.writers:
            directory = self.directory(run)
            os.close(directory.open())  # made here, refusing a link below the results folder
            writer = self.make_writer(log_dir=str(directory.path))
            writer.add_text("config", json.dumps(run.config(), indent=2, default=str))
            self.writers[run.key] = writer
        return self.writers[run.key]

    @hookimpl
    def harness_run_started(self, run: RunSpec) -> None:
        self._writer(run)

    @hookimpl
    def harness_epoch_finished(self, run: RunSpec, epoch: dict[str, Any]) -> None:
        writer = self._writer(run)
        for name, value in epoch_metrics(epoch).items():
            writer.add_scalar(name, value, epoch["epoch"])

    @hookimpl
    def harness_run_finished(self, run: RunSpec, record: dict[str, Any]) -> None:
        unseen = run.key not in self.writers  # an executor that reports only the end
        writer = self._writer(run)
        if unseen:
            for epoch in record["epochs"]:
                self.harness_epoch_finished(run, epoch)
        last = record["epochs"][-1]["epoch"] if record["epochs"] else 0
        writer.add_scalar("wall_time_s", record["wall_time_s"], last)
        writer.add_text("status", record["status"] if record["status"] == "ok"
                        else f"{record['status']}: {record['error']}")
        writer.close()
        del self.writers[run.key]


class MLflowTracker:
    """Logs runs to MLflow through its client (no global active run, so runs of parallel
    workers interleave safely)."""

    def __init__(self, out_dir: Path, tracking_uri: str | None = None) -> None:
        try:
            from mlflow.entities import Metric
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise TrackerUnavailable("--track mlflow needs MLflow: pip install 'harness[mlflow]'") \
                from None
        self.metric = Metric
        given = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        self.database = None if given else Path(out_dir).resolve() / "mlflow.db"
        self.uri = given or f"sqlite:///{self.database}"
        self.make_client = MlflowClient
        self.experiments: dict[str, str] = {}
        self.runs: dict[str, str] = {}

    @functools.cached_property
    def client(self) -> Any:
        """The MLflow client, made when the first run starts: under the results folder's lock,
        since it creates ``mlflow.db`` there (sqlite follows links: one planted there is
        refused)."""
        if self.database is not None:
            check_regular(self.database)
        return self.make_client(tracking_uri=self.uri)

    def _experiment(self, suite: str) -> str:
        if suite not in self.experiments:
            found = self.client.get_experiment_by_name(suite)
            self.experiments[suite] = (found.experiment_id if found
                                       else self.client.create_experiment(suite))
        return self.experiments[suite]

    def _run(self, run: RunSpec) -> str:
        if run.key not in self.runs:
            created = self.client.create_run(self._experiment(run.suite), run_name=run.label,
                                             tags=run_tags(run))
            self.runs[run.key] = created.info.run_id
        return self.runs[run.key]

    @hookimpl
    def harness_run_started(self, run: RunSpec) -> None:
        self._run(run)

    @hookimpl
    def harness_epoch_finished(self, run: RunSpec, epoch: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        metrics = [self.metric(name, value, now, epoch["epoch"])
                   for name, value in epoch_metrics(epoch).items()]
        self.client.log_batch(self._run(run), metrics=metrics)

    @hookimpl
    def harness_run_finished(self, run: RunSpec, record: dict[str, Any]) -> None:
        unseen = run.key not in self.runs
        run_id = self._run(run)
        if unseen:
            for epoch in record["epochs"]:
                self.harness_epoch_finished(run, epoch)
        self.client.log_metric(run_id, "wall_time_s", record["wall_time_s"])
        self.client.set_tag(run_id, "harness.status", record["status"])
        if record["error"]:
            self.client.set_tag(run_id, "harness.error", record["error"][:5000])
        self.client.set_terminated(run_id, "FINISHED" if record["status"] == "ok" else "FAILED")
        del self.runs[run.key]


#: ``--track`` names and the tracker each makes from the results directory.
TRACKERS = {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker}
