"""The stiff reference task and its work–precision report: the exact solution is exp(−L) h(0),
a pure solve records its error, NFE and proximal statistics, and the report draws one curve
per solver and checks chapter 5's claims on them."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.reports.aggregate import Group
from harness.reports.work_precision import (WorkPrecisionError, check_claims, draw, load_claims,
                                            points)
from harness.running.runner import execute_run
from harness_plugins.tasks.diffusion1d import Diffusion, exact_solution
from tests.conftest import CPU, make_spec


def test_the_exact_solution_is_the_matrix_exponential():
    points, dx = 16, 1 / 15
    n = torch.arange(points)
    laplacian = 2 * torch.eye(points, dtype=torch.float64)
    laplacian[n, (n + 1) % points] = laplacian[n, (n - 1) % points] = -1
    laplacian /= dx ** 2
    h0 = torch.randn(2, points, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = h0 @ torch.linalg.matrix_exp(-0.01 * laplacian).T
    torch.testing.assert_close(exact_solution(h0, 0.01, dx), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(Diffusion(points)(torch.zeros(()), h0), -h0 @ laplacian.T)


def _study(registry, **solver):
    spec = make_spec(task="diffusion1d", model="node", epochs=0, solver=solver,
                     precision="float64")  # the task's schedule's (make_spec starts from none)
    record = execute_run(spec, registry, CPU)
    assert record["status"] == "ok", record.get("error")
    return record["epochs"][0]


def test_a_pure_solve_records_error_nfe_and_proximal_statistics(registry):
    """Proximal backward Euler at step 1/2000 with a tight inner tolerance ends within 1e-6 of
    the exact solution (the dissertation's Table 5.2 reports 4.68e-7); its NFE is its inner
    iterations times its 2000 outer steps."""
    epoch = _study(registry, backend="proximal", method="backward_euler", adjoint=False,
                   options={"step_size": 5e-4, "inner_step": 0.05, "inner_tol": 1e-9})
    assert epoch["test_error"] < 1e-6
    assert epoch["eval_outer_steps"] == 2000
    assert epoch["eval_nfe"] == pytest.approx(2000 * epoch["eval_inner_iterations"])


def _group(solver: dict, error: float, nfe: float) -> Group:
    run = {"status": "ok", "metric": "error", "config": {"epochs": 0, "solver": solver},
           "epochs": [{"epoch": 0, "test_error": error, "eval_nfe": nfe, "eval_time_s": nfe / 1e4}]}
    return Group("stiff", "diffusion1d", "node", {}, [run])


EXPLICIT = [_group({"method": "dopri5", "rtol": tol}, error, nfe)
            for tol, error, nfe in [(1e-3, 1e-3, 100_000), (1e-7, 1e-8, 120_000)]]


def test_the_claims_hold_when_proximal_is_cheaper_at_matched_error_and_explicit_nfe_is_flat():
    proximal = [_group({"backend": "proximal", "method": "bdf2"}, error, nfe)
                for error, nfe in [(1e-3, 5_000), (1e-6, 30_000)]]
    curves = points(proximal + EXPLICIT)
    assert list(curves) == ["dopri5", "proximal bdf2"]
    verdicts = check_claims(load_claims(), curves)
    assert verdicts[0].startswith("✓ proximal-fewer-nfe (fewer NFE in 2 of 2")  # vs dopri5 only
    assert verdicts[1].startswith("not run")  # no adaptive_heun points


def test_a_proximal_point_dearer_than_the_explicit_solver_fails_the_claim():
    proximal = [_group({"backend": "proximal", "method": "bdf2"}, 1e-6, 500_000)]
    (verdict, _) = check_claims(load_claims(), points(proximal + EXPLICIT))
    assert verdict.startswith("✗ proximal-fewer-nfe (fewer NFE in 0 of 1")


def test_the_figure_is_drawn_for_two_solvers_only(tmp_path):
    proximal = [_group({"backend": "proximal", "method": "bdf2"}, 1e-3, 5_000)]
    assert draw(EXPLICIT, tmp_path, ("png",)) == []
    (figure,) = draw(proximal + EXPLICIT, tmp_path, ("png",))
    assert figure.files == [tmp_path / "work_precision.png"] and figure.files[0].stat().st_size
    assert "proximal-fewer-nfe" in figure.caption


def test_a_bad_claims_file_names_the_check(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("claims:\n  - id: x\n    checks:\n      - fewer_nfe: {lower: [a]}\n"
                    "      - nfe_flat: {solvers: [a]}\n")
    with pytest.raises(WorkPrecisionError, match=r"claims\[0\].checks\[0\]: unknown check "
                                                 r"'fewer_nfe'(.|\n)*missing max_ratio"):
        load_claims(path)


def test_the_grid_width_follows_points_and_a_contrary_width_is_named(registry):
    """``task_options.points`` alone sets the state's width (the record says it); a suite's
    ``widths.n`` other than the points is refused naming both."""
    spec = make_spec(task="diffusion1d", model="node", epochs=0, task_options={"points": 12},
                     solver={"method": "rk4", "options": {"step_size": 0.05}})
    record = execute_run(spec, registry, CPU)
    assert record["status"] == "ok", record.get("error")
    assert record["widths"] == {"n": 12}
    contrary = make_spec(task="diffusion1d", model="node", epochs=0, widths={"n": 10},
                         task_options={"points": 12})
    record = execute_run(contrary, registry, CPU)
    assert record["status"] == "failed"
    assert "widths.n: 10 must equal task_options.points (12)" in record["error"]
