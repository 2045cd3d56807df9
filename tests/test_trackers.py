"""The experiment trackers, with the real libraries: a suite run with `--track tensorboard
--track mlflow` logs every epoch's metrics, NFE and times, and each run's configuration, and
the values read back (TensorBoard's event reader, MLflow's client) are the records' values."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.running.store import read_records
from harness.running.trackers import epoch_metrics

pytest.importorskip("tensorboard")
mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

SUITE = """
name: tracked
runs:
  - task: point_cloud
    models: [node, hbnode]
    epochs: 3
    solver: {tol: 1.0e-3}
    task_options: {inner: 10, outer: 20}
"""


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> tuple[Path, list[dict]]:
    """The suite run once with both trackers (MLflow in a SQLite store given by URI)."""
    folder = tmp_path_factory.mktemp("tracked")
    suite, out = folder / "tracked.yaml", folder / "out"
    suite.write_text(SUITE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'store.db'}")
        assert main(["run", str(suite), "--out", str(out), "--quiet", "--device", "cpu",
                     "--track", "tensorboard", "--track", "mlflow"]) == 0
    return folder, read_records(out)


def test_tensorboard_holds_every_epochs_metrics_and_the_configuration(tracked) -> None:
    folder, records = tracked
    for record in records:
        directory = (folder / "out" / "tensorboard" / "point_cloud" / record["model"]
                     / f"seed0-{record['key'][:8]}")
        events = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
        events.Reload()
        for name in ("loss", "forward_nfe", "backward_nfe", "train_time_s", "test_accuracy",
                     "eval_nfe"):
            logged = [(e.step, e.value) for e in events.Scalars(name)]
            expected = [(epoch["epoch"], epoch_metrics(epoch)[name]) for epoch in record["epochs"]]
            assert [step for step, _ in logged] == [1, 2, 3]
            assert [value for _, value in logged] == pytest.approx([v for _, v in expected],
                                                                   rel=1e-6)
        (wall,) = events.Scalars("wall_time_s")
        assert wall.value == pytest.approx(record["wall_time_s"], rel=1e-6)
        (config,) = events.Tensors("config/text_summary")
        text = config.tensor_proto.string_val[0].decode()
        assert '"model": "' + record["model"] + '"' in text and '"epochs": 3' in text


def test_mlflow_holds_every_epochs_metrics_and_the_configuration_as_tags(tracked) -> None:
    folder, records = tracked
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'store.db'}")
    experiment = client.get_experiment_by_name("tracked")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"point_cloud/node/seed0", "point_cloud/hbnode/seed0"}
    for record in records:
        run = runs[f"point_cloud/{record['model']}/seed0"]
        assert run.info.status == "FINISHED"
        tags = run.data.tags
        assert tags["model"] == record["model"] and tags["harness.key"] == record["key"]
        assert tags["solver.method"] == "dopri5" and tags["epochs"] == "3"
        assert tags["task_options.inner"] == "10" and tags["harness.status"] == "ok"
        for name in ("loss", "forward_nfe", "backward_nfe", "forward_time_s", "test_loss"):
            history = sorted((m.step, m.value)
                             for m in client.get_metric_history(run.info.run_id, name))
            assert [step for step, _ in history] == [1, 2, 3]
            assert [value for _, value in history] == pytest.approx(
                [epoch[name] for epoch in record["epochs"]], rel=1e-6)
        assert run.data.metrics["wall_time_s"] == pytest.approx(record["wall_time_s"])


def test_a_missing_tracker_library_is_a_clear_error(tmp_path, capsys, monkeypatch) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    monkeypatch.setitem(__import__("sys").modules, "mlflow.tracking", None)  # as if not installed
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--track", "mlflow"]) == 2
    assert "pip install 'harness[mlflow]'" in capsys.readouterr().err


def test_mlflow_defaults_to_a_sqlite_store_in_the_results_directory(tmp_path, monkeypatch) -> None:
    from harness.running.trackers import MLflowTracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert MLflowTracker(tmp_path).uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert MLflowTracker(tmp_path).uri == "http://tracking.example:5000"
