"""The command line: ``dnijax compare | sweep | validate``.

Bad options get one line on stderr and exit code 2, before anything is compiled
or written.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Sequence

from dnijax.config import REGIMES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        sys.stderr.write(f"dnijax: error: {message}\n")
        sys.exit(2)


def _positive_int(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}")
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {value}")
        return value
    return parse


def _positive_float(name: str, allow_zero: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}")
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {text!r}")
        return value
    return parse


def _float_list(text: str) -> list[float]:
    parse = _positive_float("--lr")
    values = [parse(v) for v in text.replace(",", " ").split()]
    if not values:
        raise argparse.ArgumentTypeError("--lr needs at least one value, e.g. 0.1,1,10")
    return values


def _regime_list(text: str) -> list[str]:
    names = [v for v in text.replace(",", " ").split()]
    for n in names:
        if n not in REGIMES:
            raise argparse.ArgumentTypeError(f"unknown regime {n!r}; choose from "
                                             f"{', '.join(REGIMES)}")
    return names


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, label: str):
        self.label, self.start, self.last = label, time.time(), -1
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        frac = done / max(total, 1)
        pct = int(frac * 100)
        if not self.tty and pct // 25 == self.last // 25 and done < total:
            return
        self.last = pct
        bar = "#" * int(frac * 30)
        line = f"{self.label} [{bar:<30}] {pct:3d}% {time.time() - self.start:5.1f}s"
        sys.stderr.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def cmd_compare(args: argparse.Namespace) -> int:
    from dnijax import report, store
    from dnijax.experiments import compare, presets
    out = args.out or os.path.join("runs", f"compare-{args.preset}")
    # validate everything before anything runs or is written
    overrides = _overrides(args)
    presets.preset_config(args.preset, steps=args.steps, lr=args.lr, sg_lr=args.sg_lr,
                          eta=args.eta, overrides=overrides)
    store.check_out_dir(out)
    seeds = args.seeds or presets.DEFAULT_SEEDS[args.preset]
    t0 = time.time()
    res = compare.run_compare(args.preset, seeds=seeds, steps=args.steps, lr=args.lr,
                              sg_lr=args.sg_lr, eta=args.eta, overrides=overrides,
                              progress=Progress(f"compare {args.preset}"))
    train_s = time.time() - t0
    datasets, params = res.pop("datasets"), res.pop("params")
    written = report.write_compare(out, res, datasets, params)
    print(report.summary_markdown(res))
    print(f"trained in {train_s:.1f}s, total {time.time() - t0:.1f}s; wrote "
          f"{', '.join(written)} to {out}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from dnijax import report, store
    from dnijax.experiments import lr_sweep, presets
    out = args.out or os.path.join("runs", f"sweep-{args.preset}")
    overrides = _overrides(args)
    for lr in args.lr:
        presets.preset_config(args.preset, steps=args.steps, lr=lr, sg_lr=args.sg_lr,
                              overrides=overrides)
    store.check_out_dir(out)
    t0 = time.time()
    res = lr_sweep.run_sweep(out, args.preset, args.lr, args.regimes, args.seeds,
                             args.steps, args.sg_lr, args.overwrite,
                             log=lambda m: print(m, file=sys.stderr), overrides=overrides)
    written = report.write_sweep(out, res)
    print("median final loss over healthy seeds (fraction of seeds diverged)\n")
    print(report.sweep_markdown(res))
    print(f"{time.time() - t0:.1f}s; wrote {', '.join(written)} to {out}")
    return 0


def _overrides(args: argparse.Namespace) -> dict | None:
    from dnijax.config import load_overrides
    return load_overrides(args.config) if args.config else None


def cmd_validate(args: argparse.Namespace) -> int:
    from dnijax import validate
    return validate.run_table(args.depth, args.width, args.steps, args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dnijax", description="Backprop, DNI and gradient noise, compared.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("compare", help="the article's four-regime comparison")
    c.add_argument("--preset", choices=("tuned", "seed"), default="tuned")
    c.add_argument("--seeds", type=_positive_int("--seeds"))
    c.add_argument("--steps", type=_positive_int("--steps"))
    c.add_argument("--lr", type=_positive_float("--lr"))
    c.add_argument("--sg-lr", type=_positive_float("--sg-lr"))
    c.add_argument("--eta", type=_positive_float("--eta", allow_zero=True))
    c.add_argument("--config", help="JSON file of RunConfig fields overriding the preset")
    c.add_argument("--out", help="output folder (default runs/compare-<preset>)")
    c.set_defaults(func=cmd_compare)

    s = sub.add_parser("sweep", help="learning-rate sensitivity per regime")
    s.add_argument("--lr", type=_float_list, required=True, help="e.g. 0.1,0.3,1,3")
    s.add_argument("--regimes", type=_regime_list, default=list(REGIMES))
    s.add_argument("--preset", choices=("tuned", "seed"), default="tuned")
    s.add_argument("--seeds", type=_positive_int("--seeds"), default=5)
    s.add_argument("--steps", type=_positive_int("--steps"))
    s.add_argument("--sg-lr", type=_positive_float("--sg-lr"),
                   help="SG-module learning rate (default: the swept lr)")
    s.add_argument("--config", help="JSON file of RunConfig fields overriding the preset")
    s.add_argument("--out", help="output folder (default runs/sweep-<preset>)")
    s.add_argument("--overwrite", action="store_true",
                   help="replace results of a different configuration in --out")
    s.set_defaults(func=cmd_sweep)

    v = sub.add_parser("validate", help="hold JAX to the numpy reference")
    v.add_argument("--depth", type=_positive_int("--depth"), default=3)
    v.add_argument("--width", type=_positive_int("--width"), default=8)
    v.add_argument("--steps", type=_positive_int("--steps"), default=100)
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=cmd_validate)
    return parser


def enable_compilation_cache() -> None:
    """Keeps compiled programs across runs in ``$DNIJAX_CACHE`` (default
    ``~/.cache/dnijax/xla``; set it empty to disable): a rerun skips XLA compilation."""
    import jax
    path = os.environ.get("DNIJAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache",
                                                       "dnijax", "xla"))
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    enable_compilation_cache()
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        sys.stderr.write(f"dnijax: error: {message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("dnijax: interrupted; finished blocks are kept, rerun to resume\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
