"""Loading suite files: expansion, precedence, data_root, and the problems a bad file reports."""
from __future__ import annotations

import textwrap
from dataclasses import fields
from pathlib import Path

import pytest

from harness import DEFAULT_DATA_ROOT, Task, hookimpl
from harness.plugins import Registry, load_registry
from harness.solvers.settings import SolverConfig
from harness.suites.levels import SCALAR_SETTINGS, STRUCTURED_SETTINGS
from harness.suites.loader import SuiteError, load_suite
from harness.suites.runspec import SETTINGS, RunSpec, default_settings, solver_checks


class Toy(Task):
    name = "toy"
    schedule = {"epochs": 50, "lr": 0.01, "batch_size": 32,
                "solver": {"method": "rk4", "tol": 1e-4, "options": {"step_size": 0.1}}}
    options = {"size": 100, "noise": 0.1, "shuffle": True, "kind": "rings", "extra": None}


class Toy2(Task):
    name = "toy2"
    schedule = {"epochs": 5}
    options = {"depth": 3}


class ToyPlugin:
    @hookimpl
    def harness_tasks(self) -> list[type[Task]]:
        return [Toy, Toy2]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(extra_plugins=[("testtask", ToyPlugin())])


@pytest.fixture(autouse=True)
def no_env_data_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_DATA_ROOT", raising=False)


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path, registry: Registry) -> list[str]:
    """The lines of the SuiteError loading ``path`` raises."""
    with pytest.raises(SuiteError) as caught:
        load_suite(path, registry)
    return str(caught.value).splitlines()


def problem(path: Path, registry: Registry, at: str) -> str:
    """The one problem reported at key path ``at``; every line names the file."""
    lines = problems(path, registry)
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    found = [line for line in lines if line.startswith(f"{path}: {at}: ")]
    assert len(found) == 1, lines
    return found[0]


# ---------------------------------------------------------------------------------------------
# Expansion and precedence.


def test_minimal_suite_takes_harness_defaults_then_task_schedule(tmp_path, registry):
    path = write(tmp_path, """
        runs:
          - task: toy
            model: node
    """)
    suite = load_suite(path, registry)
    assert (suite.name, suite.description, suite.path) == ("s", "", path)
    assert suite.data_root == str(DEFAULT_DATA_ROOT.expanduser().resolve())
    [run] = suite.runs
    assert (run.suite, run.task, run.model, run.seed) == ("s", "toy", "node", 0)
    assert (run.epochs, run.lr, run.batch_size) == (50, 0.01, 32)  # the task's schedule
    assert (run.optimizer, run.eval_every, run.grad_clip) == ("adam", 1, None)  # the harness's
    assert run.solver.method == "rk4" and run.solver.rtol == run.solver.atol == 1e-4
    assert run.solver.adjoint is True and run.solver.options == {"step_size": 0.1}
    assert default_settings()["solver"]["options"] == {}


def test_precedence_schedule_defaults_entry_grid_overrides(tmp_path, registry):
    path = write(tmp_path, """
        name: prec
        description: checks precedence
        defaults:
          epochs: 7
          lr: 0.5
          optimizer: sgd
          solver: {adjoint: false, options: {max_num_steps: 100}}
        runs:
          - task: toy
            models: [node, hbnode]
            lr: 0.25
            grad_clip: 1
            grid:
              lr: [0.125]
            overrides:
              hbnode: {lr: 0.0625, solver: {method: dopri5}, model_options: {gamma_init: -2.0}}
    """)
    suite = load_suite(path, registry)
    assert (suite.name, suite.description) == ("prec", "checks precedence")
    node, hbnode = suite.runs
    assert (node.model, node.epochs, node.optimizer) == ("node", 7, "sgd")
    assert (node.lr, node.grad_clip) == (0.125, 1.0)
    assert node.solver.method == "rk4" and node.solver.adjoint is False
    assert node.solver.options == {"step_size": 0.1, "max_num_steps": 100}  # merged key by key
    assert node.model_options == {}
    assert (hbnode.lr, hbnode.solver.method, hbnode.solver.adjoint) == (0.0625, "dopri5", False)
    assert hbnode.model_options == {"gamma_init": -2.0}


