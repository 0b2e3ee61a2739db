"""The command line: ``dnijax compare | sweep | validate | report``.

Bad options (and bad ``--data`` files) get one line on stderr and exit code 2, before
anything is compiled or written.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from dnijax import distributed
from dnijax.config import REGIMES
from dnijax.options import Parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default; an option whose default is ``None`` (the preset's
    value, or none) says what that means in its own help instead of "(default: None)"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def _positive_int(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {value}")
        return value

    return parse


def _positive_float(name: str, allow_zero: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {text!r}"
            )
        return value

    return parse


def _float_list(text: str) -> list[float]:
    parse = _positive_float("--lr")
    values = [parse(v) for v in text.replace(",", " ").split()]
    if not values:
        raise argparse.ArgumentTypeError("--lr needs at least one value, e.g. 0.1,1,10")
    return values


def _regime_list(text: str) -> list[str]:
    from dnijax.config import regime_names

    names = [v for v in text.replace(",", " ").split()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one regime, e.g. backprop,dni")
    for n in names:
        if n not in regime_names():
            raise argparse.ArgumentTypeError(
                f"unknown regime {n!r}; choose from {', '.join(regime_names())}"
            )
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


def _default_out(command: str, args: argparse.Namespace) -> str:
    """``runs/<command>-<preset>``, with ``-<data name>`` for data other than the article's."""
    from dnijax.experiments import presets

    name = f"{command}-{args.preset}"
    if args.data not in (None, presets.DEFAULT_DATA):
        name += "-" + os.path.splitext(os.path.basename(args.data.rstrip("/\\")))[0]
    return os.path.join("runs", name)


def cmd_compare(args: argparse.Namespace) -> int:
    from dnijax import report, store
    from dnijax.experiments import compare, presets

    if args.task:
        return _compare_task(args)
    _task_or_preset(args)
    out = args.out or _default_out("compare", args)
    # validate everything (seed 0's data included) before anything runs or is written
    overrides = _overrides(args)
    notes: list[str] = []
    cfg = presets.preset_config(
        args.preset,
        steps=args.steps,
        lr=args.lr,
        sg_lr=args.sg_lr,
        eta=args.eta,
        overrides=overrides,
        data=args.data,
        notify=notes.append,
    )
    seeds = args.seeds or presets.DEFAULT_SEEDS[args.preset]
    regimes = compare.check_regimes(args.regimes or REGIMES, cfg)
    _join_processes(args, compare.grid_runs(seeds, regimes), "grid")
    distributed.on_writer(
        store.claim_out_dir,
        out,
        compare.manifest(args.preset, cfg, seeds, args.data, regimes),
        args.overwrite,
        report.COMPARE_OUTPUTS,
    )
    writer = distributed.is_writer()
    for note in notes if writer else ():
        print(f"dnijax: {note}", flush=True)
    if writer:
        print(
            f"dnijax: compare {args.preset}: {seeds} seeds x {cfg.steps} steps x "
            f"{len(regimes)} regimes; {_compile_note()}",
            flush=True,
        )
    t0 = time.time()
    res = compare.run_compare(
        args.preset,
        seeds=seeds,
        steps=args.steps,
        lr=args.lr,
        sg_lr=args.sg_lr,
        eta=args.eta,
        overrides=overrides,
        progress=Progress(f"compare {args.preset}") if writer else None,
        data=args.data,
        regimes=regimes,
    )
    train_s = time.time() - t0
    if not writer:
        return _done_elsewhere(out)
    datasets, params = res.pop("datasets"), res.pop("params")
    written = report.write_compare(out, res, datasets, params)
    print(report.summary_markdown(res))
    skipped = report.decision_regions_skipped(res["config"])
    print(
        f"trained in {train_s:.1f}s, total {time.time() - t0:.1f}s; wrote "
        f"{', '.join(written)} to {out}"
        + (f" (no decision_regions.png: {skipped})" if skipped else "")
    )
    return 0


TASK_OPTIONS = {"copy": "copy", "repeat-copy": "repeat_copy"}


