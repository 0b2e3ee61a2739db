"""Why DNI is no better than truncated BPTT on Copy: the scaled protocol, one deviation at a
time moved toward the paper's.

The start is ``copy_task.py``'s scaled protocol (``dnijax.experiments.protocols.COPY``) at one
truncation ``--window`` (5): an LSTM of 64 units, Adam 1e-2 for network and SG module,
batch 16, 2000 episodes, the length curriculum (0.15 bits per target bit, lengths up to 12),
every episode starting from the zero state, and DNI's linear zero-initialised SG module
regressing the per-example gradient at full scale. Each row changes one setting toward the
paper and keeps the others: the state carried from episode to episode (``carry_state``, the
paper's stream), the SG target (``sg_target="batch"``), the SG scale (0.1, "as in the
paper" in the reimplementations), a learning rate toward the paper's (Adam 1e-3; the paper's
is about 7e-5) and a doubled budget. Two rows add this study's gradient noise (eta 0.01,
gamma 0.55), on network and SG module as in ``copy_task.py``, and on the network only.
The paper's LSTM of 256 units and batch of 256 are not run: each multiplies the cost of a
row by about 16. Truncated BPTT on the scaled protocol frames the table.

Paired: seed s starts from the same initial network and draws the same sequences in every
row. Reported per row: the longest length solved, with its 95% interval and n, and the
per-seed difference from the scaled protocol's DNI with its 95% interval, the seeds it
lengthens and the Wilcoxon p.

    python benchmarks/copy_ablation.py [--quick] [--seeds 8] [--episodes 2000] [--window 5]
"""

from __future__ import annotations

import ablation
import common
import numpy as np
from copy_task import arm_cell, base_config

from dnijax import RunConfig, engine, stats

LENGTH = ablation.Metric(
    "solved", "longest length solved (mean [95% CI], n)", "lengths", stats.NONNEGATIVE, False
)
# (key, the setting, its scaled value -> the value tried, RunConfig fields changed)
FACTORS = (
    (
        "stream",
        "sequences",
        "episodes from the zero state -> one stream per batch lane (the paper's)",
        {"carry_state": True},
    ),
    ("sg_target", "SG target", "per-example gradient -> batch-mean loss's", {"sg_target": "batch"}),
    ("sg_scale", "SG scale", "1 -> 0.1 (the reimplementations')", {"sg_scale": 0.1}),
    ("lr", "learning rate", "Adam 1e-2 -> 1e-3 (paper ~7e-5)", {"lr": 1e-3}),
    ("budget", "budget", "2000 -> 4000 episodes", "double"),
    ("noise", "noise", "none -> network and SG module", {"regime": "dni+noise"}),
    (
        "noise_network",
        "noise on the network",
        "none -> the network only",
        {"regime": "dni+noise", "noise_to": "network"},
    ),
)
QUICK_FACTORS = ("lr",)  # the smoke test: DNI and one factor (the same program)
FRAME = (("backprop", "backprop", "truncated BPTT"),)


def sequence_cells(seeds: int):
    """The cell of a Copy ablation: every seed of one row in one program."""

    def cell(arm: str, fields: dict, label: str) -> dict:
        cfg = RunConfig(**{"regime": arm, **fields})
        res = engine.run_grid(
            cfg,
            engine.stack_hyper(cfg, lr=[cfg.lr] * seeds),
            engine.run_keys(0, seeds),
            None,
            progress=common.progress_line(label),
        )
        return arm_cell(res, slice(None))

    return cell


def report(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    return (
        f"# DNI on Copy, one deviation at a time (T = {results['window']}, LSTM "
        f"{results['hidden']}, {results['steps']} episodes at the start, {results['seeds']} "
        f"seeds)\n\n{ablation.markdown(results, LENGTH)}\n"
        "The rows after DNI's each change one setting; the paper's LSTM 256 and batch 256 "
        f"are not run. {stats.INTERVAL}; {stats.PAIRED_TEST}. "
        f"Total time {results['seconds']:.0f}s.\n"
    )


def figure(results: dict, path: str) -> None:
    ablation.figure(results, path, LENGTH)


def main() -> None:
    parser = common.make_parser(__doc__, "copy_ablation")
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--seeds", type=common.positive(int))
    parser.add_argument("--episodes", type=common.positive(int))
    parser.add_argument("--window", type=common.positive(int), help="truncation T (default 5)")
    args = parser.parse_args()
    seeds = args.seeds or (2 if args.quick else 8)
    episodes = args.episodes or (20 if args.quick else 2000)
    window = args.window or (3 if args.quick else 5)
    common.claim(args, "copy_ablation", common.published("copy_ablation"))
    base = base_config("copy", 8 if args.quick else 64, episodes, 1e-2, args.quick)
    base["window"] = window
    quick = QUICK_FACTORS if args.quick else None
    results = {"seeds": seeds, **base}
    results.update(ablation.run(sequence_cells(seeds), base, FACTORS, quick, LENGTH, FRAME))
    common.publish(args.out, "copy_ablation", results, report, figure)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
