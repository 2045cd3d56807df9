"""Executors as a public plugin point: an executor's own settings, declared as a dataclass, are
read from the suite's ``execution.<name>`` and checked with the suite (the file, the key path,
what is valid, a did-you-mean); an executor from a plugin gets them, and ``harness`` exports
what an executor needs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import pytest

import harness
from harness import Executor, Work, hookimpl
from harness.plugins import load_registry
from harness.running.driver import run_suite
from harness.suites.loader import SuiteError, load_suite
from harness_plugins.executors.slurm import SlurmSettings
from tests.conftest import make_spec


@dataclass(frozen=True)
class QueueSettings:
    queue: str = "short"
    priority: int = 0
    share: float | None = None
    exclusive: bool = False
    hosts: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.priority > 10:
            raise ValueError(f"priority: {self.priority} is above 10; valid: 0 to 10")


class Queue(Executor):
    """Runs inline, remembering the settings it was made with."""

    name = "queue"
    Settings = QueueSettings
    seen: list[QueueSettings] = []

    def run(self, work: Work) -> Iterator[dict]:
        self.seen.append(self.settings)
        for unit in work.units:
            yield from work.execute(unit, "cpu")


class NotADataclass(Executor):
    name = "not_a_dataclass"
    Settings = dict

    def run(self, work: Work) -> Iterator[dict]:
        yield from ()


class QueuePlugin:
    @hookimpl
    def harness_executors(self):
        return [Queue, NotADataclass]


@pytest.fixture(scope="module")
def registry():
    return load_registry([("queue-plugin", QueuePlugin())])


def _load(tmp_path, registry, execution: str):
    path = tmp_path / "suite.yaml"
    path.write_text(f"execution: {execution}\nruns: [{{task: point_cloud, model: node}}]\n")
    return path, lambda: load_suite(path, registry)


def test_the_public_api_has_what_an_executor_needs():
    assert {"Executor", "Work", "ExecutorUnavailable"} <= set(harness.__all__)
    assert harness.Executor is Executor and harness.ExecutorUnavailable.__name__ == \
        "ExecutorUnavailable"


def test_executors_come_from_the_hook_built_in_and_plugins_alike(registry):
    assert {"inline", "local", "ray", "slurm", "queue"} <= set(registry.executors)
    assert registry.sources[("executor", "slurm")] == "slurm"  # the entry point, as a third party
    assert registry.package_of("executor", "slurm") == "harness"


def test_settings_that_are_not_a_dataclass_are_refused_at_load(registry):
    (failure,) = [f for f in registry.failures if "not_a_dataclass" in f.reason]
    assert failure.plugin == "queue-plugin"
    assert "Settings is <class 'dict'>, not a dataclass" in failure.reason
    assert "not_a_dataclass" not in registry.executors


def test_an_executors_settings_are_read_from_its_block_with_their_types(tmp_path, registry):
    _, load = _load(tmp_path, registry, "{executor: queue, queue: {queue: long, priority: 3, "
                                        "share: 1, exclusive: true, hosts: [a, b], "
                                        "limits: {gpu: 2}}, slurm: {partition: gpu, "
                                        "time_min: 30, additional: {mail_type: END}}}")
    execution = load().execution
    assert execution["queue"] == QueueSettings("long", 3, 1.0, True, ["a", "b"], {"gpu": 2})
    assert isinstance(execution["queue"].share, float)
    assert execution["slurm"] == SlurmSettings(partition="gpu", time_min=30,
                                               additional={"mail_type": "END"})


@pytest.mark.parametrize("execution, at, what, valid", [
    ("{queue: {queu: long}}", "execution.queue.queu", "unknown key 'queu'",
     "valid: exclusive, hosts, limits, priority, queue, share (did you mean 'queue'?)"),
    ("{slurm: {partiton: gpu}}", "execution.slurm.partiton", "unknown key 'partiton'",
     "(did you mean 'partition'?)"),
    ("{slurn: {partition: gpu}}", "execution.slurn", "unknown key 'slurn'",
     "valid: address, ensemble, executor, queue, slurm, workers (did you mean 'slurm'?)"),
    ("{queue: {priority: high}}", "execution.queue.priority", "'high' is not an integer",
     "valid: an integer"),
    ("{queue: {share: lots}}", "execution.queue.share", "'lots' is not a finite number",
     "valid: a number or null"),
    ("{queue: {exclusive: 1}}", "execution.queue.exclusive", "1 is not a boolean",
     "valid: true or false"),
    ("{queue: {hosts: a}}", "execution.queue.hosts", "'a' is not a list", "valid: a list"),
    ("{queue: {hosts: [1]}}", "execution.queue.hosts", "1 is not a string", "valid: a string"),
    ("{queue: {limits: {gpu: two}}}", "execution.queue.limits", "'two' is not an integer",
     "valid: an integer"),
    ("{queue: short}", "execution.queue", "'short' is not a mapping",
     "valid: a mapping with keys queue, priority, share, exclusive, hosts, limits"),
    ("{queue: {priority: 11}}", "execution.queue", "priority: 11 is above 10", "valid: 0 to 10"),
    ("{slurm: {gpus: -1, cluster: lokal}}", "execution.slurm", "gpus: -1 is negative",
     "cluster: 'lokal' is not a cluster; valid: slurm, local"),
    ("{slurm: {time_min: an hour}}", "execution.slurm.time_min", "'an hour' is not an integer",
     "valid: an integer"),
])
def test_bad_executor_settings_name_the_file_the_key_and_what_is_valid(tmp_path, registry,
                                                                       execution, at, what, valid):
    path, load = _load(tmp_path, registry, execution)
    with pytest.raises(SuiteError) as error:
        load()
    (line,) = [line for line in str(error.value).splitlines() if line.startswith(f"{path}: {at}:")]
    assert what in line and valid in line, line


def test_the_executor_gets_its_settings_and_defaults_without_them(tmp_path, registry):
    _, load = _load(tmp_path, registry, "{queue: {priority: 7}}")
    suite = load()
    spec = make_spec(model="node", epochs=1, task_options={"inner": 10, "outer": 20})
    Queue.seen.clear()
    run_suite([spec], registry, tmp_path / "a", "cpu", executor="queue",
              settings=suite.execution["queue"])
    run_suite([spec], registry, tmp_path / "b", "cpu", executor="queue")
    assert Queue.seen == [QueueSettings(priority=7), QueueSettings()]
