"""Learning-rate sensitivity at full size: one shared lr, then a fixed SG lr, with a report.

    python benchmarks/lr_sensitivity.py [--quick] [--seeds N] [--out DIR]

Answers the article's remark that DNI explodes at large learning rates, and whether
the SG modules' learning rate is the cause.
"""

from __future__ import annotations

import os
import time

import common

from dnijax import report
from dnijax.experiments import lr_sweep

LRS = (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30)


def first_divergent_lr(results: dict, regime: str) -> float | None:
    """The smallest learning rate at which at least half of the seeds diverged."""
    for lr, frac in zip(
        results["lrs"], results["regimes"][regime]["diverged_fraction"], strict=False
    ):
        if frac >= 0.5:
            return lr
    return None


SWEEPS = (  # (folder, label, SG lr)
    ("shared", "one lr for network and SG modules", None),
    ("sg_lr_0.1", "SG lr fixed at 0.1", 0.1),
)


def main() -> None:
    parser = common.make_parser(__doc__, "lr_sensitivity")
    parser.add_argument(
        "--quick", action="store_true", help="2 learning rates, 2 seeds, 40 steps (smoke test)"
    )
    parser.add_argument("--seeds", type=common.positive(int))
    args = parser.parse_args()
    # each sweep claims its own folder
    common.claim(args, "lr_sensitivity", common.published("lr_sensitivity"))
    args.seeds = args.seeds or (2 if args.quick else 10)
    lrs, steps = ((0.3, 30), 40) if args.quick else (LRS, None)
    t0 = time.time()
    results: dict = {"seeds": args.seeds, "sweeps": {}}
    for name, _, sg_lr in SWEEPS:
        out = os.path.join(args.out, name)
        res = lr_sweep.run_sweep(out, "tuned", lrs, seeds=args.seeds, steps=steps, sg_lr=sg_lr)
        report.write_sweep(out, res)
        results["sweeps"][name] = res
    results["seconds"] = time.time() - t0
    common.publish(args.out, "lr_sensitivity", results, markdown, figure)


def markdown(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    lines = ["# Learning-rate sensitivity of the four regimes", ""]
    for name, label, _ in SWEEPS:
        res = results["sweeps"][name]
        lines += [f"## {label}", ""]
        for regime in res["regimes"]:
            lr = first_divergent_lr(res, regime)
            any_div = sum(f > 0 for f in res["regimes"][regime]["diverged_fraction"])
            lines.append(
                f"- {regime}: "
                + (
                    f"half or more of the seeds diverge from lr {lr:g}"
                    if lr is not None
                    else "no learning rate tried made half the seeds diverge"
                    + (f" ({any_div} lr(s) with some diverged seeds)" if any_div else "")
                )
            )
        lines += ["", report.sweep_markdown(res), ""]
    lines.append(f"Total time {results['seconds']:.0f}s.")
    return "\n".join(lines) + "\n"


def figure(results: dict, path: str) -> None:
    """Both sweeps' heatmaps (median final loss, diverged fraction), one row each."""
    import matplotlib.pyplot as plt

    from dnijax import figures

    width, height = figures.sensitivity_size(results["sweeps"]["shared"])
    fig, axes = plt.subplots(len(SWEEPS), 2, figsize=(width, height * len(SWEEPS)), dpi=110)
    for row, (name, label, _) in zip(axes, SWEEPS, strict=True):
        figures.draw_sensitivity(results["sweeps"][name], fig, row, title=f"{label}: ")
    common.save_figure(fig, path)


if __name__ == "__main__":
    main()
