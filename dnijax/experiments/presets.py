"""Presets: the configurations of the article's comparison, with their data and weights.

* ``seed``: the article's exact configuration (``docs/math.md``, "The seed preset")
  with its defects corrected (descent signs; each case uses its own weights):
  2-10-28-1 sigmoid, no biases, ``0.2 N(0,1) - 0.1`` weights drawn after the data
  from ``RandomState(4567 + seed)``, linear SG modules on every layer (seed
  topology) with the same init, ``mse``/``sum``, SGD at lr 8e-5 for 100 full-batch
  steps, ``blog`` noise with eta 0.1. Like the article it trains on all 500 points,
  so its "test" accuracy is on those points too.
* ``tuned`` (default): the same data with a stratified 80/20 split and standardised
  inputs, a 2-10-28-1 tanh/tanh/sigmoid network with biases and Glorot init,
  ``mse``/``mean``, zero-init linear SG modules (paper topology), ``paper`` noise,
  learning rates chosen from ``dnijax sweep`` (see the README), 2000 steps.

Other data (``data=``, the ``--data`` option; ``tuned`` only): a built-in name or a user's
file, seed s loaded with ``dnijax.data.resolve(data, s)``; the preset's ``widths[0]`` and
``widths[-1]`` follow the data unless a config file sets ``widths`` (:func:`fit_widths`), and
data of more than two classes get the ``xent`` loss unless a config file sets ``loss``
(:func:`fit_loss`).

Examples:
  >>> from dnijax.experiments import presets
  >>> cfg = presets.preset_config("tuned", steps=100)
  >>> cfg.steps, cfg.log_every, cfg.lr
  (100, 1, 1.0)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from dnijax import data as data_lib
from dnijax import engine
from dnijax.config import RunConfig, check_data

PRESETS: dict[str, RunConfig] = {
    "seed": RunConfig(
        regime="backprop",
        widths=(2, 10, 28, 1),
        activations="sigmoid",
        bias=False,
        init="normal",
        init_scale=0.2,
        init_shift=-0.1,
        loss="mse",
        reduction="sum",
        optimizer="sgd",
        lr=8e-5,
        topology="seed",
        sg_init="network",
        sg_bias=False,
        noise="blog",
        eta=0.1,
        gamma=0.55,
        steps=100,
        log_every=1,
    ),
    "tuned": RunConfig(
        regime="backprop",
        widths=(2, 10, 28, 1),
        activations=("tanh", "tanh", "sigmoid"),
        bias=True,
        init="glorot",
        loss="mse",
        reduction="mean",
        optimizer="sgd",
        lr=1.0,
        sg_lr=0.1,
        topology="paper",
        sg_init="zero",
        noise="paper",
        eta=0.01,
        gamma=0.55,
        steps=2000,
        log_every=20,
    ),
}
DEFAULT_SEEDS = {"seed": 10, "tuned": 10}

# the sequence tasks (``dnijax compare --task``): an LSTM of 32 units learns by truncated
# BPTT in windows of 4 steps, one episode of 16 sequences per step, Adam, sigmoid
# cross-entropy per bit, the length curriculum of the DNI paper's copy experiments
TASKS: dict[str, RunConfig] = {
    "copy": RunConfig(
        regime="backprop",
        task="copy",
        core="lstm",
        hidden=32,
        window=4,
        max_length=10,
        batch_size=16,
        optimizer="adam",
        lr=1e-2,
        sg_lr=1e-2,
        loss="bce",
        reduction="mean",
        noise="paper",
        eta=0.01,
        gamma=0.55,
        threshold=0.15,
        steps=1000,
    ),
    "repeat_copy": RunConfig(
        regime="backprop",
        task="repeat_copy",
        max_repeats=3,
        core="lstm",
        hidden=32,
        window=4,
        max_length=6,
        batch_size=16,
        optimizer="adam",
        lr=1e-2,
        sg_lr=1e-2,
        loss="bce",
        reduction="mean",
        noise="paper",
        eta=0.01,
        gamma=0.55,
        threshold=0.15,
        steps=1000,
    ),
}
DEFAULT_TASK_SEEDS = 5
PARALLEL_SEEDS = 2000  # from this many seeds on, grid_inputs makes their data on every core
DEFAULT_DATA = "article"  # the presets' data; only the tuned preset takes others (--data)


SEED_FIXED = ("widths", "bias", "topology", "conditioned", "sg_hidden", "sg_bias")


def preset_config(
    preset: str,
    *,
    steps: int | None = None,
    lr: float | None = None,
    sg_lr: float | None = None,
    eta: float | None = None,
    overrides: dict[str, Any] | None = None,
    data: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> RunConfig:
    """The preset's config with ``overrides`` (a config file's fields) and then the
    given options replaced, validated, and checked against seed 0's data.

    Args:
      preset: a name in ``PRESETS``.
      steps: replaces the preset's number of steps (``None``: keep it).
      lr: replaces the preset's network learning rate (``None``: keep it).
      sg_lr: replaces the preset's SG-module learning rate (``None``: keep it).
      eta: replaces the preset's noise scale (``None``: keep it).
      overrides: a config file's fields (:func:`dnijax.config.load_overrides`).
      data: a ``--data`` spec, a built-in name or a file (:func:`dnijax.data.resolve`);
        ``None``: the preset's data (the article's). The ``seed`` preset refuses it.
      notify: called with one line when the preset's ``widths[0]`` and ``widths[-1]``
        are changed to fit ``data`` (only if ``overrides`` do not set ``widths``).

    Raises:
      ValueError: one line, for a bad value, a bad data file or data that do not fit.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset: unknown value {preset!r}; choose one of {', '.join(PRESETS)}")
    changes: dict[str, Any] = dict(overrides or {})
    if changes.get("task") is not None:
        raise ValueError(
            "--config: task is chosen with --task (e.g. --task copy), not in the "
            "file; drop it from the file"
        )
    if preset == "seed" and set(changes) & set(SEED_FIXED):
        raise ValueError(
            f"--config: the seed preset's article weights fix "
            f"{', '.join(sorted(set(changes) & set(SEED_FIXED)))}; use the tuned "
            "preset to change them"
        )
    add_options(changes, overrides, steps=steps, lr=lr, sg_lr=sg_lr, eta=eta)
    ds, _ = preset_data(preset, 0, data)
    base = PRESETS[preset]
    fitted = fit_loss(base.loss, ds.n_classes) if "loss" not in changes else None
    if fitted is not None:
        changes["loss"] = fitted
    widths = None  # set when the preset's widths change to fit the data
    if changes.get("layers") is not None and "widths" not in changes:
        changes["widths"] = (ds.n_features,)  # a layer list: the input follows the data
    elif "widths" not in changes:  # the preset's network follows the data
        fitted_widths = fit_widths(base.widths, changes.get("loss", base.loss), ds)
        if fitted_widths != base.widths:
            widths = changes["widths"] = fitted_widths
    if notify is not None and (widths or fitted):
        said = [f"widths {base.widths} -> {widths}"] if widths else []
        if fitted:
            said.append(
                f"loss {base.loss} -> {fitted} (softmax outputs; a config file with "
                '"loss" keeps another)'
            )
        shape = (
            f"{ds.n_features} features and {ds.n_classes} classes; "
            if widths
            else (f"{ds.n_classes} classes, ")
        )
        notify(f"--data {data or DEFAULT_DATA} has {shape}{', '.join(said)}")
    cfg = base.replace(**changes) if changes else base
    check_data(cfg, ds.x_train, ds.y_train)
    return cfg