def _compare_task(args: argparse.Namespace) -> int:
    """``dnijax compare --task``: the four regimes on a sequence task, written like a
    comparison on data."""
    from dnijax import report, store
    from dnijax.experiments import compare, presets

    task = _task_or_preset(args)
    out = args.out or os.path.join("runs", f"compare-{args.task}")
    overrides = _overrides(args)
    cfg = presets.task_config(
        task, steps=args.steps, lr=args.lr, sg_lr=args.sg_lr, eta=args.eta, overrides=overrides
    )
    seeds = args.seeds or presets.DEFAULT_TASK_SEEDS
    regimes = compare.check_regimes(args.regimes or REGIMES, cfg)
    _join_processes(args, compare.grid_runs(seeds, regimes), "grid")
    distributed.on_writer(
        store.claim_out_dir,
        out,
        compare.manifest(task, cfg, seeds, None, regimes),
        args.overwrite,
        report.TASK_COMPARE_OUTPUTS,
    )
    writer = distributed.is_writer()
    if writer:
        print(
            f"dnijax: compare --task {args.task}: {seeds} seeds x {cfg.steps} episodes x "
            f"{len(regimes)} regimes; {_compile_note('the default LSTM takes about 10 s')}",
            flush=True,
        )
    t0 = time.time()
    res = compare.run_task_compare(
        task,
        seeds=seeds,
        steps=args.steps,
        lr=args.lr,
        sg_lr=args.sg_lr,
        eta=args.eta,
        overrides=overrides,
        progress=Progress(f"compare {args.task}") if writer else None,
        regimes=regimes,
    )
    train_s = time.time() - t0
    if not writer:
        return _done_elsewhere(out)
    written = report.write_compare(out, res)
    print(report.summary_markdown(res))
    print(
        f"trained in {train_s:.1f}s, total {time.time() - t0:.1f}s; wrote "
        f"{', '.join(written)} to {out}"
    )
    return 0


def _compile_note(first: str = "the default network takes about 5 s") -> str:
    """What the first progress line waits for: compiling, or the cached programs."""
    if not compilation_cache_dir():
        return f"compiling first ({first} on 2 cores; the compilation cache is off)"
    return f"compiling first ({first} on 2 cores; reruns load the programs from the cache)"


def _task_or_preset(args: argparse.Namespace) -> str:
    """The preset (default ``tuned``) or, with ``--task``, the sequence task's name; a task
    refuses ``--data`` and ``--preset``."""
    if not getattr(args, "task", None):
        args.preset = args.preset or "tuned"
        return args.preset
    for option, value in (("--data", args.data), ("--preset", args.preset)):
        if value is not None:
            raise ValueError(
                f"{option}: a sequence task makes its own data and has its own "
                f"settings; drop {option} or --task"
            )
    return TASK_OPTIONS[args.task]


def cmd_sweep(args: argparse.Namespace) -> int:
    from dnijax import report, store
    from dnijax.experiments import lr_sweep, presets

    preset = _task_or_preset(args)
    overrides = _overrides(args)
    notes: list[str] = []
    if args.task:
        out = args.out or os.path.join("runs", f"sweep-{args.task}")
        base = presets.task_config(preset, steps=args.steps, sg_lr=args.sg_lr, overrides=overrides)
    else:
        out = args.out or _default_out("sweep", args)
        base = presets.preset_config(
            preset,
            steps=args.steps,
            sg_lr=args.sg_lr,
            overrides=overrides,
            data=args.data,
            notify=notes.append,
        )
    for lr in args.lr:  # every learning rate, validated by the config
        base.replace(lr=lr)
    _join_processes(args, [args.seeds], "sweep block")
    distributed.on_writer(
        store.claim_out_dir,
        out,
        lr_sweep.manifest(
            base, preset, args.lr, args.regimes, seeds=args.seeds, sg_lr=args.sg_lr, data=args.data
        ),
        args.overwrite,
        report.SWEEP_OUTPUTS,
    )
    writer = distributed.is_writer()
    for note in notes if writer else ():
        print(f"dnijax: {note}", flush=True)
    label = f"--task {args.task}" if args.task else preset
    if writer:
        print(
            f"dnijax: sweep {label}: {len(args.regimes)} regimes x {len(args.lr)} learning "
            f"rates x {args.seeds} seeds x {base.steps} "
            f"{'episodes' if args.task else 'steps'}; {_compile_note()}",
            flush=True,
        )
    t0 = time.time()
    res = lr_sweep.run_sweep(
        out,
        preset,
        args.lr,
        args.regimes,
        seeds=args.seeds,
        steps=args.steps,
        sg_lr=args.sg_lr,
        overwrite=args.overwrite,
        log=lambda m: print(m, file=sys.stderr),
        overrides=overrides,
        data=args.data,
    )
    if not writer:
        return _done_elsewhere(out)
    written = report.write_sweep(out, res)
    print(report.sweep_markdown(res))
    print(f"{time.time() - t0:.1f}s; wrote {', '.join(written)} to {out}")
    return 0


