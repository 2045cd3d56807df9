"""The neural ODE paper's MNIST comparison (Chen et al. 2018, Table 1): ODE-Net, ResNet and RK-Net
— parameter counts, RK-Net's Runge–Kutta solve and its counted NFE, refusals, the shipped claims."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from harness.reports.claim_verdicts import evaluate
from harness.reports.claims import load_claims
from harness.running.driver import run_suite
from harness.running.ensembles import refusal
from harness.running.runner import build_run, count_parameters
from harness.suites.loader import SuiteError, suite_from_document
from harness_plugins.tasks.odenet_networks import ODEFunc, RungeKutta
from tests.conftest import CPU, FAMILIES, make_spec
from tests.result_records import curve_run
from tests.test_ensemble_images import mnist  # noqa: F401 (a fixture: 8 + 4 written images)

SUITES = Path(__file__).resolve().parents[1] / "suites"


def spec(task: str, model: str, kind: str = "family", **settings):
    return dataclasses.replace(make_spec(task=task, model=model, **settings), kind=kind)


def gn(channels: int) -> int:
    """A group normalisation's parameters: a scale and a shift per channel."""
    return 2 * channels


def conv(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


# The authors' code, layer by layer (docs/odenet.md): downsampling, ODE field, residual block, head.
DOWNSAMPLING = conv(1, 64, 3) + gn(64) + conv(64, 64, 4) + gn(64) + conv(64, 64, 4)
FIELD = gn(64) + conv(65, 64, 3) + gn(64) + conv(65, 64, 3) + gn(64)
RESBLOCK = gn(64) + conv(64, 64, 3, bias=False) + gn(64) + conv(64, 64, 3, bias=False)
HEAD = gn(64) + 64 * 10 + 10


def test_the_arithmetic_gives_the_counts_the_claims_files_test():
    assert DOWNSAMPLING + FIELD + HEAD == 208266  # ODE-Net and RK-Net; the paper: 0.22 M
    assert DOWNSAMPLING + 6 * RESBLOCK + HEAD == 576778  # ResNet; the paper: 0.60 M
    for name in ("odenet-cpu", "odenet-paper"):
        claims = {c.id: c for c in load_claims(SUITES / f"{name}.claims.yaml").claims}
        [check] = claims["odenet-architecture"].checks
        assert check.options["counts"] == {"node": 208266, "resnet": 576778, "rknet": 208266}


@pytest.mark.parametrize("task, extra", [("mnist_odenet", 0), ("fashion_mnist_odenet", 0),
                                         ("cifar10_odenet", conv(3, 64, 3) - conv(1, 64, 3))])
@pytest.mark.parametrize("model, kind, count", [("node", "family", 208266),
                                                ("resnet", "baseline", 576778),
                                                ("rknet", "baseline", 208266)])
def test_parameter_counts(registry, task, extra, model, kind, count):
    built = build_run(spec(task, model, kind), registry, CPU)
    assert count_parameters(built.model) == count + extra


def test_the_resnet_has_six_residual_blocks(registry):
    built = build_run(spec("mnist_odenet", "resnet", "baseline"), registry, CPU)
    assert sum(type(m).__name__ == "ResBlock" for m in built.model.modules()) == 6


def test_rk_net_takes_classical_runge_kutta_steps():
    """On f(t, z) = a·z one RK4 step of size 1 multiplies z by 1 + a + a²/2 + a³/6 + a⁴/24;
    two steps of 1/2 by that polynomial at a/2, squared."""

    class Linear(torch.nn.Module):
        def forward(self, t, z):
            return -0.7 * z

    z = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    a = -0.7
    for steps in (1, 2):
        h = a / steps
        factor = (1 + h + h ** 2 / 2 + h ** 3 / 6 + h ** 4 / 24) ** steps
        assert torch.allclose(RungeKutta(Linear(), steps)(z), z * factor, rtol=0, atol=1e-14)


class Ticks:
    def __init__(self):
        self.phase, self.count = "forward", 0

    def tick(self):
        self.count += 1


def test_rk_net_counts_four_evaluations_per_step_and_none_in_its_backward():
    solve = RungeKutta(ODEFunc(64, 64, 64), steps=3)
    ticks = Ticks()
    solve.count_with(ticks)
    out = solve(torch.rand(2, 64, 6, 6))
    assert ticks.count == 12
    out.sum().backward()  # backpropagation through the stages evaluates f no more
    assert ticks.count == 12


def test_records_hold_rk_nets_nfe_per_phase_and_none_for_the_resnet(registry, mnist, tmp_path):
    document = {"name": "odenet-test",
                "runs": [{"task": "mnist_odenet", "baselines": ["resnet", "rknet"],
                          "epochs": 1, "batch_size": 4,
                          "solver": {"method": "dopri5", "tol": 1e-2, "adjoint": True},
                          "overrides": {"rknet": {"widths": {"n": 64, "h": 64, "steps": 2}}}}]}
    runs = suite_from_document(document, Path("odenet-test.yaml"), registry).runs
    resnet, rknet = run_suite(runs, registry, tmp_path / "out").records
    assert resnet["status"] == rknet["status"] == "ok", (resnet.get("error"), rknet.get("error"))
    assert rknet["kind"] == "baseline"
    [epoch] = rknet["epochs"]
    # 2 RK4 steps: 8 evaluations per forward pass, in training and in evaluation; its
    # backward is backpropagation, not the run's adjoint: no backward NFE
    assert (epoch["forward_nfe"], epoch["eval_nfe"], epoch["backward_nfe"]) == (8, 8, None)
    [epoch] = resnet["epochs"]
    assert (epoch["forward_nfe"], epoch["eval_nfe"], epoch["backward_nfe"]) == (None,) * 3


@pytest.mark.parametrize("model", FAMILIES)
def test_every_family_trains_in_the_ode_net(registry, model):
    built = build_run(make_spec(task="mnist_odenet", model=model, solver={"rtol": 1e-2, "atol": 1e-2}),
                      registry, CPU)
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([3, 7])
    with built.counter.in_phase("forward"):
        loss = built.task.loss(built.model(x), y)
    loss.backward()
    assert built.counter.take()["forward"] > 0
    assert all(p.grad is not None for p in built.model.parameters())


def test_a_baseline_named_as_a_model_is_refused_with_where_it_goes(registry):
    document = {"name": "b", "runs": [{"task": "mnist_odenet", "models": ["node", "resnet"]}]}
    with pytest.raises(SuiteError) as error:
        suite_from_document(document, Path("b.yaml"), registry)
    message = str(error.value)
    assert "unknown model 'resnet'" in message and "(resnet, rknet) go under `baselines:`" in message


@pytest.mark.parametrize("model, kind", [("node", "family"), ("rknet", "baseline")])
def test_the_task_is_refused_by_ensembles(registry, model, kind):
    """Group normalisation holds parameters, which an ensemble cannot stack: said up front."""
    reason = refusal(spec("mnist_odenet", model, kind), registry)
    assert reason == "task 'mnist_odenet' does not join ensembles"


def test_baseline_widths_other_than_its_keys_are_refused_clearly(registry):
    task = registry.tasks["mnist_odenet"]
    with pytest.raises(ValueError, match=r"baseline 'resnet'.*valid: exactly the keys n, blocks"):
        task.build_baseline("resnet", {"n": 64}, task.options)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        task.build_baseline("rknet", {"n": 64, "h": 64, "steps": 0}, task.options)
    with pytest.raises(ValueError, match="n is the downsampled features' 64 channels"):
        task.build_baseline("resnet", {"n": 32, "blocks": 6}, task.options)


@pytest.mark.parametrize("model, kind", [("node", "family"), ("resnet", "baseline"),
                                         ("rknet", "baseline")])
def test_downscale_feeds_every_network_the_image_averaged_over_blocks(registry, model, kind):
    """Task option downscale k: the first convolution reads the image averaged over k × k
    blocks (28 × 28 → 14 × 14 at k = 2), the ODE block 3 × 3 features, with the parameters of
    the network at k = 1."""
    seen = {}

    def first_convolution_reads(module, inputs):
        seen.setdefault("image", inputs[0])

    def ode_block_reads(module, inputs):
        seen.setdefault("features", inputs[0])

    built = build_run(spec("fashion_mnist_odenet", model, kind,
                           task_options={"downscale": 2}), registry, CPU)
    full = build_run(spec("fashion_mnist_odenet", model, kind), registry, CPU)
    assert count_parameters(built.model) == count_parameters(full.model)
    convolutions = [m for m in built.model.modules() if isinstance(m, torch.nn.Conv2d)]
    convolutions[0].register_forward_pre_hook(first_convolution_reads)
    # the module after the downsampling: the ODE block, the first residual block or RK4's solve
    after = next(m for m in built.model.modules()
                 if type(m).__name__ in ("SolveThenRead", "ResBlock", "RungeKutta"))
    after.register_forward_pre_hook(ode_block_reads)
    x = torch.rand(2, 1, 28, 28)
    with built.counter.in_phase("forward"):
        built.model(x)
    torch.testing.assert_close(seen["image"], torch.nn.functional.avg_pool2d(x, 2))
    assert seen["features"].shape == (2, 64, 3, 3)


@pytest.mark.parametrize("value", [0, 3, 1.5, True, "2"])
def test_a_downscale_that_does_not_divide_the_side_is_refused_clearly(registry, value):
    task = registry.tasks["fashion_mnist_odenet"]
    options = {**task.options, "downscale": value}
    with pytest.raises(ValueError, match=r"task option downscale is .*valid: an integer >= 1 "
                                         r"dividing the image side 28"):
        task.build_baseline("resnet", dict(task.baselines["resnet"]), options)


def nfe_runs(task: str, per_seed: list[list[float]]) -> list:
    return [curve_run(task, "node", seed, {"forward_nfe": values})
            for seed, values in enumerate(per_seed)]


@pytest.mark.parametrize("name, task", [("odenet-cpu", "fashion_mnist_odenet"),
                                        ("odenet-paper", "mnist_odenet")])
def test_the_nfe_grows_claim_decides_on_synthetic_records(name, task):
    claims = load_claims(SUITES / f"{name}.claims.yaml")
    claims = dataclasses.replace(claims, claims=[c for c in claims.claims
                                                 if c.id == "odenet-nfe-grows"])

    def decided(per_seed):
        [result] = evaluate(claims, nfe_runs(task, per_seed))
        return result.verdict

    rising = [[20 + s, 26 + s, 32 + s] for s in range(6)]
    falling = [list(reversed(values)) for values in rising]
    assert decided(rising) == "holds"
    assert decided(falling) == "refuted"
    assert decided(rising[:3] + falling[:3]) == "inconclusive"
    assert decided(rising[:5]) == "inconclusive"  # five seeds cannot reach p < 0.05
