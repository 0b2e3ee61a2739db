"""The article's comparison at full size, both presets, with a markdown report.

    python benchmarks/seed_comparison.py [--seeds N] [--out DIR]

Writes ``<out>/report.md`` (and each preset's ``dnijax compare`` outputs beside it)
stating which regime reaches the lowest cost, with the spread over seeds.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from dnijax import report, store
from dnijax.experiments import compare
from dnijax.stats import healthy_values


def ranking(res: dict) -> list[tuple[str, float, float, int]]:
    """(regime, mean final loss, std, diverged count) sorted by mean final loss."""
    rows = []
    for name, r in res["regimes"].items():
        h = healthy_values(r["final_loss"], r["diverged_at"])
        rows.append((name, float(h.mean()) if h.size else float("inf"),
                     float(h.std()) if h.size else float("nan"),
                     sum(d is not None for d in r["diverged_at"])))
    return sorted(rows, key=lambda row: row[1])


def paired(results: dict, best: str) -> list[str]:
    """Per-seed differences to the best regime (same seeds, same initial weights)."""
    res = results["regimes"]
    lines = []
    for name, r in res.items():
        if name == best:
            continue
        pairs = [(a, b) for a, b, da, db in zip(r["final_loss"], res[best]["final_loss"],
                                                r["diverged_at"], res[best]["diverged_at"])
                 if da is None and db is None]
        if not pairs:
            lines.append(f"- {name}: every paired seed diverged")
            continue
        diff = np.array([a - b for a, b in pairs])
        wins = int((diff > 0).sum())
        lines.append(f"- {name} - {best}: {diff.mean():+.3g} ± {diff.std():.2g} per seed; "
                     f"{best} is lower on {wins} of {len(diff)} seeds")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", default=os.path.join("runs", "seed_comparison"))
    args = parser.parse_args()
    lines = ["# Which regime reaches the lowest cost?", ""]
    for preset in ("seed", "tuned"):
        out = os.path.join(args.out, preset)
        res = compare.run_compare(preset, seeds=args.seeds)
        report.write_compare(out, res, res.pop("datasets"), res.pop("params"))
        rows = ranking(res)
        best, second = rows[0], rows[1]
        gap = second[1] - best[1]
        spread = max(best[2], second[2])
        verdict = ("clearly lowest" if gap > 2 * spread else
                   "lowest, but within the spread over seeds of " + second[0])
        lines += [f"## preset `{preset}` ({args.seeds} seeds)", "",
                  f"Lowest mean final loss: **{best[0]}** ({best[1]:.4g} ± {best[2]:.2g}), "
                  f"{verdict} ({second[1]:.4g} ± {second[2]:.2g}).", "",
                  "Paired by seed (final loss difference to the lowest regime):", "",
                  *paired(res, best[0]), "", report.summary_markdown(res), ""]
    store.atomic_write_bytes(os.path.join(args.out, "report.md"), "\n".join(lines).encode())
    print("\n".join(lines))
    print(f"wrote {os.path.join(args.out, 'report.md')}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