def task_config(
    task: str,
    *,
    steps: int | None = None,
    lr: float | None = None,
    sg_lr: float | None = None,
    eta: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """A sequence task's config (``TASKS``) with ``overrides`` (a config file's fields) and
    then the given options replaced, validated.

    Raises:
      ValueError: one line, for an unknown task or a bad value.
    """
    if task not in TASKS:
        raise ValueError(f"task: unknown value {task!r}; choose one of {', '.join(TASKS)}")
    changes: dict[str, Any] = dict(overrides or {})
    if changes.get("task", task) != task:
        raise ValueError(
            f"--config: its task {changes['task']!r} is not --task {task!r}; drop "
            "task from the file"
        )
    add_options(changes, overrides, steps=steps, lr=lr, sg_lr=sg_lr, eta=eta)
    return TASKS[task].replace(**changes) if changes else TASKS[task]


def add_options(changes: dict[str, Any], overrides: dict[str, Any] | None, **options: Any) -> None:
    """Puts the command-line ``options`` that were given (not ``None``) into ``changes``,
    over a config file's ``overrides``; new ``steps`` reset ``log_every`` to its default
    unless the file sets it."""
    changes.update({k: v for k, v in options.items() if v is not None})
    if "steps" in changes and "log_every" not in (overrides or {}):
        changes["log_every"] = None


def fit_loss(loss: str, n_classes: int) -> str | None:
    """The loss a preset switches to for data of ``n_classes`` classes: ``xent`` (softmax
    cross-entropy) when a preset made for two classes (``mse`` or ``bce`` on one sigmoid unit)
    meets more than two; ``None`` when ``loss`` fits. One sigmoid unit per class under ``mse``
    trains poorly: the tuned preset's backprop reached 29% test accuracy on mnist1d so."""
    return "xent" if n_classes > 2 and loss in ("mse", "bce") else None


def output_width(n_classes: int, loss: str) -> int:
    """The output layer for ``n_classes`` classes: 1 unit for 2 classes (``xent``: 2), else
    one per class."""
    return 1 if n_classes == 2 and loss != "xent" else n_classes


def fit_widths(widths: tuple[int, ...], loss: str, ds: data_lib.Dataset) -> tuple[int, ...]:
    """``widths`` with the input width set to the data's features and the output width to
    :func:`output_width` where they do not fit ``ds`` (an output fits with one unit per class,
    or one unit for 2 classes); the hidden widths unchanged."""
    n_out, k = widths[-1], ds.n_classes
    fits_out = n_out == k or (n_out == 1 and k == 2)
    return (ds.n_features, *widths[1:-1], n_out if fits_out else output_width(k, loss))


def preset_data(preset: str, seed: int, data: str | None = None) -> tuple[data_lib.Dataset, Any]:
    """Data (and, for ``seed``, the article's initial weights) of one seed.

    ``data`` (a ``--data`` spec; ``None``: the article's) is loaded with
    ``data_lib.resolve(data, seed)``: seed s has its own split and standardisation.
    """
    if preset == "seed" and data is not None:
        raise ValueError(
            "--data: the seed preset's data are the article's by definition (its "
            "weights are drawn right after them); use --preset tuned for other data"
        )
    if preset == "seed":
        rng = np.random.RandomState(data_lib.ARTICLE_SEED + seed)
        x, y = data_lib.article_classification(rng)
        net_w, sg_w = data_lib.article_weights(rng)
        ds = data_lib.Dataset(
            "article",
            x.astype(np.float32),
            y.astype(np.int32),
            x.astype(np.float32),
            y.astype(np.int32),
            2,
        )
        init = (
            [{"w": w.astype(np.float32)} for w in net_w],
            [[{"w": s.astype(np.float32)}] for s in sg_w],
        )
        return ds, init
    return data_lib.resolve(data or DEFAULT_DATA, seed), None


def grid_inputs(
    preset: str, seeds: int, copies: int = 1, data: str | None = None
) -> tuple[list[data_lib.Dataset], dict[str, Any]]:
    """Per-run data (and, for ``seed``, initial weights) of ``seeds`` seeds, the seeds
    repeated ``copies`` times along the run axis, as :func:`engine.run_grid` keywords
    (drop ``sg`` for a program without SG modules). ``data``: as :func:`preset_data`.

    From ``PARALLEL_SEEDS`` seeds on, the seeds' data are made on every core (joblib); each
    seed's data depend on the seed alone, so they are the same either way."""
    if seeds >= PARALLEL_SEEDS and (os.cpu_count() or 1) > 1:
        from joblib import Parallel, delayed

        per_seed = Parallel(n_jobs=os.cpu_count(), batch_size=500)(
            delayed(preset_data)(preset, s, data) for s in range(seeds)
        )
    else:
        per_seed = [preset_data(preset, s, data) for s in range(seeds)]
    datasets = [d for d, _ in per_seed]
    stack = lambda f: np.concatenate([np.stack([f(d) for d in datasets])] * copies)  # noqa
    grid: dict[str, Any] = {
        "data": (stack(lambda d: d.x_train), stack(lambda d: d.y_train)),
        "test": (stack(lambda d: d.x_test), stack(lambda d: d.y_test)),
        "per_run_data": True,
        "net": None,
        "sg": None,
    }
    if per_seed[0][1] is not None:
        grid["net"] = engine.stack_trees([i[0] for _, i in per_seed] * copies)
        grid["sg"] = engine.stack_trees([i[1] for _, i in per_seed] * copies)
    return datasets, grid
