"""The article's four-regime comparison: every regime over seeds, from identical starts.

All four regimes of a seed start from identical weights and see the same data.
Each signal rule runs with its ``+noise`` twin in one compiled program (eta 0 for
the twin without noise, which adds exactly zero), vmapped over seeds.

Examples:
  >>> from dnijax.experiments import compare
  >>> res = compare.run_compare("tuned", seeds=2, steps=50)
  >>> sorted(res["regimes"]), len(res["regimes"]["dni"]["final_loss"])
  (['backprop', 'backprop+noise', 'dni', 'dni+noise'], 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from dnijax import engine, nets, stats
from dnijax.config import REGIMES, SEQUENCE_ONLY, RunConfig, parse_regime, regime_name
from dnijax.experiments import presets


def run_compare(
    preset: str = "tuned",
    *,
    seeds: int | None = None,
    steps: int | None = None,
    lr: float | None = None,
    sg_lr: float | None = None,
    eta: float | None = None,
    overrides: dict[str, Any] | None = None,
    progress: engine.Progress | None = None,
    data: str | None = None,
    regimes: Sequence[str] = REGIMES,
) -> dict[str, Any]:
    """Runs ``regimes`` (default: the article's four) over ``seeds`` seeds and returns
    plain results.

    ``data``: a ``--data`` spec (:func:`dnijax.data.resolve`; ``None``: the preset's);
    seed s trains on ``resolve(data, s)``. Every regime but backprop records the
    alignment of its signals to the true gradient (``grad_alignment``; with SG modules
    also ``sg_alignment``).

    Returns:
      ``{"preset", "config", "devices", "regimes": {name: {...per-seed lists,
      "loss_curve"}}, "datasets": [per seed Dataset], "params": {name: [per seed final
      network]}}``; ``devices`` as :func:`engine.device_summary` gives it.
      The last two are for figures and are not written to JSON.
    """
    cfg = presets.preset_config(
        preset, steps=steps, lr=lr, sg_lr=sg_lr, eta=eta, overrides=overrides, data=data
    )
    seeds = presets.DEFAULT_SEEDS[preset] if seeds is None else seeds
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"seeds: {seeds!r} must be an integer >= 1")
    regimes = check_regimes(regimes, cfg)
    datasets, grid = presets.grid_inputs(preset, seeds, copies=2, data=data)
    results: dict[str, Any] = {}
    params: dict[str, Any] = {}
    grids = regime_grids(
        cfg,
        seeds,
        progress,
        lambda c: dict(
            grid, sg=grid["sg"] if c.uses_sg else None, alignment=c.signal != "backprop"
        ),
        regimes,
    )
    for rule, res in grids:
        net = jax.device_get(res.state.net)  # one transfer, then numpy views per run
        for name, runs in arms(rule, seeds, regimes):
            results[name] = summarize_runs(res, runs, loss_bounds(cfg.loss))
            for key in ("sg_alignment", "grad_alignment"):
                if key in res.history:
                    results[name][key] = alignment_curves(res, runs, key)
            params[name] = [
                [{k: v[r] for k, v in layer.items()} for layer in net]
                for r in range(*runs.indices(res.diverged_at.shape[0]))
            ]
    by_name = {name: results[name] for name in regimes}
    add_statistics(by_name, loss_range=loss_bounds(cfg.loss))
    return {
        "preset": preset,
        "config": config_dict(cfg, seeds, data, regimes),
        "devices": engine.device_summary(),
        "regimes": by_name,
        "datasets": datasets,
        "params": params,
    }


def run_task_compare(
    task: str,
    *,
    seeds: int | None = None,
    steps: int | None = None,
    lr: float | None = None,
    sg_lr: float | None = None,
    eta: float | None = None,
    overrides: dict[str, Any] | None = None,
    progress: engine.Progress | None = None,
    regimes: Sequence[str] = REGIMES,
) -> dict[str, Any]:
    """``regimes`` (default: the article's four) on a sequence task (:data:`presets.TASKS`)
    over ``seeds`` seeds: the same engine, pairing and statistics as :func:`run_compare`.
    Seed s draws the same
    network and the same sequences in every regime.

    Returns:
      ``{"preset", "config", "devices", "regimes": {name: {per-seed "solved",
      "final_length", "final_error_bits", "diverged_at", "length_curve", "error_curve",
      "summary", "paired_vs_backprop"}}}``; ``preset`` is the task's name.

    Examples:
      >>> from dnijax.experiments import compare
      >>> res = compare.run_task_compare("copy", seeds=2, steps=20, overrides=dict(
      ...     hidden=6, max_length=3, window=3))
      >>> sorted(res["regimes"]), len(res["regimes"]["dni"]["solved"])
      (['backprop', 'backprop+noise', 'dni', 'dni+noise'], 2)
    """
    cfg = presets.task_config(task, steps=steps, lr=lr, sg_lr=sg_lr, eta=eta, overrides=overrides)
    seeds = presets.DEFAULT_TASK_SEEDS if seeds is None else seeds
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"seeds: {seeds!r} must be an integer >= 1")
    regimes = check_regimes(regimes, cfg)
    results = {
        name: summarize_task_runs(res, runs, cfg.max_length)
        for rule, res in regime_grids(cfg, seeds, progress, lambda c: dict(data=None), regimes)
        for name, runs in arms(rule, seeds, regimes)
    }
    by_name = {name: results[name] for name in regimes}
    add_task_statistics(by_name, cfg.max_length)
    return {
        "preset": task,
        "config": config_dict(cfg, seeds, None, regimes),
        "devices": engine.device_summary(),
        "regimes": by_name,
    }


def regime_grids(
    cfg: RunConfig,
    seeds: int,
    progress: engine.Progress | None,
    grid_for: Callable[[RunConfig], dict[str, Any]],
    regimes: Sequence[str] = REGIMES,
) -> Iterator[tuple[str, engine.GridResult]]:
    """Each signal rule's grid of a comparison of ``regimes``, ``(rule, result)``: the
    rule's noise-free and ``+noise`` arms in one program (the runs: ``seeds`` seeds with eta
    0, then the same seeds with ``cfg.eta``; :func:`arms`), so seed s starts from the same
    weights and sees the same data in every regime. ``grid_for(config)`` gives the grid's
    further :func:`engine.run_grid` keywords (its data, initial SG modules, alignment)."""
    rules = list(dict.fromkeys(parse_regime(r)[0] for r in regimes))
    for index, rule in enumerate(rules):
        its_arms = arms(rule, seeds, regimes)
        keys = engine.run_keys(np.concatenate([np.arange(seeds)] * len(its_arms)))
        etas = [
            cfg.eta if parse_regime(name)[1] else 0.0 for name, _ in its_arms for _ in range(seeds)
        ]
        noisy_cfg = cfg.replace(regime=regime_name(rule, True))
        tick = (
            None
            if progress is None
            # the engine's total counts the steps of all its blocks of runs
            else (lambda done, total, k=index: progress(k * total + done, len(rules) * total))
        )
        yield (
            rule,
            engine.run_grid(
                noisy_cfg,
                engine.stack_hyper(noisy_cfg, eta=etas),
                keys,
                progress=tick,
                **grid_for(noisy_cfg),
            ),
        )


def arms(rule: str, seeds: int, regimes: Sequence[str] = REGIMES) -> list[tuple[str, slice]]:
    """The regimes of a :func:`regime_grids` grid and their runs: of ``rule`` and
    ``rule+noise``, those in ``regimes``, in that order, ``seeds`` runs each."""
    names = [
        regime_name(rule, noisy) for noisy in (False, True) if regime_name(rule, noisy) in regimes
    ]
    return [(name, slice(i * seeds, (i + 1) * seeds)) for i, name in enumerate(names)]


def grid_runs(seeds: int, regimes: Sequence[str] = REGIMES) -> list[int]:
    """The number of runs of each :func:`regime_grids` grid of a comparison of
    ``regimes``: ``seeds`` times the rule's arms among them."""
    rules = dict.fromkeys(parse_regime(r)[0] for r in regimes)
    return [len(arms(rule, seeds, regimes)) * seeds for rule in rules]


def check_regimes(regimes: Sequence[str], cfg: RunConfig) -> tuple[str, ...]:
    """The regimes of a comparison, checked (each a known regime, none twice, each valid
    for ``cfg``: a rule without a recurrent form is refused on a task) before anything
    runs; one-line ``ValueError`` otherwise."""
    regimes = tuple(regimes)
    if not regimes:
        raise ValueError("regimes: give at least one regime")
    for name in regimes:
        if regimes.count(name) > 1:
            raise ValueError(f"regimes: {name!r} is given twice")
        cfg.replace(regime=name)  # RunConfig's own checks
    return regimes


def band_curve(
    values: np.ndarray, healthy: np.ndarray, steps: Any, bounds: stats.Bounds
) -> dict[str, Any]:
    """A curve over the runs that did not diverge (rows of ``values`` where ``healthy``):
    its mean, 95% interval, min and max at each of ``steps`` (NaN, written as null, when
    every run diverged)."""
    values = values[healthy] if healthy.any() else np.full((1, values.shape[1]), np.nan)
    band = stats.band(values, bounds=bounds)
    return {
        "step": [int(s) for s in steps],
        "mean": _as_list(values.mean(0)),
        "min": _as_list(values.min(0)),
        "max": _as_list(values.max(0)),
        "ci95_lo": band["ci95_lo"],
        "ci95_hi": band["ci95_hi"],
    }


def _as_list(a: Any) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in a]


def summarize_task_runs(res: engine.GridResult, runs: slice, max_length: int) -> dict[str, Any]:
    """Per-seed longest length solved, final curriculum length and last record's error
    (bits per target bit), and the length and error curves (mean, its 95% interval, min and
    max over the runs that did not diverge)."""
    div = res.diverged_at[runs]
    healthy = div < 0
    step = res.history["step"]
    errors = res.history["error_bits"][runs]
    return {
        "solved": [int(v) for v in res.final["solved"][runs]],
        "final_length": [int(v) for v in res.final["length"][runs]],
        "final_error_bits": _as_list(errors[:, -1]),
        "diverged_at": [None if d < 0 else int(d) for d in div],
        "length_curve": band_curve(
            res.history["length"][runs].astype(float), healthy, step, (1.0, float(max_length))
        ),
        "error_curve": band_curve(errors, healthy, step[1:], stats.NONNEGATIVE),
    }


def add_task_statistics(
    regimes: dict[str, dict[str, Any]], max_length: int, baseline: str = "backprop"
) -> None:
    """Adds ``summary`` (mean and 95% interval of the longest length solved and the final
    error, with the diverged fraction) to every regime of a sequence task, and
    ``paired_vs_backprop`` (longest length solved, higher is better; final error) to every
    other regime (when the baseline is among them)."""
    solved_range = (0.0, float(max_length))
    base = regimes.get(baseline)
    for name, r in regimes.items():
        div = r["diverged_at"]
        r["summary"] = {
            "solved": stats.summarize(r["solved"], div, bounds=solved_range),
            "final_error_bits": stats.summarize(
                r["final_error_bits"], div, bounds=stats.NONNEGATIVE
            ),
        }
        r["summary"]["diverged_fraction"] = r["summary"]["solved"]["diverged_fraction"]
        if name != baseline and base is not None:
            r["paired_vs_backprop"] = {
                "solved": stats.paired(
                    r["solved"],
                    base["solved"],
                    div,
                    base["diverged_at"],
                    lower_is_better=False,
                    bounds=solved_range,
                ),
                "final_error_bits": stats.paired(
                    r["final_error_bits"],
                    base["final_error_bits"],
                    div,
                    base["diverged_at"],
                    bounds=stats.NONNEGATIVE,
                ),
            }


def loss_bounds(loss: str) -> stats.Bounds:
    """The range of a loss: ``[0, inf)`` for the built-in ones, any value for a loss a user
    registered (:func:`dnijax.nets.register_loss` asks for no range)."""
    return stats.NONNEGATIVE if loss in nets.BUILTIN_LOSSES else stats.REAL


def summarize_runs(
    res: engine.GridResult, runs: slice, loss_range: stats.Bounds = stats.NONNEGATIVE
) -> dict[str, Any]:
    """Per-seed finals, steps to 90% of each run's own loss drop, and a loss curve (mean,
    its 95% interval, min and max over the runs that did not diverge)."""
    div = res.diverged_at[runs]
    healthy = div < 0
    loss = res.history["loss"][runs]
    step = res.history["step"]
    return {
        "initial_loss": _as_list(loss[:, 0]),
        "final_loss": _as_list(res.final["loss"][runs]),
        "final_accuracy": _as_list(res.final["accuracy"][runs]),
        "test_accuracy": _as_list(res.final["test_accuracy"][runs]),
        "diverged_at": [None if d < 0 else int(d) for d in div],
        "steps_to_90pct_drop": [
            stats.steps_to_fraction(step, run, 0.9) if d < 0 else None
            for run, d in zip(loss, div, strict=True)
        ],
        "loss_curve": band_curve(loss, healthy, step, loss_range),
    }


def alignment_curves(
    res: engine.GridResult, runs: slice, key: str = "sg_alignment"
) -> dict[str, Any]:
    """Per layer (``sg_alignment``: per SG module, :func:`dnijax.signals.sg_alignment`;
    ``grad_alignment``: per layer, :func:`dnijax.train.grad_alignment`): the cosine to the
    true gradient at each record, mean and 95% interval over the runs that did not
    diverge."""
    cos = res.history[key][runs][res.diverged_at[runs] < 0]  # (n, K-1, layers)
    return {
        "step": [int(s) for s in res.history["step"][:-1]],
        "layers": [stats.band(cos[:, :, i], bounds=stats.COSINE) for i in range(cos.shape[-1])],
    }


def summary_of(
    regime: dict[str, Any], loss_range: stats.Bounds = stats.NONNEGATIVE
) -> dict[str, Any]:
    """Mean and 95% interval of the final loss, test accuracy and steps to 90% of the loss
    drop over the runs that did not diverge, and the diverged fraction."""
    out = {
        key: stats.summarize(regime[key], regime["diverged_at"], bounds=bounds)
        for key, bounds in (
            ("final_loss", loss_range),
            ("test_accuracy", stats.PROBABILITY),
            ("steps_to_90pct_drop", stats.NONNEGATIVE),
        )
    }
    out["diverged_fraction"] = out["final_loss"]["diverged_fraction"]
    return out


def add_statistics(
    regimes: dict[str, dict[str, Any]],
    baseline: str = "backprop",
    *,
    loss_range: stats.Bounds = stats.NONNEGATIVE,
) -> None:
    """Adds ``summary`` (mean and 95% interval of the final loss, test accuracy and steps to
    90% of the loss drop, with the diverged fraction) to every regime, and
    ``paired_vs_backprop`` (``docs``: :mod:`dnijax.stats`) to every other regime (when
    the baseline is among them)."""
    base = regimes.get(baseline)
    for name, r in regimes.items():
        div = r["diverged_at"]
        r["summary"] = summary_of(r, loss_range)
        if name != baseline and base is not None:
            r["paired_vs_backprop"] = {
                "final_loss": stats.paired(
                    r["final_loss"], base["final_loss"], div, base["diverged_at"], bounds=loss_range
                ),
                "test_accuracy": stats.paired(
                    r["test_accuracy"],
                    base["test_accuracy"],
                    div,
                    base["diverged_at"],
                    lower_is_better=False,
                    bounds=stats.PROBABILITY,
                ),
            }


def manifest(
    preset: str,
    cfg: RunConfig,
    seeds: int,
    data: str | None = None,
    regimes: Sequence[str] = REGIMES,
) -> dict[str, Any]:
    """The configuration a comparison's output folder belongs to
    (:func:`dnijax.store.claim_out_dir`): the preset and :func:`config_dict`."""
    return {"kind": "compare", "preset": preset, "config": config_dict(cfg, seeds, data, regimes)}


SEQUENCE_FIELDS = ("task",) + SEQUENCE_ONLY
LATER_FIELDS = {
    "sg_target": "per_example",
    "sg_scale": 1.0,
    "lr_decay_steps": (),
    "lr_decay": 0.1,
    "carry_state": False,
}  # recorded when set: older folders stay valid


def config_dict(
    cfg: RunConfig, seeds: int, data: str | None = None, regimes: Sequence[str] = REGIMES
) -> dict[str, Any]:
    """The JSON-able description of a comparison's configuration (``data``: its data spec,
    ``None`` for the preset's; ``regimes``, recorded when they are not the article's four).
    A run on data leaves out the sequence-task fields (``SEQUENCE_FIELDS``), so its
    description (and its folder's manifest) is what it was before recurrent runs joined
    the engine."""
    skip = {"regime"} | (set(SEQUENCE_FIELDS) if cfg.task is None else set())
    skip |= {k for k, default in LATER_FIELDS.items() if getattr(cfg, k) == default}
    out = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in dataclasses.asdict(cfg).items()
        if k not in skip
    }
    if cfg.layers is not None:
        out["layers"] = [layer.as_dict() for layer in cfg.layers]
    out["seeds"] = seeds
    out["data"] = None if cfg.task is not None else (data or presets.DEFAULT_DATA)
    if tuple(regimes) != REGIMES:
        out["regimes"] = list(regimes)
    return out