def _join_processes(args: argparse.Namespace, runs: Sequence[int], what: str) -> None:
    """Joins this process to a multi-process run (:func:`dnijax.distributed.initialize`;
    nothing with one process), once the command's options are checked. A process count
    that does not divide the runs of every grid is refused in one line
    (:func:`dnijax.distributed.split_error`): before connecting when ``--processes`` is a
    number, once the count is known with ``auto``."""
    if isinstance(args.processes, int):
        _check_split(runs, what, args.processes)
    distributed.initialize(
        args.processes,
        args.process_id,
        args.coordinator,
        args.coordinator_timeout,
        fingerprint=_fingerprint(args),
    )
    _check_split(runs, what)


def _check_split(runs: Sequence[int], what: str, processes: int | None = None) -> None:
    for n in dict.fromkeys(runs):
        reason = distributed.split_error(n, what, processes)
        if reason:
            raise ValueError(reason)


def _done_elsewhere(out: str) -> int:
    """A process other than 0 of a multi-process run: trained its share; writes nothing."""
    import jax

    print(
        f"dnijax: process {jax.process_index()} of {jax.process_count()} done; process 0 "
        f"writes the results to {out}",
        flush=True,
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dnijax import report

    kind, written, skipped = report.rebuild(args.dir)
    print(
        f"dnijax report: rebuilt {', '.join(written)} in {args.dir} from results.json "
        f"({kind})" + (f"; no decision_regions.png: {skipped}" if skipped else "")
    )
    return 0


def _overrides(args: argparse.Namespace) -> dict | None:
    from dnijax.config import load_overrides

    return load_overrides(args.config) if args.config else None


def cmd_validate(args: argparse.Namespace) -> int:
    from dnijax import validate

    return validate.run_table(args.depth, args.width, args.steps, args.seed, args.arch)


def _preset_default(field: str, unset: str = "") -> str:
    """``"the preset's: tuned 2000, seed 100"``: a field's value in each preset."""
    from dnijax.experiments import presets

    values = (
        presets.DEFAULT_SEEDS
        if field == "seeds"
        else {name: getattr(cfg, field) for name, cfg in presets.PRESETS.items()}
    )
    cells = [f"{name} " + (unset if v is None else f"{v:g}") for name, v in values.items()]
    return f"the preset's: {', '.join(sorted(cells, reverse=True))}"


def _processes(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return _positive_int("--processes")(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"--processes must be an integer >= 1 or auto, got {text!r}"
        ) from None


def _process_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--process-id must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--process-id must be >= 0, got {value}")
    return value


def _add_distributed_options(parser: argparse.ArgumentParser) -> None:
    """The options of a multi-process run (:mod:`dnijax.distributed`)."""
    parser.add_argument(
        "--processes",
        type=_processes,
        metavar="N|auto",
        help="run as one of N processes that share every grid's runs (each process starts "
        "the same command with its own --process-id; process 0 alone writes); auto: the "
        "count, id and coordinator that jax.distributed reads from SLURM, Open MPI, a "
        "Cloud TPU pod or Kubernetes (default: one process)",
    )
    parser.add_argument(
        "--process-id",
        type=_process_id,
        metavar="I",
        help="this process's index, 0..N-1, with --processes N (default: none)",
    )
    parser.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="where process 0 runs and listens (a free port there), with --processes N "
        "(default: none)",
    )
    parser.add_argument(
        "--coordinator-timeout",
        type=_positive_float("--coordinator-timeout"),
        default=distributed.DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="how long each process waits for the others to start before it stops with "
        "a one-line error",
    )


def _fingerprint(args: argparse.Namespace) -> str:
    """A digest of a command's configuration, every process's own options aside
    (``--process-id``, ``--coordinator-timeout``), with the contents of the files that
    ``--config`` and ``--data`` name: processes with other fingerprints are refused."""
    import hashlib

    skip = {"func", "process_id", "coordinator_timeout"}
    options = {k: v for k, v in sorted(vars(args).items()) if k not in skip}
    files = {}
    for name in ("config", "data"):
        path = getattr(args, name, None)
        if path and os.path.isfile(path):
            with open(path, "rb") as f:
                files[name] = hashlib.sha256(f.read()).hexdigest()
    return distributed.fingerprint_of(options, files)


def build_parser() -> argparse.ArgumentParser:
    from dnijax import __version__, data

    parser = Parser(
        prog="dnijax",
        formatter_class=_HelpFormatter,
        description="Backprop, DNI and gradient noise, compared.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"dnijax {__version__}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    kw: dict[str, Any] = dict(formatter_class=_HelpFormatter)
    data_help = (
        f"data: a built-in set ({', '.join(data.DATASETS)}; mnist1d needs "
        "pip install mnist1d) or a file: .npz with arrays x (N, d) and labels (N,), "
        ".csv of numbers with the integer label last (header allowed). Seed s has its "
        "own split and standardisation (dnijax.data.resolve(spec, s)). The preset's "
        "input and output widths follow the data (default: article, the presets' "
        "data; the seed preset takes no other)"
    )
    preset_help = (
        "configuration: tuned (the article's data, a net that learns) or seed (the "
        "article's exact run, its defects corrected)"
    )
    config_help = (
        "JSON file of RunConfig fields overriding the preset; the options override "
        "it (default: none)"
    )
    task_help = (
        "instead of data: a sequence task (Graves et al.'s Copy or Repeat Copy) learnt "
        "by an LSTM with truncated BPTT and a length curriculum; --steps counts "
        "episodes (1000 unless given), --seeds defaults to 5 and --out to "
        "runs/<command>-<task>; takes no --data or --preset (default: none)"
    )
    cpu_help = (
        "split the CPU into this many devices and shard the runs over them; one per "
        "core is fastest. Results differ from one device's in the last bits, which "
        "can grow over many steps (default: JAX's, 1 unless JAX_NUM_CPU_DEVICES says "
        "otherwise)"
    )

    c = sub.add_parser("compare", help="the article's four-regime comparison", **kw)
    c.add_argument("--preset", choices=("tuned", "seed"), help=preset_help + " (default: tuned)")
    c.add_argument("--task", choices=tuple(TASK_OPTIONS), help=task_help)
    c.add_argument("--data", metavar="NAME|PATH", help=data_help)
    c.add_argument(
        "--seeds",
        type=_positive_int("--seeds"),
        help=f"number of seeds (data and initial weights per seed) (default: "
        f"{_preset_default('seeds')})",
    )
    c.add_argument(
        "--steps",
        type=_positive_int("--steps"),
        help=f"training steps (default: {_preset_default('steps')})",
    )
    c.add_argument(
        "--lr",
        type=_positive_float("--lr"),
        help=f"network learning rate (default: {_preset_default('lr')})",
    )
    c.add_argument(
        "--sg-lr",
        type=_positive_float("--sg-lr"),
        help=f"SG-module learning rate (default: {_preset_default('sg_lr', '= lr')})",
    )
    c.add_argument(
        "--eta",
        type=_positive_float("--eta", allow_zero=True),
        help=f"gradient-noise scale of the +noise regimes (default: {_preset_default('eta')})",
    )
    c.add_argument(
        "--regimes",
        type=_regime_list,
        help=f"regimes to compare, comma-separated (default: {','.join(REGIMES)}; "
        "also fa, dfa, fwdgrad, each with +noise)",
    )
    c.add_argument("--config", metavar="FILE", help=config_help)
    c.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: runs/compare-<preset>, "
        "with -<data name> for --data other than article)",
    )
    c.add_argument(
        "--overwrite",
        action="store_true",
        help="replace results of a different configuration in --out",
    )
    c.add_argument("--cpu-devices", type=_positive_int("--cpu-devices"), help=cpu_help)
    _add_distributed_options(c)
    c.set_defaults(func=cmd_compare)

    s = sub.add_parser("sweep", help="learning-rate sensitivity per regime", **kw)
    s.add_argument(
        "--lr",
        type=_float_list,
        required=True,
        help="learning rates to sweep, comma-separated, e.g. 0.1,0.3,1,3 (required)",
    )
    s.add_argument(
        "--regimes",
        type=_regime_list,
        default=",".join(REGIMES),
        help="regimes to sweep, comma-separated",
    )
    s.add_argument("--preset", choices=("tuned", "seed"), help=preset_help + " (default: tuned)")
    s.add_argument("--task", choices=tuple(TASK_OPTIONS), help=task_help)
    s.add_argument("--data", metavar="NAME|PATH", help=data_help)
    s.add_argument(
        "--seeds", type=_positive_int("--seeds"), default=5, help="seeds per (regime, lr) block"
    )
    s.add_argument(
        "--steps",
        type=_positive_int("--steps"),
        help=f"training steps (default: {_preset_default('steps')})",
    )
    s.add_argument(
        "--sg-lr",
        type=_positive_float("--sg-lr"),
        help="SG-module learning rate, fixed (default: the swept lr)",
    )
    s.add_argument("--config", metavar="FILE", help=config_help)
    s.add_argument(
        "--out",
        metavar="DIR",
        help="output folder; rerunning the same command "
        "resumes in it (default: runs/sweep-<preset>, with -<data name> for --data "
        "other than article)",
    )
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="replace results of a different configuration in --out",
    )
    s.add_argument("--cpu-devices", type=_positive_int("--cpu-devices"), help=cpu_help)
    _add_distributed_options(s)
    s.set_defaults(func=cmd_sweep)

    v = sub.add_parser("validate", help="hold JAX to the numpy reference", **kw)
    v.add_argument(
        "--arch",
        choices=("mlp", "conv", "rnn"),
        default="mlp",
        help="the networks checked: MLPs, conv nets with and without pooling, or "
        "a tanh RNN trained by truncated BPTT with and without synthetic gradients",
    )
    v.add_argument(
        "--depth", type=_positive_int("--depth"), default=3, help="layers of the test MLP"
    )
    v.add_argument(
        "--width", type=_positive_int("--width"), default=8, help="width of its hidden layers"
    )
    v.add_argument(
        "--steps",
        type=_positive_int("--steps"),
        default=100,
        help="steps compared (rnn: time steps, rounded down to whole windows)",
    )
    v.add_argument("--seed", type=int, default=0, help="seed of the data, weights and noise")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser(
        "report",
        help="rebuild a finished compare or sweep folder's "
        "summary.md, results.csv and figures from its results.json",
        **kw,
    )
    r.add_argument("dir", metavar="DIR", help="the output folder of a dnijax compare or sweep")
    r.set_defaults(func=cmd_report)
    return parser


def compilation_cache_dir() -> str:
    """Where compiled programs are kept across runs: ``$DNIJAX_CACHE`` (default
    ``~/.cache/dnijax/xla``; empty: no cache)."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "dnijax", "xla")
    return os.environ.get("DNIJAX_CACHE", default)


def enable_compilation_cache() -> None:
    """Keeps compiled programs across runs in :func:`compilation_cache_dir` (set
    ``DNIJAX_CACHE`` empty to disable): a rerun skips XLA compilation. Every program is
    kept, however fast it compiled: the small ones JAX compiles for array operations
    outside the engine's programs add up (a rerun of a small comparison compiled about
    0.5 s less with them kept than with only those over 0.2 s)."""
    import jax

    path = compilation_cache_dir()
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    enable_compilation_cache()
    try:
        if getattr(args, "cpu_devices", None):
            from dnijax import engine

            engine.use_cpu_devices(args.cpu_devices)
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
