"""Why DNI falls to the output layer's level, or below, in the deep FCN: the scaled
protocol, one deviation at a time moved toward the paper's.

The start is ``dni_depth.py``'s scaled protocol (``dnijax.experiments.protocols.FCN``) at its
deepest net, where DNI's gap to backprop is widest: mnist1d (40-sample 1-D signals, 10
classes), 6 layers (5 hidden ReLU layers of 96 units, He init, no batch norm), Adam 1e-3
for network and SG modules, batch 256, 2000 steps, and the paper's DNI module: two hidden
ReLU layers (of 96) and a zero-initialised last layer, regressing the per-example gradient.
Each row changes one setting toward the paper and keeps the others: the SG target
(``sg_target="batch"``), the SG scale (0.1, what recurrent reimplementations use), the
paper's learning rate (Adam 3e-5), wider SG modules (256, toward the paper's 1024), the
paper's hidden width (256) and a doubled budget. Batch 256 is already the paper's; batch norm
is not a dnijax layer kind yet, so it has no row.

Paired: seed s starts from the same initial network (where the width is kept) and draws
the same minibatches in every row. Reported per row: DNI's test error (%) with its 95%
interval and n, and the per-seed difference from the scaled protocol's DNI with its 95%
interval, the seeds it lowers and the Wilcoxon p.

    python benchmarks/fcn_ablation.py [--quick] [--data mnist1d|digits] [--seeds 8] [--steps 2000]
"""

from __future__ import annotations

import ablation
import common
import numpy as np
from ablation import figure
from dni_depth import base_config

from dnijax import stats

LAYERS, WIDTH = 6, 96
QUICK_FACTORS = ("lr",)  # the smoke test: DNI and one factor (the same program)


def factors(ds, layers: int, width: int) -> tuple[ablation.Factor, ...]:
    """(key, the setting, its scaled value -> the value tried, RunConfig fields changed)
    for a net of ``layers`` layers of ``width`` on ``ds``."""
    wide = (ds.n_features,) + (256,) * (layers - 1) + (ds.n_classes,)
    return (
        (
            "sg_target",
            "SG target",
            "per-example gradient -> batch-mean loss's",
            {"sg_target": "batch"},
        ),
        ("sg_scale", "SG scale", "1 -> 0.1", {"sg_scale": 0.1}),
        ("lr", "learning rate", "Adam 1e-3 -> 3e-5 (the paper's)", {"lr": 3e-5}),
        ("sg_width", "SG width", f"{width} -> 256 (paper 1024)", {"sg_hidden": (256, 256)}),
        ("width", "hidden width", f"{width} -> 256 (the paper's)", {"widths": wide}),
        ("budget", "budget", "2000 -> 4000 steps (paper 500k)", "double"),
    )


def report(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    return (
        f"# DNI on the {results['data']} FCN, one deviation at a time ({results['layers']} "
        f"layers of {results['width']}, {results['steps']} steps at the start, "
        f"{results['seeds']} seeds)\n\n"
        f"{ablation.markdown(results)}\n"
        "The rows after DNI's each change one setting; batch norm has no row (no "
        f"batch-norm layer kind yet). {stats.INTERVAL}; {stats.PAIRED_TEST}. "
        f"Total time {results['seconds']:.0f}s.\n"
    )


def main() -> None:
    parser = common.base_parser(__doc__, "fcn_ablation", default_data="mnist1d")
    args = parser.parse_args()
    layers, width = (3, 16) if args.quick else (LAYERS, WIDTH)
    steps = args.steps or (20 if args.quick else 2000)
    seeds = args.seeds or (2 if args.quick else 8)
    common.claim(args, "fcn_ablation", common.published("fcn_ablation"))
    ds = common.load(args.data)
    base = base_config(ds, layers, width, steps)
    base.update(
        lr=1e-3, sg_hidden=(width, width), log_every=steps // 2 if args.quick else steps // 10
    )
    quick = QUICK_FACTORS if args.quick else None
    results = {"data": args.data, "layers": layers, "width": width, "steps": steps, "seeds": seeds}
    cells = ablation.data_cells(ds, seeds)
    results.update(ablation.run(cells, base, factors(ds, layers, width), quick))
    common.publish(args.out, "fcn_ablation", results, report, figure)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
