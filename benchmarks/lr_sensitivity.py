"""Learning-rate sensitivity at full size: one shared lr, then a fixed SG lr, with a report.

    python benchmarks/lr_sensitivity.py [--quick] [--seeds N] [--out DIR]

Answers the article's remark that DNI explodes at large learning rates, and whether
the SG modules' learning rate is the cause.
"""

from __future__ import annotations

import os

import common

from dnijax import report, store
from dnijax.experiments import lr_sweep

LRS = (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30)


def first_divergent_lr(results: dict, regime: str) -> float | None:
    """The smallest learning rate at which at least half of the seeds diverged."""
    for lr, frac in zip(results["lrs"], results["regimes"][regime]["diverged_fraction"]):
        if frac >= 0.5:
            return lr
    return None


def main() -> None:
    parser = common.make_parser(__doc__, "lr_sensitivity")
    parser.add_argument(
        "--quick", action="store_true", help="2 learning rates, 2 seeds, 40 steps (smoke test)"
    )
    parser.add_argument("--seeds", type=common.positive(int))
    args = parser.parse_args()
    common.claim(args, "lr_sensitivity", ("report.md",))  # each sweep claims its own folder
    args.seeds = args.seeds or (2 if args.quick else 10)
    lrs, steps = ((0.3, 30), 40) if args.quick else (LRS, None)
    lines = ["# Learning-rate sensitivity of the four regimes", ""]
    for label, sg_lr in (("one lr for network and SG modules", None), ("SG lr fixed at 0.1", 0.1)):
        out = os.path.join(args.out, "shared" if sg_lr is None else "sg_lr_0.1")
        res = lr_sweep.run_sweep(out, "tuned", lrs, seeds=args.seeds, steps=steps, sg_lr=sg_lr)
        report.write_sweep(out, res)
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
    store.atomic_write_bytes(os.path.join(args.out, "report.md"), "\n".join(lines).encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
