"""Run setting ``precision``: every task's data and model in it, set per run (nothing left to
the next run of the process, nor to a worker's next run), in the key and the record; a task
that ignores it, and a half precision on the CPU, fail the run with the reason."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import datasets

from harness.running.checkpoints import Checkpoints
from harness.running.driver import run_suite
from harness.running.precision import in_precision
from harness.running.runner import build_run, execute_run, task_options
from harness.suites.loader import SuiteError, suite_from_document
from tests.conftest import CPU, make_spec
from tests.image_files import random_idx_split, write_idx
from tests.sequence_files import trust_written, write_plane_vibration, write_silverbox, write_walker
from tests.test_images import trust_written_idx

TINY = {"inner": 10, "outer": 20}


def _floats(tensors) -> list[torch.Tensor]:
    """The floating tensors among a batch's parts (a tensor, or tuples/lists of them)."""
    if isinstance(tensors, torch.Tensor):
        return [tensors] if tensors.is_floating_point() else []
    if isinstance(tensors, (tuple, list)):
        return [t for part in tensors for t in _floats(part)]
    return []


def test_a_float64_point_cloud_run_trains_float64_parameters_on_float64_data(registry, tmp_path,
                                                                             monkeypatch):
    task = registry.tasks["point_cloud"]
    made = []

    def data(*args, **kwargs):
        made.append(type(task).data(task, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(task, "data", data)
    spec = make_spec(seed=0, epochs=1, task_options=TINY, precision="float64")
    checkpoints = Checkpoints(tmp_path)
    record = execute_run(spec, registry, CPU, checkpoints=checkpoints)
    assert record["status"] == "ok" and record["config"]["precision"] == "float64"
    parameters = checkpoints.read(spec.key, [spec])["model"]
    assert parameters and {value.dtype for value in parameters.values()} == {torch.float64}
    (x, y), = made[0].train
    assert x.dtype == torch.float64 and y.dtype == torch.float64
    assert torch.get_default_dtype() == torch.float32  # restored after the run


def test_a_float64_run_then_a_float32_run_in_one_process(registry, tmp_path):
    """Each run in its own precision, whatever the process's default dtype was and whatever the
    run before it set: the float32 run after a float64 one is the float32 run alone, to the bit
    (its loss differs from the float64 run's in the low bits)."""
    float32 = make_spec(seed=0, epochs=1, task_options=TINY)
    float64 = make_spec(seed=0, epochs=1, task_options=TINY, precision="float64")
    alone = execute_run(float32, registry, CPU)
    wide = execute_run(float64, registry, CPU)
    after = execute_run(float32, registry, CPU)
    assert [e["loss"] for e in after["epochs"]] == [e["loss"] for e in alone["epochs"]]
    assert wide["epochs"][0]["loss"] != alone["epochs"][0]["loss"]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # as a plugin module calling set_default_dtype did
    try:
        inside = execute_run(float32, registry, CPU)
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(previous)
    assert [e["loss"] for e in inside["epochs"]] == [e["loss"] for e in alone["epochs"]]


def test_a_worker_runs_each_run_in_its_own_precision(registry, tmp_path):
    """One worker process, a float64 run then a float32 run: each record as the run alone in
    this process (same losses to the bit)."""
    runs = [make_spec(seed=0, epochs=1, task_options=TINY, precision="float64"),
            make_spec(seed=0, epochs=1, task_options=TINY)]
    outcome = run_suite(runs, registry, tmp_path, "cpu", executor="local", workers=1)
    for record, spec in zip(outcome.records, runs):
        alone = execute_run(spec, registry, CPU)
        assert record["status"] == "ok"
        assert [e["loss"] for e in record["epochs"]] == [e["loss"] for e in alone["epochs"]]
    assert outcome.records[0]["epochs"][0]["loss"] != outcome.records[1]["epochs"][0]["loss"]


def test_precision_is_in_the_key_and_a_float64_rerun_is_not_skipped(registry, tmp_path):
    float32 = make_spec(seed=0, epochs=1, task_options=TINY)
    float64 = make_spec(seed=0, epochs=1, task_options=TINY, precision="float64")
    assert float32.key != float64.key
    assert run_suite([float32], registry, tmp_path, "cpu").skipped == 0
    outcome = run_suite([float64], registry, tmp_path, "cpu")
    assert outcome.skipped == 0 and outcome.records[0]["config"]["precision"] == "float64"


def test_a_suite_sets_precision_and_a_wrong_one_is_named(registry, tmp_path):
    document = {"name": "p", "runs": [{"task": "point_cloud", "model": "node", "precision":
                                       "float64"}]}
    (spec,) = suite_from_document(document, tmp_path / "p.yaml", registry).runs
    assert spec.precision == "float64"
    document["runs"][0]["precision"] = "float128"
    with pytest.raises(SuiteError, match=r"runs\[0\]\.precision: 'float128'.*float32.*float64"):
        suite_from_document(document, tmp_path / "p.yaml", registry)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_a_half_precision_run_on_the_cpu_is_refused_with_the_reason(registry, precision):
    record = execute_run(make_spec(epochs=1, task_options=TINY, precision=precision), registry,
                         CPU)
    assert record["status"] == "failed" and record["epochs"] == []
    assert f"precision {precision} runs on a CUDA device only" in record["error"]
    assert torch.get_default_dtype() == torch.float32


def test_a_task_that_ignores_the_precision_fails_its_run_saying_so(registry, monkeypatch):
    task = registry.tasks["point_cloud"]
    build = type(task).build_model

    def float32_head(ctx):
        model = build(task, ctx)
        model.extra = nn.Parameter(torch.zeros(3, dtype=torch.float32))
        return model

    monkeypatch.setattr(task, "build_model", float32_head)
    record = execute_run(make_spec(epochs=1, task_options=TINY, precision="float64"), registry,
                         CPU)
    assert record["status"] == "failed"
    assert "extra (float32), not the run's precision float64" in record["error"]
    assert "torch.get_default_dtype()" in record["error"]


@pytest.fixture
def every_data(tmp_path, monkeypatch):
    """A data root with small files for every task that reads files (CIFAR-10 left out)."""
    write_plane_vibration(tmp_path, 400)
    write_walker(tmp_path, [200] * 10)
    write_silverbox(tmp_path, 400)
    trust_written(monkeypatch, tmp_path)
    rng = np.random.default_rng(0)
    for dataset, folder in ((datasets.MNIST, "MNIST"), (datasets.FashionMNIST, "FashionMNIST")):
        raw = tmp_path / folder / "raw"
        for split, count in (("train", 8), ("test", 8)):
            write_idx(raw, split, *random_idx_split(count, rng))
        trust_written_idx(monkeypatch, dataset, raw)
    return tmp_path


@pytest.mark.parametrize("task_name", ["point_cloud", "graph_sbm", "diffusion1d",
                                       "plane_vibration", "walker2d", "silverbox_init", "mnist",
                                       "fashion_mnist"])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_every_task_makes_its_data_and_model_in_the_runs_precision(registry, every_data,
                                                                   task_name, precision):
    task = registry.tasks[task_name]
    settings = {key: value for key, value in task.tiny.items() if key != "task_options"}
    spec = make_spec(task=task_name, model="hbnode", epochs=1, precision=precision,
                     task_options=task.tiny.get("task_options", {}), **settings)
    spec = replace(spec, data_root=str(every_data))
    dtype = getattr(torch, precision)
    built = build_run(spec, registry, CPU)
    with in_precision(precision):
        data = task.data(task_options(task, spec), spec.seed, spec.data_root, CPU,
                         spec.batch_size)
    assert {p.dtype for p in built.model.parameters()} == {dtype}
    for split in (data.train, data.test):
        batch = _floats(next(iter(split)))
        assert batch and {t.dtype for t in batch} == {dtype}, task_name
