"""The report of ``benchmarks/speed.py``: its tables, the fraction of the matmul peak beside
every GFLOP/s figure, and each speed target's value and verdict (ratios measured in one run,
printed, never asserted). :func:`report` makes the whole markdown from ``speed.json`` alone,
so ``benchmarks/results_pages.py`` makes the published page's tables again from the JSON."""

from __future__ import annotations

from typing import Any

from dnijax import parse_regime
from dnijax.report import markdown_table

TARGETS = {
    "vs_torch": 1.0,
    "vs_torch_stretch": 2.0,
    "vs_tight_numpy": 3.0,
    "vs_tight_numpy_stretch": 5.0,
    "over_lean_jax": 0.95,
    "cold_compile_s": 3.0,
    "warm_compile_s": 0.5,
    "grid_memory_gib": 1.5,
    "wide_fraction_of_peak": 0.6,
    "dni_time_over_flops": 1.2,
}


def article_markdown(out: dict, steps: int, repeats: int) -> str:
    """The article-scale tables."""
    parts: list[str] = []
    emit = lambda *a, end="\n": parts.append(" ".join(map(str, a)) + end)  # noqa: E731
    any_regime = next(iter(out.values()))["methods"]
    runs = {k: v["runs"] for k, v in any_regime.items()}
    emit(
        f"\narticle scale: 500 x 2-10-28-1 sigmoid with biases, mse/mean, full batch, "
        f"float32, SGD lr 0.5 / SG lr 0.1, {steps} steps; runs: engine "
        f"{runs['engine']}, tight numpy {runs['tight_numpy']} (one after another), "
        f"reference {runs['reference']}, torch {runs.get('torch', '-')}, lean JAX "
        f"{runs['lean_jax']}; best of {repeats}, warm-up untimed"
    )
    emit("\nrun-steps/s (one step of one run)")
    fmt = lambda v, f: "-" if v is None else format(v, f) + "x"  # noqa: E731
    rows = []
    for regime, res in out.items():
        m, r = res["methods"], res["ratios"]
        ref = f"{m['reference']['run_steps_per_s']:.0f}" + ("*" if parse_regime(regime)[1] else "")
        torch_s = (
            f"{m['torch']['run_steps_per_s']:.0f} ({m['torch']['threads']}t)"
            if "torch" in m
            else "-"
        )
        cores = m.get("engine_all_cores", {}).get("run_steps_per_s")
        rows.append(
            [
                regime,
                f"{m['engine']['run_steps_per_s']:.0f}",
                "-" if cores is None else f"{cores:.0f}",
                f"{m['tight_numpy']['run_steps_per_s']:.0f}",
                ref,
                torch_s,
                f"{m['lean_jax']['run_steps_per_s']:.0f}",
                f"{r['engine_over_tight_numpy']:.1f}x",
                fmt(r["engine_over_torch"], ".2f"),
                fmt(r.get("engine_all_cores_over_tight_numpy"), ".1f"),
                fmt(r.get("engine_all_cores_over_torch"), ".2f"),
                f"{r['engine_over_lean_jax']:.2f}x",
                f"{r['engine_over_reference']:.1f}x",
            ]
        )
    devices = any_regime.get("engine_all_cores", {}).get("devices", "-")
    emit(
        markdown_table(
            [
                "regime",
                "engine",
                f"engine ({devices})",
                "tight numpy",
                "reference",
                "torch (bmm)",
                "lean JAX",
                "engine / numpy",
                "engine / torch",
                "all cores / numpy",
                "all cores / torch",
                "engine / lean JAX",
                "engine / reference",
            ],
            rows,
        ),
        end="",
    )
    cores_note = (
        "  engine (N x cpu): the CPU split into one device per core, runs sharded, "
        "timed in a subprocess after the other columns."
        if devices != "-"
        else ""
    )
    emit(
        "* the reference runs without noise (it takes noise as an input); every other "
        "method draws its noise.  torch: (N t) = threads of its fastest call, chosen by an "
        f"untimed probe before each call.{cores_note}\n"
    )
    rows = []
    for regime, res in out.items():
        m = res["methods"]
        rows.append(
            [
                regime,
                f"{m['engine']['gflops']:.1f} "
                f"({100 * m['engine']['fraction_of_matmul_peak']:.0f}%)",
                f"{m['engine']['compile_s']:.2f}",
                f"{m['lean_jax']['compile_s']:.2f}",
                f"{m['engine']['memory_mb']:.1f}",
                f"{m['tight_numpy']['memory_mb']:.2f}",
                f"{m['reference']['memory_mb']:.2f}",
            ]
        )
    emit(
        markdown_table(
            [
                "regime",
                "engine GFLOP/s (% peak)",
                "engine compile s",
                "lean JAX compile s",
                "engine compiled MB",
                "numpy peak MB",
                "reference peak MB",
            ],
            rows,
        ),
        end="",
    )

    return "".join(parts)