def test_tol_expands_at_its_level_and_numeric_strings_are_numbers(tmp_path, registry):
    path = write(tmp_path, """
        defaults:
          lr: 1e-2
          solver: {rtol: 1e-5}
        runs:
          - task: toy
            model: node
          - task: toy
            model: anode
            solver: {tol: 1e-7}
          - task: toy
            model: sonode
            solver: {tol: 1.0e-3, atol: 1e-6, options: {step_size: 1e-2}}
    """)
    node, anode, sonode = load_suite(path, registry).runs
    assert node.lr == 0.01 and isinstance(node.lr, float)
    assert (node.solver.rtol, node.solver.atol) == (1e-5, 1e-4)  # rtol over the schedule's tol
    assert (anode.solver.rtol, anode.solver.atol) == (1e-7, 1e-7)  # a later tol sets both
    assert (sonode.solver.rtol, sonode.solver.atol) == (1e-3, 1e-6)  # atol beside tol wins
    assert sonode.solver.options == {"step_size": 0.01}


def test_task_options_merge_and_take_the_type_of_their_default(tmp_path, registry):
    path = write(tmp_path, """
        defaults:
          task_options: {size: 10, noise: 1}
        runs:
          - task: toy
            model: node
            task_options: {noise: 2e-1, shuffle: false, kind: moons, extra: [1, 2]}
    """)
    [run] = load_suite(path, registry).runs
    assert run.task_options == {"size": 10, "noise": 0.2, "shuffle": False, "kind": "moons",
                                "extra": [1, 2]}


def test_every_run_setting_is_accepted(tmp_path, registry):
    path = write(tmp_path, """
        runs:
          - task: toy
            model: ghbnode
            epochs: 3
            lr: 0.1
            batch_size: null
            optimizer: adamw
            solver: {method: euler, rtol: 0.1, atol: 0.2, adjoint: false, options: {}}
            widths: {n: 2, h: 4}
            model_options: {gamma_init: -1.0, xi_init: 0.5, sigma: hardtanh}
            task_options: {size: 5}
            eval_every: 2
            grad_clip: 0.5
    """)
    [run] = load_suite(path, registry).runs
    assert set(run.config()) - {"task", "model", "seed"} == set(SETTINGS)
    assert (run.batch_size, run.eval_every, run.grad_clip) == (None, 2, 0.5)
    assert run.widths == {"n": 2, "h": 4}
    assert run.model_options == {"gamma_init": -1.0, "xi_init": 0.5, "sigma": "hardtanh"}


@pytest.mark.parametrize("seeds, expected", [
    ("seed: 3", [3]),
    ("seeds: [4, 1]", [4, 1]),
    ("seeds: {start: 10, count: 3}", [10, 11, 12]),
    ("seeds: {count: 2}", [0, 1]),
    ("", [0]),
])
def test_seed_forms(tmp_path, registry, seeds, expected):
    path = write(tmp_path, f"""
        runs:
          - task: toy
            model: node
            {seeds}
    """)
    assert [run.seed for run in load_suite(path, registry).runs] == expected


def test_expansion_order_and_grid_cartesian_product(tmp_path, registry):
    path = write(tmp_path, """
        runs:
          - tasks: [toy, toy2]
            models: [node, hbnode]
            seeds: [0, 1]
            grid:
              solver.tol: [1.0e-3, 1.0e-5]
              epochs: [1, 2, 3]
    """)
    runs = load_suite(path, registry).runs
    assert len(runs) == 2 * 2 * (2 * 3) * 2
    first = [(r.task, r.model, r.solver.rtol, r.epochs, r.seed) for r in runs[:13]]
    assert first[:4] == [("toy", "node", 1e-3, 1, 0), ("toy", "node", 1e-3, 1, 1),
                         ("toy", "node", 1e-3, 2, 0), ("toy", "node", 1e-3, 2, 1)]
    assert first[6] == ("toy", "node", 1e-5, 1, 0)
    assert first[12] == ("toy", "hbnode", 1e-3, 1, 0)
    assert runs[24].task == "toy2"


