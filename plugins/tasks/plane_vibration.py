"""Plane vibration (HBNODE paper §5.3, appendix E.4).

The F-16 ground vibration test: 5 attributes per stamp (force, voltage, three accelerations).
A seeded random 10 % of the stamps is dropped; the kept stamps are split in time, first 50 %
train, next 25 % validation, last 25 % test, each standardised with the training split's mean
and std. Each split is cut into non-overlapping segments of 65 kept stamps: the model reads the
first 64 (with the gaps between them), predicts each next stamp on the way (the one-step
regulariser) and forecasts 8 consecutive stamps of the full series starting at the segment's
65th stamp, each by one solve from the state after the last observation (the change of time
interval puts all 8 spans into one batched solve).

Loss = forecast MSE + ``one_step_weight`` × one-step MSE. The paper gives no weight; the
default 0.1 is the authors' code's. Time is counted in stamps (1/400 s).

The model: an initial-state layer fc_c reads the flattened 64×5 window (the paper's counts
need it, as the authors' code has it) and supplies the first c channels of the state, the rest start at
zero; then the ODE-RNN (f: n* → fc_h1 → ReLU → fc_h2 → ReLU → fc_n; cell: fc_{P·n} on
[state, features]); the head fc_5 reads h. The layer sees the stamps the one-step regulariser
predicts, but nothing of the 8 forecast stamps past the window; widths with ``c: 0`` build the
model without it (the state then starts at zero). See docs/parameter-counts.md for the widths.

Under the ``authors-code`` profile (docs/profiles.md) the options follow the authors' code:
``normalise: series`` (the whole series' mean and std), ``cell: authors`` (their RNN cell:
:class:`~harness_plugins.tasks.authors_code.AuthorsCell`), ``shrink: 0.01`` (their initial
shrinking, as it acts: ×1e-4 for the ODE block, the cell and the initial-state layer, ×0.01
for the head), ``reconstruction_weight: 0.1`` (the loss adds 0.1 × the MSE of each observation
read back from the state that has just read it), training windows in order (``shuffle:
false``), ``forecast: authors`` (one solve from the last observation to the first forecast
stamp, which is also a 64th one-step row, then one solve through the other 7 stamps); and lr
1e-3, then 1e-4 with a fresh Adam from epoch 51, gradients clipped at 1.0, HBNODE-RNN with a
learnable ξ·h term.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from harness import BuildContext, WidthNames, hookimpl
from harness.toolkit import (FORECAST, ODERNN, ONE_STEP, RECONSTRUCTION, Autonomous, gaps,
    InitialState, keep_stamps, mlp, pack_inputs, pack_targets, Trajectory, unpack_inputs)
from harness_plugins.tasks.authors_code import AuthorsCell, shrink_as_authors
from harness_plugins.tasks.sequence_files import locate, missing_file, read_plane_vibration
from harness_plugins.tasks.sequence_task import (SEQUENCE_OPTIONS, SequenceData, SequenceModel,
                                                 SequenceTask, sequence_data)

FEATURES = 5
INPUTS = 64        # observed stamps per segment; the 65th starts the forecast
HORIZON = 8        # forecast stamps
SPLITS = (0.5, 0.25, 0.25)
NORMALISE = ("train", "series")  # whose mean and std standardise the series
CELLS = ("dense", "authors")     # the paper's fc_{P·n} on [state, features], or the authors'
#: How the forecast is solved: "carry", the 8 spans from the last observation in one batched
#: solve; "authors", one solve to the first forecast stamp (also the 64th one-step row), then
#: one solve through the other 7 (docs/profiles.md).
FORECASTS = ("carry", "authors")


def segments(series: Tensor, stamps: Tensor, end: int, time_scale: float,
             weights: dict[int, float], forecast_steps: bool = False) -> tuple[Tensor, Tensor]:
    """Packed (x, y) of every whole 65-stamp segment of the kept ``stamps`` whose forecast
    stamps lie before ``end`` (the next split's first stamp). Target rows: the 63 next stamps
    (and with ``forecast_steps`` the first forecast stamp as a 64th), the 8 forecast stamps,
    then (with a reconstruction weight) the 64 observations. All segments are cut at once, by
    index (an ensemble's members each cut their own: a loop per segment cost a third of a
    64-member ensemble's three epochs)."""
    reconstruct = bool(weights.get(RECONSTRUCTION))
    steps = INPUTS if forecast_steps else INPUTS - 1
    roles = ([ONE_STEP] * steps + [FORECAST] * HORIZON
             + [RECONSTRUCTION] * (INPUTS if reconstruct else 0))
    starts = torch.arange(0, max(len(stamps) - INPUTS, 0), INPUTS + 1)
    segment = stamps[starts[:, None] + torch.arange(INPUTS + 1)]  # (W, 65) stamp indices
    forecast = segment[:, -1:] + torch.arange(HORIZON)
    keep = forecast[:, -1] < end
    segment, forecast = segment[keep], forecast[keep]
    if not len(segment):
        width = 2 + FEATURES
        return torch.empty(0, INPUTS + HORIZON, width), torch.empty(0, len(roles), width)
    observed = segment[:, :INPUTS]
    dtype = torch.get_default_dtype()
    elapsed = gaps(observed, observed[:, :1]).to(dtype) * time_scale
    spans = (forecast - observed[:, -1:]).to(dtype) * time_scale
    targets = torch.cat([series[segment[:, 1:steps + 1]], series[forecast],
                         *([series[observed]] if reconstruct else [])], dim=1)
    return (pack_inputs(series[observed], elapsed, spans),
            pack_targets(targets, roles, weights))


def split_windows(series: Tensor, options: dict[str, Any], generator: torch.Generator,
                  weights: dict[int, float]) -> list[tuple[Tensor, Tensor]]:
    """(x, y) of train, validation and test, after dropping stamps and standardising."""
    kept = keep_stamps(len(series), options["drop"], generator)
    n_train, n_val = int(SPLITS[0] * len(kept)), int(SPLITS[1] * len(kept))
    bounds = [0, n_train, n_train + n_val, len(kept)]
    if options["normalise"] not in NORMALISE:
        raise ValueError(f"task option normalise is {options['normalise']!r}; valid: "
                         f"{', '.join(NORMALISE)}")
    reference = series[kept[:n_train]] if options["normalise"] == "train" else series
    if options["forecast"] not in FORECASTS:
        raise ValueError(f"task option forecast is {options['forecast']!r}; valid: "
                         f"{', '.join(FORECASTS)}")
    series = (series - reference.mean(dim=0)) / reference.std(dim=0)
    parts = []
    for lo, hi in zip(bounds, bounds[1:]):
        end = int(kept[hi]) if hi < len(kept) else len(series)
        parts.append(segments(series, kept[lo:hi], end, options["time_scale"], weights,
                              forecast_steps=options["forecast"] == "authors"))
    return parts


class PlaneVibrationModel(SequenceModel):
    def __init__(self, initial: InitialState, hybrid: ODERNN, head: nn.Module,
                 reconstruct: bool = False, forecast: str = "carry") -> None:
        super().__init__()
        self.initial, self.hybrid, self.head = initial, hybrid, head
        self.reconstruct, self.forecast = reconstruct, forecast

    def run(self, x: Tensor) -> tuple[Tensor, Trajectory]:
        inputs = unpack_inputs(x)
        z0 = self.initial(inputs.features.flatten(1))
        trajectory = self.hybrid(z0, inputs.features, inputs.gaps)
        steps = trajectory.before[1:]
        if self.forecast == "carry":
            states = self.hybrid.carry(trajectory.after[-1], inputs.queries)
        else:
            states = self.authors_forecast(trajectory.after[-1], inputs.queries)
            steps = [*steps, states[:, 0]]
        one_step = self.head(self.hybrid.read(torch.stack(steps, dim=1)))
        forecast = self.head(self.hybrid.read(states))
        rows = [one_step, forecast]
        if self.reconstruct:  # each observation read back from the state that read it
            rows.append(self.head(self.hybrid.read(torch.stack(trajectory.after, dim=1))))
        return torch.cat(rows, dim=1), trajectory

    def authors_forecast(self, z: Tensor, queries: Tensor) -> Tensor:
        """States (batch, 8, P·n) at the forecast stamps as the authors' code reaches them
        (``ODE_RNN_with_Grad_Listener.forward`` in their ``base.py``, ``multiforecast`` in
        ``plane_vibration/trainpv.py``): one solve across each element's gap from the last
        observation to the first forecast stamp, then one solve from there through the others,
        whose offsets from the first are the same in every window: :func:`segments` makes the
        forecast stamps consecutive."""
        first = self.hybrid.evolve(z, queries[:, 0])
        offsets = queries[0] - queries[0, 0]
        return torch.cat([first[:, None], self.hybrid.through(first, offsets)], dim=1)


class PlaneVibration(SequenceTask):
    name = "plane_vibration"
    schedule = {"epochs": 500, "batch_size": 64, "lr": 1e-4,
                "solver": {"method": "dopri5", "rtol": 1e-7, "atol": 1e-7}}
    widths = {"node": {"n": 21, "h1": 63, "h2": 84},
              "anode": {"n": 27, "h1": 81, "h2": 108, "c": FEATURES},
              "sonode": {"n": 19, "h1": 38, "h2": 19},
              "hbnode": {"n": 20, "h1": 20, "h2": 20},
              "ghbnode": {"n": 20, "h1": 20, "h2": 20}}
    #: c: the state channels the initial-state layer supplies (default all; 0: none, zeros).
    width_names = WidthNames(required={"n", "h1", "h2"}, optional={"c"})
    paper_params = {"node": 15986, "anode": 16730, "sonode": 16649, "hbnode": 16127,
                    "ghbnode": 16127}
    options = {**SEQUENCE_OPTIONS, "time_scale": 1.0, "one_step_weight": 0.1,
               "reconstruction_weight": 0.0, "normalise": "train", "cell": "dense", "shrink": 1.0,
               "forecast": "carry"}
    #: The authors' code (docs/profiles.md): ``plane_vibration/trainpv.py`` lines 17 and 30–31
    #: (lr 1e-3, then 1e-4 with a new Adam from their epoch 50, our 51), 34 (batches in order),
    #: 43–46 (the loss), 66 (the clipping); ``hbnode_rnn_pv.py`` line 49 (ξ: ``corr``, learnable).
    profiles = {"authors-code": {
        "lr": 1.0e-3, "lr_restarts": {51: 1.0e-4}, "grad_clip": 1.0,
        "task_options": {"normalise": "series", "cell": "authors", "shrink": 0.01,
                         "reconstruction_weight": 0.1, "shuffle": False, "forecast": "authors"},
        "models": {"hbnode": {"model_options": {"xi_init": 0.0}}}}}
    tiny = {"batch_size": 8, "task_options": {"train_windows": 8, "eval_windows": 8}}
    metric = "forecast_mse"

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> SequenceData:
        path = locate(data_root, "plane_vibration", "pv.csv")
        series = read_plane_vibration(path)
        data_seed = seed if options["data_seed"] is None else options["data_seed"]
        generator = torch.Generator().manual_seed(data_seed)
        weights = {ONE_STEP: options["one_step_weight"], FORECAST: 1.0,
                   RECONSTRUCTION: options["reconstruction_weight"]}
        train, val, test = split_windows(series, options, generator, weights)
        if min(len(train[0]), len(val[0]), len(test[0])) == 0:
            raise ValueError(f"{path}: {len(series)} stamps are too few for a "
                             f"{INPUTS + 1}-stamp segment in every split")
        return sequence_data([train, val, test], options, data_seed, device, batch_size)

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        return missing_file(data_root, "plane_vibration", "pv.csv")

    def build_model(self, ctx: BuildContext) -> nn.Module:
        n, h1, h2 = ctx.widths["n"], ctx.widths["h1"], ctx.widths["h2"]
        state = ctx.n_parts * n
        options = ctx.options
        if options["cell"] not in CELLS:
            raise ValueError(f"task option cell is {options['cell']!r}; valid: {', '.join(CELLS)}")
        if options["forecast"] not in FORECASTS:
            raise ValueError(f"task option forecast is {options['forecast']!r}; valid: "
                             f"{', '.join(FORECASTS)}")
        f = mlp([ctx.family.f_input_parts * n, h1, h2, n], nn.ReLU)
        cell = (nn.Linear(state + FEATURES, state) if options["cell"] == "dense"
                else AuthorsCell(ctx.n_parts, n, FEATURES))
        hybrid = ODERNN(ctx.ode(Autonomous(f), n), cell)
        initial = InitialState(INPUTS * FEATURES, ctx.widths.get("c", state), state)
        model = PlaneVibrationModel(initial, hybrid, nn.Linear(n, FEATURES),
                                    reconstruct=options["reconstruction_weight"] > 0,
                                    forecast=options["forecast"])
        if options["shrink"] != 1.0:
            shrink_as_authors([hybrid, initial], [model.head], options["shrink"])
        return model


@hookimpl
def harness_tasks() -> list[type[PlaneVibration]]:
    return [PlaneVibration]