def wide_markdown(out: dict, steps: int, n_runs: int, wide: tuple) -> str:
    """The wide-scale table."""
    parts: list[str] = []
    emit = lambda *a, end="\n": parts.append(" ".join(map(str, a)) + end)  # noqa: E731
    layers, units, batch = wide
    emit(
        f"\nwide scale: {layers} layers of {units} (ReLU), xent/mean, batch {batch}, float32, "
        f"{steps} "
        f"steps; engine {n_runs} runs, reference 1 run"
    )
    rows = []
    for regime, r in out.items():
        e = r["engine"]
        rows.append(
            [
                regime,
                f"{e['run_steps_per_s']:.1f}",
                f"{r['reference']['run_steps_per_s']:.1f}",
                f"{e['vs_reference']:.2f}x",
                f"{r['flops_per_step'] / 1e6:.1f}",
                f"{e['gflops']:.1f} ({100 * e['fraction_of_matmul_peak']:.0f}%)",
                f"{e['compile_s']:.2f}",
                f"{e['memory_mb']:.1f}",
            ]
        )
    emit(
        markdown_table(
            [
                "regime",
                "engine run-steps/s",
                "reference",
                "engine / reference",
                "MFLOP per run-step",
                "engine GFLOP/s (% peak)",
                "engine compile s",
                "engine compiled MB",
            ],
            rows,
        ),
        end="",
    )
    return "".join(parts)


def apply_peak(tree: Any, peak: float) -> None:
    """Sets ``fraction_of_matmul_peak`` beside every ``gflops`` figure in ``tree``."""
    if isinstance(tree, dict):
        if "gflops" in tree:
            tree["fraction_of_matmul_peak"] = tree["gflops"] / peak
        for v in tree.values():
            apply_peak(v, peak)


def worst(article: dict, key: str) -> tuple[float | None, str | None]:
    vals = {k: v["ratios"][key] for k, v in article.items() if v["ratios"].get(key) is not None}
    if not vals:
        return None, None
    regime = min(vals, key=vals.get)
    return vals[regime], regime


def targets(summary: dict) -> list[dict]:
    """Each target's value and verdict, for the engine as it runs by default (one device);
    the all-cores figures are shown beside them, not judged. A verdict is ``None`` where
    the figure was not measured (torch not installed, a child process that failed)."""
    a, w, t = summary["article_scale"], summary["wide_scale"], TARGETS
    numpy_v, torch_v = a["speedup_vs_tight_numpy"], a["speedup_vs_torch"]
    numpy_c, torch_c = a["all_cores_speedup_vs_tight_numpy"], a["all_cores_speedup_vs_torch"]
    cores = lambda v: "" if v is None else f"; all cores {v:.2f}x"  # noqa: E731
    time_over_flops = w["dni_over_backprop_time"] / w["dni_over_backprop_flops"]
    cmp, mem = summary["compile_default_compare"], summary["grid_memory"]
    rows = []

    def add(name, value, shown, goal, at_least=True):
        met = None if value is None else (value >= goal if at_least else value <= goal)
        rows.append({"target": name, "value": value, "measured": shown, "met": met})

    torch_shown = (
        "torch not installed"
        if torch_v is None
        else f"{torch_v:.2f}x (worst: {a['worst_regime_vs_torch']}){cores(torch_c)}"
    )
    add("engine >= 1x batched torch in every regime", torch_v, torch_shown, t["vs_torch"])
    add("stretch: engine >= 2x batched torch", torch_v, torch_shown, t["vs_torch_stretch"])
    numpy_shown = f"{numpy_v:.1f}x (worst: {a['worst_regime_vs_tight_numpy']}){cores(numpy_c)}"
    add("engine >= 3x tight numpy in every regime", numpy_v, numpy_shown, t["vs_tight_numpy"])
    add("stretch: engine >= 5x tight numpy", numpy_v, numpy_shown, t["vs_tight_numpy_stretch"])
    lean = a["engine_over_lean_jax"]
    add("engine >= 0.95x lean JAX (backprop)", lean, f"{lean:.2f}x", t["over_lean_jax"])
    for name, goal in (("cold", t["cold_compile_s"]), ("warm", t["warm_compile_s"])):
        sec = cmp[name].get("compile_s")
        shown = cmp[name]["error"] if sec is None else f"{sec:.2f} s"
        add(f"{name} compile of the default compare <= {goal:g} s", sec, shown, goal, False)
    gib = mem.get("peak_gib")
    add(
        f"{mem.get('runs', '?')}-run grid's peak memory <= {t['grid_memory_gib']:g} GiB",
        gib,
        mem["error"] if gib is None else f"{gib:.2f} GiB",
        t["grid_memory_gib"],
        False,
    )
    frac = w["backprop_fraction_of_matmul_peak"]
    add("wide backprop >= 60% of XLA matmul peak", frac, f"{100 * frac:.0f}%", 0.6)
    add(
        "DNI/backprop time <= 1.2x their FLOP ratio",
        time_over_flops,
        f"time ratio {w['dni_over_backprop_time']:.2f} / FLOP ratio "
        f"{w['dni_over_backprop_flops']:.2f} = {time_over_flops:.2f}",
        t["dni_time_over_flops"],
        False,
    )
    return rows