def test_duplicate_runs_keep_the_first(tmp_path, registry):
    path = write(tmp_path, """
        runs:
          - task: toy
            models: [node, anode]
            seeds: [0, 1]
          - task: toy
            model: node
            seeds: {start: 1, count: 2}
    """)
    runs = load_suite(path, registry).runs
    assert [r.label for r in runs] == ["toy/node/seed0", "toy/node/seed1", "toy/anode/seed0",
                                       "toy/anode/seed1", "toy/node/seed2"]


def test_data_root_precedence(tmp_path, registry, monkeypatch):
    with_root = write(tmp_path, """
        data_root: ../data
        runs: [{task: toy, model: node}]
    """, name="with_root.yaml")
    without_root = write(tmp_path, "runs: [{task: toy, model: node}]\n", name="without.yaml")
    suite_root = str((tmp_path.parent / "data").resolve())

    monkeypatch.setenv("HARNESS_DATA_ROOT", "/from/env")
    assert load_suite(with_root, registry, data_root="/from/cli").data_root == "/from/cli"
    suite = load_suite(with_root, registry)
    assert suite.data_root == suite_root and suite.runs[0].data_root == suite_root
    assert load_suite(without_root, registry).data_root == "/from/env"
    monkeypatch.delenv("HARNESS_DATA_ROOT")
    default = str(DEFAULT_DATA_ROOT.expanduser().resolve())
    assert load_suite(without_root, registry).data_root == default  # the one rule's last step
    monkeypatch.chdir(tmp_path)  # a relative --data-root is the working directory's
    assert load_suite(with_root, registry, data_root="here").data_root == str(tmp_path / "here")


# ---------------------------------------------------------------------------------------------
# Problems.


def test_missing_file(tmp_path, registry):
    path = tmp_path / "nope.yaml"
    assert problems(path, registry) == [f"{path}: file not found; valid: a path to a suite YAML file"]


def test_yaml_syntax_error_names_the_line(tmp_path, registry):
    path = write(tmp_path, "runs:\n  - task: toy\n    model: [node\n")
    [line] = problems(path, registry)
    assert line.startswith(f"{path}: line 4, column 1: invalid YAML: ")


def test_a_key_given_twice_names_both_lines(tmp_path, registry):
    path = write(tmp_path, """
        runs:
          - task: toy
            model: node
            epochs: 1
            lr: 0.1
            epochs: 100
    """)
    [line] = problems(path, registry)
    assert line.startswith(f"{path}: line 7, column 5: invalid YAML: ")
    assert "key 'epochs' is given twice, on line 5 and line 7" in line
    path = write(tmp_path, """
        base: &base {task: toy, model: node, epochs: 1}
        runs: [{<<: *base, epochs: 2}]
    """)  # a key may override the keys a merge key brings in
    assert "unknown key 'base'" in problem(path, registry, "base")  # read, then checked


@pytest.mark.parametrize("text", ["runs: " + "[" * 5000, "runs: " + "[" * 50 + "]" * 50])
def test_too_deep_nesting_is_one_clear_error(tmp_path, registry, text):
    path = write(tmp_path, text)
    [line] = problems(path, registry)
    assert line.startswith(f"{path}: line 1, column 56: invalid YAML: nested more than 50 levels")
    path = write(tmp_path, "runs: " + "[" * 49 + "]" * 49)  # with the top-level mapping: 50
    assert "is not a mapping" in problem(path, registry, "runs[0]")


