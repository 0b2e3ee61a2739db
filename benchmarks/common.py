"""Helpers shared by the benchmarks: their parsers and output folders, per-run initial
weights, data, progress lines and published results."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import jax

from dnijax import data as data_lib
from dnijax import engine, nets, options, store


def initial_nets(widths: Sequence[int], specs: Sequence[tuple[str, float, int]]) -> Any:
    """One network per run, stacked: ``specs`` lists ``(init, scale, seed)`` per run."""

    def spec(init, scale):  # the activations do not change the weights
        return nets.mlp_spec(
            widths,
            ("identity",) * (len(widths) - 1),
            "mse",
            "sum",
            init=init,
            init_scale=scale,
            init_shift=0.0,
        )

    trees = [
        nets.init_network(jax.random.key(10_000 + seed), spec(init, scale))
        for init, scale, seed in specs
    ]
    return engine.stack_trees(trees)


def load(name: str) -> data_lib.Dataset:
    """``digits`` (bundled with scikit-learn) or ``mnist1d`` (``pip install mnist1d``); a data
    set that cannot be had ends the script with a one-line error (exit 2)."""
    try:
        return data_lib.load(name, seed=0)
    except (ValueError, ImportError, OSError) as err:
        options.fail(str(err).splitlines()[0] if str(err) else type(err).__name__)


def progress_line(label: str):
    """A progress callback for one cell: one short line when the cell is done (``label``
    cut to 70 characters), and none before, so a benchmark prints a line per cell."""
    start, short = time.time(), label if len(label) <= 70 else label[:67] + "..."

    def tick(done: int, total: int) -> None:
        if done >= total:
            print(f"  {short}: done in {time.time() - start:.0f}s", flush=True)

    return tick


def publish(out: str, name: str, results: dict, report, figure=None) -> None:
    """Writes ``<out>/<name>.json`` and ``<out>/<name>.md`` (``report(results)``) atomically,
    draws ``figure(results, <out>/<name>.png)`` where there is one, and prints the markdown.
    ``report`` and ``figure`` read nothing but ``results``, so ``benchmarks/results_pages.py``
    makes the same table and figure again from the JSON file alone."""
    os.makedirs(out, exist_ok=True)
    results = json.loads(json.dumps(results))  # what the JSON file will give, in its order
    markdown = report(results)
    store.atomic_write_json(os.path.join(out, f"{name}.json"), results, sort_keys=False)
    store.atomic_write_bytes(os.path.join(out, f"{name}.md"), markdown.encode())
    if figure is not None:
        figure(results, os.path.join(out, f"{name}.png"))
    print(markdown)


def positive(kind: type):
    """An argparse type: a number of ``kind`` above 0 (a one-line usage error otherwise)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} > 0")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def positive_list(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated integers above 0, e.g. ``2,3,4``."""
    return tuple(positive(int)(part) for part in text.split(","))


def positive_floats(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated numbers above 0, e.g. ``1e-3,1e-4``."""
    return tuple(positive(float)(part) for part in text.split(","))


def make_parser(doc: str, name: str) -> options.Parser:
    """A benchmark's parser: no abbreviated options, one-line errors (exit 2), and the
    options every benchmark that writes a folder takes, ``--out`` (default ``runs/<name>``)
    and ``--overwrite``."""
    parser = options.Parser(description=doc.splitlines()[0])
    parser.add_argument(
        "--out", default=os.path.join("runs", name), help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace results of a different configuration in --out",
    )
    return parser


def base_parser(doc: str, name: str, default_data: str = "digits") -> options.Parser:
    """:func:`make_parser` with the options every depth benchmark takes: --quick, --data,
    --seeds, --steps."""
    parser = make_parser(doc, name)
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--data", default=default_data, choices=("digits", "mnist1d"))
    parser.add_argument("--seeds", type=positive(int))
    parser.add_argument("--steps", type=positive(int))
    return parser


def claim(args: argparse.Namespace, name: str, outputs: Sequence[str]) -> None:
    """Claims ``args.out`` for this benchmark and these options
    (:func:`dnijax.store.claim_out_dir`): a folder holding another configuration's
    ``outputs`` is refused in one line (exit 2) unless ``--overwrite``; call it after the
    options are parsed and before anything is computed."""
    settings = {k: v for k, v in sorted(vars(args).items()) if k not in ("out", "overwrite")}
    try:
        store.claim_out_dir(
            args.out, {"benchmark": name, "options": settings}, args.overwrite, outputs
        )
    except (ValueError, OSError) as err:
        options.fail(str(err).splitlines()[0])


def published(name: str) -> tuple[str, str, str]:
    """The files :func:`publish` writes for ``name``."""
    return (f"{name}.json", f"{name}.md", f"{name}.png")


def save_figure(fig: Any, path: str, intervals: str | None = None) -> None:
    """Lays out, writes atomically and closes a matplotlib figure; ``intervals`` names what
    draws the figure's intervals (e.g. ``"bands"``), and a footnote then states their method
    (:data:`dnijax.stats.INTERVAL`)."""
    import matplotlib.pyplot as plt

    from dnijax import figures

    if intervals is None:
        fig.tight_layout()
    else:
        figures.interval_footnote(fig, intervals)
    store.atomic_savefig(fig.savefig, path)
    plt.close(fig)