def report(summary: dict) -> str:
    """The markdown of a run, from its ``speed.json`` alone."""
    a, w, m = summary["article_scale"], summary["wide_scale"], summary["machine"]
    cmp, mem = summary["compile_default_compare"], summary["grid_memory"]
    lines = [
        f"{m['device']}, {m['cpu_cores']} CPU cores; float32 1024^3 matmul: XLA "
        f"{summary['matmul_peak_gflops']:.1f} GFLOP/s (the higher of the measurements before "
        f"and after the timings), numpy {summary['numpy_matmul_gflops']:.1f} GFLOP/s. "
        f"{m['blas']}. {m['torch']}; jax {m['jax']}, numpy {m['numpy']}.",
    ]
    parts = ["\n".join(lines) + "\n"]
    parts.append(article_markdown(a["details"], a["steps"], a["repeats"]))
    parts.append(wide_markdown(w["details"], w["steps"], w["runs"], tuple(w["shape"])))
    if "error" in mem:
        parts.append(f"\nPeak memory of a {mem.get('runs', '?')}-run grid: not measured.\n")
    else:
        parts.append(
            f"\nPeak memory of a {mem['runs']}-run article-scale DNI+noise grid "
            f"({mem['steps']} steps, automatic blocks, fresh process): {mem['peak_gib']:.2f} "
            f"GiB ({mem['peak_before_grid_gib']:.2f} GiB before the grid).\n"
        )
    for name in ("cold", "warm"):
        c = cmp[name]
        parts.append(
            f"\n{name.capitalize()} compile of `{cmp['call']}`: not measured.\n"
            if "error" in c
            else f"\n{name.capitalize()} compile of `{cmp['call']}` (fresh process, "
            f"{'empty' if name == 'cold' else 'filled'} persistent cache): "
            f"{c['compile_s']:.2f} s (first call {c['first_s']:.2f} s - second "
            f"{c['second_s']:.2f} s).\n"
        )
    if all("stages_s" in cmp[name] for name in ("cold", "warm")):
        names = list(dict.fromkeys([*cmp["cold"]["stages_s"], *cmp["warm"]["stages_s"]]))
        parts.append(
            "\nWhere the compile time goes: the costliest stages of the programs, as "
            "`jax_log_compiles` reports them (seconds, summed over the program's compiles; "
            "a program's stage missing from a column was not among that column's costliest)"
            "\n\n"
            + markdown_table(
                ["program (stage)", "cold s", "warm s"],
                [
                    [n]
                    + [
                        f"{cmp[c]['stages_s'][n]:.2f}" if n in cmp[c]["stages_s"] else "-"
                        for c in ("cold", "warm")
                    ]
                    for n in names
                ],
            )
        )
    verdict = lambda t: "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")  # noqa: E731
    parts.append(
        "\n**Targets**\n\n"
        + markdown_table(
            ["target", "measured", "verdict"],
            [[t["target"], t["measured"], verdict(t)] for t in summary["targets"]],
        )
    )
    if summary.get("profile"):
        header = list(summary["profile"][0])
        parts.append(
            "\n**Where the engine's time goes** (a speed target missed; "
            "`benchmarks/profile_step.py` at article scale, backprop, "
            f"{summary['profile_runs']} runs x {summary['profile_steps']} steps, each row "
            "adding one piece of the engine to the row above)\n\n"
            + markdown_table(header, [list(r.values()) for r in summary["profile"]])
        )
    parts.append(f"\nTotal time {summary['wall_s']:.0f} s.\n")
    return "".join(parts)
