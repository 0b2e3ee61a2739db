"""Makes the docs' results tables and figures from the benchmarks' JSON files, and nothing else.

    python benchmarks/results_pages.py [--check]

Each benchmark writes ``<out>/<name>.json`` (``common.publish``); its JSON is copied to
``docs/results/data/<name>.json`` when a run is published. This script reads those files and
writes, for every page, ``docs/results/generated/<name>.md`` (the benchmark's own markdown,
made by its ``report`` function from the JSON alone) and ``docs/results/generated/<name>.png``
(its ``figure``), which the results pages include. A number or figure on a results page is
one this script produced. The article's page is a ``dnijax compare`` folder
(``docs/results/data/article``: its ``results.json`` and ``final_params.npz``), which
``dnijax report`` turns into its table and figures. The protocols page's tables come from
the records in ``dnijax.experiments.protocols``. ``--check`` writes nothing and exits 1
when a table on disk is not what the JSON gives (the figures are not compared: their bytes
depend on matplotlib's version).

To publish a fresh run of a benchmark::

    python benchmarks/dni_cnn.py --out runs/dni_cnn
    cp runs/dni_cnn/dni_cnn.json docs/results/data/
    python benchmarks/results_pages.py

and the article's: ``dnijax compare --out runs/article``, then copy its ``results.json`` and
``final_params.npz`` to ``docs/results/data/article/``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "docs", "results", "data")
GENERATED = os.path.join(ROOT, "docs", "results", "generated")


class Page(NamedTuple):
    """A results page's generated parts: the JSON it reads (``<name>.json``), the benchmark
    module whose ``report_fn`` makes the table and ``figure_fn`` (or none) the figure, and
    the page that includes them (``doc``, when it is not ``<name>.md``)."""

    name: str
    module: str
    report_fn: str = "report"
    figure_fn: str | None = "figure"
    doc: str | None = None  # the results page that shows them (None: ``<name>.md``)


PAGES = (
    Page("seed_comparison", "seed_comparison", "markdown", None),
    Page("lr_sensitivity", "lr_sensitivity", "markdown"),
    Page("deep_noise", "deep_noise"),
    Page("noise_rescue", "noise_rescue"),
    Page("dni_depth", "dni_depth"),
    Page("dni_noise", "dni_noise"),
    Page("dni_cnn", "dni_cnn"),
    Page("sg_target", "sg_target"),
    Page("cnn_ablation", "cnn_ablation"),
    Page("fcn_ablation", "fcn_ablation"),
    Page("copy_ablation", "copy_ablation"),
    Page("rule_family", "rule_family"),
    Page("copy_task", "copy_task"),
    Page("copy_task_stream", "copy_task", doc="copy_task"),
    Page("repeat_copy", "copy_task"),
    Page("scaling", "scaling"),
    Page("speed", "speed", "report", None),
)


def functions(page: Page) -> tuple[Callable[[dict], str], Callable[[dict, str], None] | None]:
    """The page's report and figure functions, from its benchmark module."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)  # the benchmarks import their helpers as ``common``
    module = importlib.import_module(page.module)
    figure = getattr(module, page.figure_fn) if page.figure_fn else None
    return getattr(module, page.report_fn), figure


def load(page: Page, data: str = DATA) -> dict[str, Any] | None:
    """The page's published results, or None where the benchmark has not been published."""
    from dnijax import store

    return store.read_json(os.path.join(data, f"{page.name}.json"))


def on_disk(path: str) -> str | None:
    """The text of ``path``, or None where there is no such file."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


PROTOCOLS = "protocols"  # made from dnijax.experiments.protocols, the records in code


def build_protocols(out: str, check: bool) -> list[str]:
    """The protocols page's tables (``<out>/protocols.md``): every record of
    :mod:`dnijax.experiments.protocols`, paper vs scaled."""
    from dnijax import store
    from dnijax.experiments import protocols

    text = "\n".join(protocols.markdown(p) for p in protocols.PROTOCOLS.values())
    path = os.path.join(out, f"{PROTOCOLS}.md")
    if check:
        return (
            [] if on_disk(path) == text else [f"{PROTOCOLS}: {path} is not what the records give"]
        )
    store.atomic_write_bytes(path, text.encode())
    return []


ARTICLE = "article"  # a `dnijax compare` folder: its results.json and final_params.npz
ARTICLE_INPUTS = ("results.json", "final_params.npz")


def build_article(data: str, out: str, check: bool) -> list[str]:
    """The article page's table and figures: ``dnijax report`` run on a copy of the published
    ``dnijax compare`` folder (``<data>/article``), written to ``<out>/article``."""
    import shutil
    import tempfile

    from dnijax import report

    source = os.path.join(data, ARTICLE)
    if not all(os.path.exists(os.path.join(source, f)) for f in ARTICLE_INPUTS):
        return [f"{ARTICLE}: no {os.path.join(source, 'results.json')} and final_params.npz"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in ARTICLE_INPUTS:
            shutil.copy(os.path.join(source, name), tmp)
        _, written, skipped = report.rebuild(tmp)
        if skipped:
            return [f"{ARTICLE}: decision regions not drawn ({skipped})"]
        target = os.path.join(out, ARTICLE)
        table = os.path.join(target, "summary.md")
        if check:
            fresh = on_disk(os.path.join(tmp, "summary.md"))
            return (
                []
                if on_disk(table) == fresh
                else [f"{ARTICLE}: {table} is not what its JSON gives"]
            )
        os.makedirs(target, exist_ok=True)
        for name in written:
            if name.endswith((".md", ".png")):
                shutil.copy(os.path.join(tmp, name), target)
    return []


def build(data: str = DATA, out: str = GENERATED, check: bool = False) -> list[str]:
    """Writes every page's table and figure into ``out`` (or, with ``check``, only compares
    the tables); returns the problems found (missing JSON, stale tables)."""
    from dnijax import store

    if not check:
        os.makedirs(out, exist_ok=True)
    problems = build_article(data, out, check) + build_protocols(out, check)
    for page in PAGES:
        results = load(page, data)
        if results is None:
            problems.append(f"{page.name}: no {os.path.join(data, page.name + '.json')}")
            continue
        report, figure = functions(page)
        table, path = report(results), os.path.join(out, f"{page.name}.md")
        if check:
            if on_disk(path) != table:
                problems.append(f"{page.name}: {path} is not what {page.name}.json gives")
            continue
        store.atomic_write_bytes(path, table.encode())
        if figure is not None:
            figure(results, os.path.join(out, f"{page.name}.png"))
    return problems


def main() -> None:
    from dnijax import options

    parser = options.Parser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare the tables on disk, write nothing"
    )
    args = parser.parse_args()
    problems = build(check=args.check)
    for line in problems:
        print(line)
    if not problems:
        print("the tables are what the JSON files give" if args.check else f"wrote {GENERATED}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
