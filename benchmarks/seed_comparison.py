"""The article's comparison at full size, both presets, with a markdown report.

    python benchmarks/seed_comparison.py [--quick] [--seeds N] [--out DIR]

Writes ``<out>/seed_comparison.json`` and ``seed_comparison.md`` (and each comparison's
``dnijax compare`` outputs beside it), for the seed preset, the tuned preset, and the tuned
preset with the noise on the network only (``noise_to="network"``; the article's choice is
noise on network and SG modules):
for every regime against backprop, paired by seed (same data, same initial weights),
the mean difference in final loss with its 95% interval, the seeds on which the regime
is lower, and the Wilcoxon signed-rank p-value, with a verdict that goes no further
than that test.
"""

from __future__ import annotations

import os
import time

import common
import numpy as np

from dnijax import report, stats
from dnijax.experiments import compare

ALPHA = 0.05


def verdicts(results: dict) -> list[str]:
    """One line per regime other than backprop: the paired test and what it supports."""
    lines = []
    for name, r in results["regimes"].items():
        p = r.get("paired_vs_backprop", {}).get("final_loss")
        if p is None:
            continue
        if p["mean_diff"] is None or p["p_value"] is None:
            lines.append(
                f"- {name}: too few seeds where both runs stayed finite "
                f"({p['n_both_finite']} of {p['n']})"
            )
            continue
        lo, hi = p["ci95"]
        if p["p_value"] < ALPHA:
            side = "higher" if p["mean_diff"] > 0 else "lower"
            verdict = f"{name}'s final loss is {side} than backprop's (p < {ALPHA})"
        else:
            verdict = f"no difference from backprop detected at this n (p ≥ {ALPHA})"
        lines.append(
            f"- {name} − backprop: {p['mean_diff']:+.3g} [{lo:+.3g}, {hi:+.3g}] per "
            f"seed; {name} lower on {p['wins']} of {p['n']} seeds; "
            f"p = {p['p_value']:.2g}: {verdict}."
        )
    return lines


RUNS = (
    ("seed", "seed", None, ""),
    ("tuned", "tuned", None, ""),
    (
        "tuned",
        "tuned-noise-network",
        {"noise_to": "network"},
        ", noise on the network only (the SG modules get none)",
    ),
)


def main() -> None:
    parser = common.make_parser(__doc__, "seed_comparison")
    parser.add_argument("--quick", action="store_true", help="3 seeds, 40 steps (smoke test)")
    parser.add_argument("--seeds", type=common.positive(int))
    args = parser.parse_args()
    common.claim(
        args,
        "seed_comparison",
        (*common.published("seed_comparison"), "seed", "tuned", "tuned-noise-network"),
    )
    args.seeds = args.seeds or (3 if args.quick else 20)
    steps = 40 if args.quick else None
    t0 = time.time()
    results: dict = {"seeds": args.seeds, "runs": {}}
    for preset, name, overrides, _ in RUNS:
        out = os.path.join(args.out, name)
        res = compare.run_compare(preset, seeds=args.seeds, steps=steps, overrides=overrides)
        report.write_compare(out, res, res.pop("datasets"), res.pop("params"))
        results["runs"][name] = res
    results["seconds"] = time.time() - t0
    common.publish(args.out, "seed_comparison", results, markdown)


def markdown(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    lines = [
        "# Which regime reaches the lowest cost?",
        "",
        f"Paired by seed: {stats.PAIRED_TEST}; intervals: 95% Student-t.",
        "",
    ]
    for preset, name, _, label in RUNS:
        res = results["runs"][name]
        lines += [
            f"## preset `{preset}`{label} ({results['seeds']} seeds)",
            "",
            *verdicts(res),
            "",
            report.summary_markdown(res),
            "",
        ]
    lines.append(f"Total time {results['seconds']:.0f}s.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