def test_an_alias_bomb_is_one_clear_error_not_a_full_memory(tmp_path, registry):
    """Eight anchors, each ten of the one before: 10**8 values once expanded."""
    lines = ["a0: &a0 [node, node, node, node, node, node, node, node, node, node]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = write(tmp_path, "\n".join([*lines, "runs: [{task: toy, models: *a8}]"]))
    [line] = problems(path, registry)
    assert "expands to more than 100000 values once its aliases (*name) are resolved" in line


def test_a_suite_that_is_not_utf8_names_the_file(tmp_path, registry):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: caf\xe9\nruns: []\n")
    [line] = problems(path, registry)
    assert line == f"{path}: not UTF-8 text (byte 9); valid: a suite YAML file in UTF-8"


@pytest.mark.parametrize("name", ["../../x", "/abs", ".hidden", "-x", "a b", "x" * 101, "", "é"])
def test_a_suite_name_is_one_plain_file_name(tmp_path, registry, name):
    path = write(tmp_path, f"name: '{name}'\nruns: [{{task: toy, model: node}}]\n")
    line = problem(path, registry, "name")
    assert f"{name!r} is not a suite name; valid: 1 to 100 letters" in line
    assert "'.', '_' or '-', not starting with '.' or '-'" in line


def test_a_file_name_that_is_no_suite_name_needs_a_name_key(tmp_path, registry):
    path = write(tmp_path, "runs: [{task: toy, model: node}]\n", name="..yaml")
    assert "'.' is not a suite name" in problem(path, registry, "name (none given: the file's name)")
    path = write(tmp_path, "runs: [{task: toy, model: node}]\n", name="v1.2_x-y.yaml")
    assert load_suite(path, registry).name == "v1.2_x-y"


@pytest.mark.parametrize("text, expected", [
    ("- a\n", "top level: ['a'] is not a mapping; valid: a mapping with keys name, "),
    ("", "top level: empty file"),
])
def test_top_level_not_a_mapping(tmp_path, registry, text, expected):
    path = write(tmp_path, text)
    [line] = problems(path, registry)
    assert line.startswith(f"{path}: {expected}")


@pytest.mark.parametrize("runs, what", [
    ("", "missing"),
    ("runs: []", "[] is not a non-empty list"),
    ("runs: {task: toy}", "{'task': 'toy'} is not a non-empty list"),
])
def test_missing_or_empty_runs(tmp_path, registry, runs, what):
    path = write(tmp_path, f"name: x\n{runs}\n")
    line = problem(path, registry, "runs")
    assert line.endswith(f"runs: {what}; valid: a non-empty list of run entries")


@pytest.mark.parametrize("text, at, bad, valid", [
    ("nmae: x\nruns: [{task: toy, model: node}]", "nmae", "unknown key 'nmae'",
     "(did you mean 'name'?)"),
    ("runs: [{task: toy, model: node, epoch: 3}]", "runs[0].epoch", "unknown key 'epoch'",
     "(did you mean 'epochs'?)"),
    ("defaults: {solver: {tl: 1.0e-3}}\nruns: [{task: toy, model: node}]", "defaults.solver.tl",
     "unknown solver key 'tl'",
     "valid: adjoint, atol, backend, max_nfe, method, options, rtol, tol (did you mean 'tol'?)"),
    ("runs: [{task: toy, model: node, grid: {solver.rtl: [1]}}]", "runs[0].grid.solver.rtl",
     "unknown solver key 'rtl'", "(did you mean 'rtol'?)"),
    ("runs: [{task: toy, model: node, grid: {optimiser: [sgd]}}]", "runs[0].grid.optimiser",
     "unknown key 'optimiser'", "(did you mean 'optimizer'?)"),
    ("runs: [{task: toy, model: node, seeds: {start: 0, cout: 2}}]", "runs[0].seeds.cout",
     "unknown key 'cout'", "valid: count, start (did you mean 'count'?)"),
    ("runs: [{task: toy, models: [node, hbnode], overrides: {hbnode: {epochz: 1}}}]",
     "runs[0].overrides.hbnode.epochz", "unknown key 'epochz'", "(did you mean 'epochs'?)"),
    ("runs: [{task: toy, models: [node, hbnode], overrides: {hbnod: {lr: 1}}}]",
     "runs[0].overrides.hbnod", "'hbnod' is not a model of this entry",
     "valid: hbnode, node (did you mean 'hbnode'?)"),
    ("runs: [{task: toy, models: [node, hbnode], overrides: {sonode: {lr: 1}}}]",
     "runs[0].overrides.sonode", "'sonode' is not a model of this entry", "valid: hbnode, node"),
])
def test_unknown_keys(tmp_path, registry, text, at, bad, valid):
    path = write(tmp_path, text + "\n")
    line = problem(path, registry, at)
    assert bad in line and valid in line, line


@pytest.mark.parametrize("setting, at, bad, valid", [
    ("epochs: -1", "epochs", "-1 is negative", "valid: an integer >= 0"),
    ("epochs: ten", "epochs", "'ten' is not an integer", "valid: an integer >= 0"),
    ("epochs: true", "epochs", "True is not an integer", "valid: an integer >= 0"),
    ("eval_every: 0", "eval_every", "0 is not > 0", "valid: an integer > 0"),
    ("lr: 0", "lr", "0 is not > 0", "valid: a number > 0"),
    ("lr: fast", "lr", "'fast' is not a finite number", "valid: a number > 0"),
    ("batch_size: 0", "batch_size", "0 is not > 0", "valid: an integer > 0 or null"),
    ("grad_clip: .nan", "grad_clip", "nan is not a finite number", "valid: a number > 0 or null"),
    ("optimizer: adamm", "optimizer", "'adamm' is not an optimizer",
     "valid: adam, adamw, sgd (did you mean 'adam'?)"),
    ("solver: {method: dopri}", "solver.method", "'dopri' is not a solver",
     "valid: adaptive_heun, backward_euler, bdf2, bdf3, bdf4, bosh3, crank_nicolson, dopri5, "),
    ("solver: {method: dopri}", "solver.method", "", "(did you mean 'dopri5'?)"),
    ("solver: {adjoint: 'yes'}", "solver.adjoint", "'yes' is not a boolean", "valid: true or false"),
    ("solver: {tol: -1.0e-3}", "solver.tol", "-0.001 is not > 0", "valid: a number > 0"),
    ("solver: dopri5", "solver", "'dopri5' is not a mapping", "valid: a mapping with keys method"),
    ("solver: {options: 3}", "solver.options", "3 is not a mapping", "valid: a mapping of the solver backend's options"),
    ("widths: {n: 0}", "widths.n", "0 is not > 0", "valid: an integer > 0"),
    ("widths: 3", "widths", "3 is not a mapping", "or null"),
    ("eval_every: 1.5", "eval_every", "1.5 is not an integer", "valid: an integer > 0"),
    ("model_options: {gama_init: 1}", "model_options.gama_init",
     "unknown option 'gama_init' for model 'hbnode'",
     "valid: gamma_init, xi_init (did you mean 'gamma_init'?)"),
    ("task_options: {sise: 3}", "task_options.sise", "unknown option 'sise' for task 'toy'",
     "(did you mean 'size'?)"),
    ("task_options: {size: 2.5}", "task_options.size", "2.5 is not an integer", "valid: an integer"),
    ("task_options: {noise: lots}", "task_options.noise", "'lots' is not a finite number",
     "valid: a number"),
    ("task_options: {shuffle: 1}", "task_options.shuffle", "1 is not a boolean",
     "valid: true or false"),
    ("task_options: {kind: 3}", "task_options.kind", "3 is not a string", "valid: a string"),
])
def test_bad_settings(tmp_path, registry, setting, at, bad, valid):
    """Each bad setting is reported where it is: in an entry, and in the suite's defaults."""
    entry = f"runs:\n  - {{task: toy, model: hbnode, {setting}}}\n"
    defaults = f"defaults: {{{setting}}}\nruns: [{{task: toy, model: hbnode}}]\n"
    for where, text in [(f"runs[0].{at}", entry), (f"defaults.{at}", defaults)]:
        line = problem(write(tmp_path, text), registry, where)
        assert bad in line and valid in line, line


def test_model_options_are_checked_against_every_model_they_apply_to(tmp_path, registry):
    path = write(tmp_path, """
        defaults:
          model_options: {gamma_init: -1.0}
        runs:
          - task: toy
            models: [hbnode, node]
            overrides:
              hbnode: {model_options: {sigma: tanh}}
    """)
    assert problems(path, registry) == [
        f"{path}: runs[0].overrides.hbnode.model_options.sigma: unknown option 'sigma' for model "
        "'hbnode'; valid: gamma_init, xi_init",
        f"{path}: defaults.model_options.gamma_init: unknown option 'gamma_init' for model 'node'; "
        "valid: none",
    ]


def test_task_options_are_checked_against_every_task_they_apply_to(tmp_path, registry):
    path = write(tmp_path, """
        runs:
          - tasks: [toy, toy2]
            model: node
            task_options: {size: 3}
    """)
    line = problem(path, registry, "runs[0].task_options.size")
    assert "unknown option 'size' for task 'toy2'; valid: depth" in line


@pytest.mark.parametrize("entry, at, bad, valid", [
    ("{task: toy, tasks: [toy], model: node}", "runs[0]", "both 'task' and 'tasks' given",
     "valid: exactly one of them"),
    ("{task: toy, model: node, models: [node]}", "runs[0]", "both 'model' and 'models' given",
     "valid: exactly one of them"),
    ("{model: node}", "runs[0]", "no 'task' or 'tasks' given", "toy, toy2"),
    ("{task: toy}", "runs[0]", "no 'model' or 'models' given", "anode, ghbnode, "),
    ("{task: tyo, model: node}", "runs[0].task", "unknown task 'tyo'", "(did you mean 'toy'?)"),
    ("{tasks: [toy, tiy2], model: node}", "runs[0].tasks[1]", "unknown task 'tiy2'",
     "(did you mean 'toy2'?)"),
    ("{task: toy, models: [node, hbnod]}", "runs[0].models[1]", "unknown model 'hbnod'",
     "sonode (did you mean 'hbnode'?)"),  # and any installed plugin's
    ("{task: toy, models: []}", "runs[0].models", "[] is not a non-empty list",
     "valid: a non-empty list of model names"),
    ("{task: toy, model: [node]}", "runs[0].model", "unknown model ['node']", "anode, ghbnode"),
    ("{task: toy, model: node, grid: {lr: 0.1}}", "runs[0].grid.lr", "0.1 is not a non-empty list",
     "valid: a non-empty list of values to sweep"),
    ("{task: toy, model: node, grid: {lr: []}}", "runs[0].grid.lr", "[] is not a non-empty list",
     "valid: a non-empty list"),
    ("{task: toy, model: node, grid: {lr: [0.1, -1]}}", "runs[0].grid.lr", "-1 is not > 0",
     "valid: a number > 0"),
    ("{task: toy, model: node, grid: [lr]}", "runs[0].grid", "['lr'] is not a mapping",
     "valid: a mapping of dotted run-setting path"),
    ("{task: toy, model: node, seed: -1}", "runs[0].seed", "-1 is negative", "valid: an integer >= 0"),
    ("{task: toy, model: node, seeds: [0, one]}", "runs[0].seeds[1]", "'one' is not an integer",
     "valid: an integer >= 0"),
    ("{task: toy, model: node, seeds: [1, 1]}", "runs[0].seeds[1]", "seed 1 is listed twice",
     "valid: distinct seeds"),
    ("{task: toy, model: node, seeds: []}", "runs[0].seeds", "[] is not a non-empty list",
     "valid: a non-empty list of integers >= 0, or {start: 0, count: N}"),
    ("{task: toy, model: node, seed: 0, seeds: [1]}", "runs[0]", "both 'seed' and 'seeds' given",
     "valid: exactly one of them"),
    ("{task: toy, model: node, seeds: {start: 0}}", "runs[0].seeds.count", "missing",
     "valid: an integer > 0"),
    ("{task: toy, model: node, seeds: {start: 0, count: 0}}", "runs[0].seeds.count", "0 is not > 0",
     "valid: an integer > 0"),
    ("{task: toy, model: node, overrides: [node]}", "runs[0].overrides", "['node'] is not a mapping",
     "valid: a mapping of model name to run settings"),
    ("toy", "runs[0]", "'toy' is not a mapping", "valid: a run entry"),
])
def test_bad_entries(tmp_path, registry, entry, at, bad, valid):
    path = write(tmp_path, f"runs:\n  - {entry}\n")
    line = problem(path, registry, at)
    assert bad in line and valid in line, line


@pytest.mark.parametrize("text, at, bad", [
    ("name: 3", "name", "3 is not a suite name"),
    ("description: [a]", "description", "['a'] is not a string"),
    ("data_root: 1", "data_root", "1 is not a string"),
    ("defaults: [epochs]", "defaults", "['epochs'] is not a mapping"),
    ("defaults: {seeds: [0, 1]}", "defaults.seeds",
     "seeds are given per run entry, not in defaults; valid: `seeds:` (or `seed:`) in each entry"),
    ("defaults: {seed: 3}", "defaults.seed", "seeds are given per run entry, not in defaults"),
])
def test_bad_top_level_values(tmp_path, registry, text, at, bad):
    path = write(tmp_path, f"{text}\nruns: [{{task: toy, model: node}}]\n")
    assert bad in problem(path, registry, at)


def test_every_problem_is_reported_at_once(tmp_path, registry):
    path = write(tmp_path, """
        nmae: x
        defaults: {epochs: -1}
        runs:
          - task: toy
            models: [node, hbnod]
            lr: 0
          - task: toy
            model: node
            solver: {method: dopri, adjoint: 'yes'}
    """)
    lines = problems(path, registry)
    assert [line.split(": ")[1] for line in lines] == [
        "nmae", "runs[0].models[1]", "runs[0].lr", "runs[1].solver.method", "runs[1].solver.adjoint",
        "defaults.epochs"]


def test_a_bad_task_schedule_is_reported(tmp_path):
    class Broken(Task):
        name = "broken"
        schedule = {"epochs": -2, "solver": {"method": "nope"}}

    class Plugin:
        @hookimpl
        def harness_tasks(self) -> list[type[Task]]:
            return [Broken]

    registry = load_registry(extra_plugins=[("broken", Plugin())])
    path = write(tmp_path, "runs: [{task: broken, model: node}]\n")
    lines = problems(path, registry)
    assert f"{path}: task 'broken' schedule.epochs: -2 is negative; valid: an integer >= 0" in lines
    assert any(line.startswith(f"{path}: task 'broken' schedule.solver.method: 'nope' is not a solver")
               for line in lines)


# ---------------------------------------------------------------------------------------------
# One source for run settings.


def test_every_run_setting_has_one_default_one_check_and_reaches_the_record(registry):
    """A setting is one field of RunSpec: the loader checks exactly those keys, the defaults
    and the stored configuration carry each of them, and the solver's checks cover every
    field of SolverConfig."""
    assert set(SCALAR_SETTINGS) | set(STRUCTURED_SETTINGS) == set(SETTINGS)
    assert not set(SCALAR_SETTINGS) & set(STRUCTURED_SETTINGS)
    assert set(default_settings()) == set(SETTINGS)
    assert default_settings()["solver"] == SolverConfig().as_dict()
    assert set(solver_checks(registry.backends)) - {"tol"} == {
        f.name for f in fields(SolverConfig)} - {"options"}
    spec = RunSpec.from_settings("s", "toy", "node", 0, default_settings())
    assert spec == RunSpec("s", "toy", "node", 0)  # from_settings at the defaults = the fields'
    assert set(spec.config()) == {"task", "model", "seed", *SETTINGS}


def test_default_settings_are_fresh_each_time():
    first = default_settings()
    first["solver"]["options"]["step_size"] = 0.1
    first["model_options"]["gamma"] = 1.0
    assert default_settings()["solver"]["options"] == {}
    assert default_settings()["model_options"] == {}


# --- a suite's size -------------------------------------------------------------------------


@pytest.mark.parametrize("entry, at, what", [
    ("seeds: {start: 0, count: 1000000000}", "runs[0].seeds.count", "1000000000 seeds"),
    ("grid: {" + ", ".join(f"{key}: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]" for key in (
        "lr", "epochs", "eval_every", "grad_clip", "time_limit_s", "batch_size", "solver.rtol",
        "solver.atol", "task_options.size", "task_options.noise")) + "}",
     "runs[0].grid", "10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 grid points"),
    ("models: [a, b]\n    seeds: {count: 60000}", "runs[0]",
     "1 tasks x 2 models x 1 grid points x 60000 seeds = 120000 runs"),
])
def test_a_suite_too_large_to_plan_is_refused_naming_the_key_and_the_limit(tmp_path, registry,
                                                                           entry, at, what):
    """Not a MemoryError or an hour of expanding: the loader counts before it expands."""
    path = write(tmp_path, f"runs:\n  - task: toy\n    {entry}\n")
    if "models" not in entry:
        path.write_text(path.read_text() + "    model: node\n")
    else:
        path.write_text(path.read_text().replace("models: [a, b]", "models: [node, hbnode]"))
    assert problem(path, registry, at) == (f"{path}: {at}: {what}; valid: at most 100000 runs "
                                           f"in a suite (split a larger study into suites)")


def test_entries_under_the_limit_that_add_up_over_it_are_refused(tmp_path, registry):
    path = write(tmp_path, """
        runs:
          - {task: toy, model: node, seeds: {count: 60000}}
          - {task: toy, model: hbnode, seeds: {count: 60000}}
        """)
    assert problem(path, registry, "runs") == (f"{path}: runs: 120000 runs in all; valid: at "
                                               f"most 100000 runs in a suite (split a larger "
                                               f"study into suites)")


def test_twenty_thousand_seeds_load_and_plan_with_each_lookup_done_once(tmp_path, registry,
                                                                        monkeypatch):
    """Planning stays linear and light: package versions looked up once per (task, model),
    each run's key hashed once, and an explicit seed list checked for repeats in one pass (it
    was quadratic)."""
    from harness.running.plan import NEW, plan_suite
    from harness.suites import runspec

    lookups, hashes = [], []
    real_provenance, real_sha = registry.provenance, runspec.hashlib.sha256
    monkeypatch.setattr(registry, "provenance", lambda *a: lookups.append(a) or
                        real_provenance(*a))
    monkeypatch.setattr(runspec.hashlib, "sha256", lambda data: hashes.append(1) or
                        real_sha(data))
    seeds = ", ".join(map(str, range(20_000)))
    path = write(tmp_path, f"runs:\n  - {{task: toy, model: node, seeds: [{seeds}]}}\n")
    suite = load_suite(path, registry)
    plan = plan_suite(suite.runs, tmp_path / "out")
    assert len(plan.runs) == 20_000 and all(run.state == NEW for run in plan.runs)
    assert sorted(lookups) == [("model", "node"), ("task", "toy")]
    assert len(hashes) == 20_000
