"""Helpers shared by the depth benchmarks: per-run initial weights, data, outputs."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Sequence

import jax

from dnijax import data as data_lib
from dnijax import engine, nets, store


def initial_nets(widths: Sequence[int], specs: Sequence[tuple[str, float, int]]) -> Any:
    """One network per run, stacked: ``specs`` lists ``(init, scale, seed)`` per run."""
    def spec(init, scale):  # the activations do not change the weights
        return nets.mlp_spec(widths, ("identity",) * (len(widths) - 1), "mse", "sum",
                             init=init, init_scale=scale, init_shift=0.0)

    trees = [nets.init_network(jax.random.key(10_000 + seed), spec(init, scale))
             for init, scale, seed in specs]
    return engine.stack_trees(trees)


def load(name: str) -> data_lib.Dataset:
    """``digits`` (bundled with scikit-learn) or ``mnist1d`` (``pip install mnist1d``)."""
    return data_lib.load(name, seed=0)


def progress_line(label: str):
    """A progress callback printing a line at every 25%."""
    start, last = time.time(), [-1]

    def tick(done: int, total: int) -> None:
        q = int(4 * done / max(total, 1))
        if q != last[0]:
            last[0] = q
            print(f"  {label}: {100 * done // max(total, 1)}% ({time.time() - start:.0f}s)",
                  flush=True)

    return tick


def publish(out: str, name: str, results: dict, markdown: str, figure) -> None:
    """Writes ``<out>/<name>.json`` and ``<out>/<name>.md`` atomically, draws
    ``figure(results, <out>/<name>.png)``, and prints the markdown."""
    os.makedirs(out, exist_ok=True)
    store.atomic_write_json(os.path.join(out, f"{name}.json"), results)
    store.atomic_write_bytes(os.path.join(out, f"{name}.md"), markdown.encode())
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


def base_parser(doc: str, name: str, default_data: str = "digits") -> argparse.ArgumentParser:
    """The options every depth benchmark takes: --quick, --data, --out, --seeds, --steps."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--data", default=default_data, choices=("digits", "mnist1d"))
    parser.add_argument("--out", default=os.path.join("runs", name))
    parser.add_argument("--seeds", type=positive(int))
    parser.add_argument("--steps", type=positive(int))
    return parser


def save_figure(fig: Any, path: str) -> None:
    """Lays out, writes atomically and closes a matplotlib figure."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    store.atomic_savefig(fig.savefig, path)
    plt.close(fig)
