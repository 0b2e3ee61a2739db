"""The DNI paper's recurrent experiment, scaled to this machine: Copy and Repeat Copy with a
length curriculum.

An LSTM (``--hidden`` units, linear readout, sigmoid cross-entropy per bit) learns
Graves et al.'s Copy task (8-bit patterns, a delimiter, then the patterns back; with
``--task repeat_copy``, the patterns 1-3 times and an end marker) by
truncated BPTT with windows of T steps, plain or with a synthetic gradient at the end
of each window (DNI), each without and with annealed gradient noise. The pattern
length starts at 1 and grows by one whenever an episode's error is under 0.15 bits
per target bit. The paper's criterion is "below 0.15 bits error"; its unit is not
settled here (see the README). The score of a run is the longest length solved within
``--episodes`` episodes (one episode: ``--batch`` sequences; one update per window).
The state starts at zero in every episode; with ``--carry-state`` each batch lane is one
stream, its state carried from episode to episode (``RunConfig.carry_state``), and the
results go to ``copy_task_stream`` (``repeat_copy_stream``). The noise-free and noisy arms
of a rule run in one program (eta 0 for the noise-free runs), paired by seed.

    python benchmarks/copy_task.py [--quick] [--task copy|repeat_copy] [--windows 2,3,4,5,8]
        [--carry-state]

Every cell is one grid of the engine (``dnijax.engine.run_grid`` on a ``RunConfig`` with
``task`` set), all in this one process. The cells once ran in a process each, because
runs hung; the cause was a deadlock in jaxlib's batched LAPACK QR under the LSTM's
orthogonal init, which dnijax no longer calls (``benchmarks/hang_check.py``).
"""

from __future__ import annotations

import os
import time

import common
import numpy as np

from dnijax import RunConfig, engine, stats
from dnijax.experiments import compare
from dnijax.report import markdown_table

ETA = 0.01
ARMS = ("backprop", "backprop+noise", "dni", "dni+noise")  # each rule beside its noisy twin


def base_config(task: str, hidden: int, episodes: int, lr: float, quick: bool) -> dict:
    """The RunConfig fields every cell shares: an LSTM of ``hidden`` units, batch 16, Adam at
    ``lr``, sigmoid cross-entropy per bit, the curriculum (0.15 bits per target bit, up to
    length 12, Repeat Copy 6 with 1-3 repeats; 4 when ``quick``), and the noise of the
    ``+noise`` arms."""
    repeat = task == "repeat_copy"
    return dict(
        task=task,
        max_repeats=3 if repeat else 1,
        core="lstm",
        hidden=hidden,
        max_length=4 if quick else (6 if repeat else 12),
        batch_size=16,
        steps=episodes,
        optimizer="adam",
        lr=lr,
        threshold=0.15,
        eta=ETA,
        gamma=0.55,
        log_every=max(1, episodes // 20),
        loss="bce",
        reduction="mean",
    )


def run_cell(base: dict, signal: str, window: int, seeds: int) -> dict:
    """One rule at one T: its noise-free and noisy runs in one program."""
    cfg = RunConfig(regime=signal + "+noise", window=window, **base)
    hyper = engine.stack_hyper(cfg, eta=[0.0] * seeds + [ETA] * seeds)
    t0 = time.time()
    res = engine.run_grid(cfg, hyper, engine.run_keys(np.tile(np.arange(seeds), 2)), None)
    print(f"  T={window} {signal}: {time.time() - t0:.0f}s", flush=True)
    return {arm: arm_cell(res, idx) for arm, idx in compare.arms(signal, seeds)}


def arm_cell(res: engine.GridResult, idx) -> dict:
    """The runs ``idx`` of a grid: the longest length each solved, their divergences and
    summary, and the mean length along training."""
    solved = res.final["solved"][idx]
    diverged = [int(d) if d >= 0 else None for d in res.diverged_at[idx]]
    return {
        "solved": solved.tolist(),
        "diverged": diverged,
        "summary": stats.summarize(solved.tolist(), diverged, bounds=stats.NONNEGATIVE),
        "length_curve": res.history["length"][idx].mean(0).tolist(),
        "episode": res.history["step"].tolist(),
    }


def markdown(results: dict) -> str:
    rows = []
    for t, cells in results["windows"].items():
        dni, bp = cells["dni"], cells["backprop"]
        pair = stats.paired(
            dni["solved"],
            bp["solved"],
            dni["diverged"],
            bp["diverged"],
            lower_is_better=False,
            bounds=stats.NONNEGATIVE,
        )
        diff = (
            f"{pair['mean_diff']:+.1f} [{pair['ci95'][0]:+.1f}, {pair['ci95'][1]:+.1f}]"
            if pair["ci95"]
            else f"{pair['mean_diff']:+.1f}"
        )
        rows.append(
            [t]
            + [stats.format_mean_ci(cells[a]["summary"], ".1f") for a in ARMS]
            + [f"{diff}, longer on {pair['wins']}/{pair['n']}"]
        )
    return markdown_table(
        ["T"] + [f"{a}: longest length solved" for a in ARMS] + ["dni − backprop (paired)"], rows
    )


def figure(results: dict, path: str) -> None:
    """Longest length solved (mean over seeds, with each seed as a dot) against T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
    windows = [int(t) for t in results["windows"]]
    for i, arm in enumerate(ARMS):
        color = plt.get_cmap("tab10")(i // 2)
        ls = "--" if arm.endswith("noise") else "-"
        means = [results["windows"][str(t)][arm]["summary"]["mean"] for t in windows]
        ax.plot(windows, means, ls, marker="o", color=color, label=arm)
        for t in windows:
            solved = results["windows"][str(t)][arm]["solved"]
            ax.scatter([t + 0.08 * (i - 1.5)] * len(solved), solved, s=8, color=color, alpha=0.5)
    ax.set_xlabel("truncation T (steps per window)")
    ax.set_ylabel("longest copy length solved")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    common.save_figure(fig, path)


def main() -> None:
    parser = common.make_parser(__doc__, "copy_task")  # Repeat Copy: runs/repeat_copy
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--seeds", type=common.positive(int))
    parser.add_argument("--episodes", type=common.positive(int))
    parser.add_argument(
        "--windows",
        type=common.positive_list,
        help="comma-separated truncations (default 2,3,4,5,8)",
    )
    parser.add_argument("--hidden", type=common.positive(int), help="LSTM units (default 64)")
    parser.add_argument(
        "--lr", type=common.positive(float), default=1e-2, help="Adam learning rate"
    )
    parser.add_argument(
        "--task",
        default="copy",
        choices=("copy", "repeat_copy"),
        help="Copy, or Repeat Copy (1-3 repeats, lengths up to 6)",
    )
    parser.add_argument(
        "--carry-state",
        action="store_true",
        help="carry each batch lane's state from episode to episode (a stream)",
    )
    args = parser.parse_args()
    seeds = args.seeds or (1 if args.quick else 3)
    episodes = args.episodes or (20 if args.quick else 2000)
    windows = args.windows or ((3,) if args.quick else (2, 3, 4, 5, 8))
    base = base_config(
        args.task, args.hidden or (8 if args.quick else 64), episodes, args.lr, args.quick
    )
    base["carry_state"] = args.carry_state
    name = ("copy_task" if args.task == "copy" else args.task) + (
        "_stream" if args.carry_state else ""
    )
    if args.out == os.path.join("runs", "copy_task"):
        args.out = os.path.join("runs", name)
    common.claim(args, name, common.published(name))
    t0 = time.time()
    results = {"seeds": seeds, "eta": ETA, **base, "windows": {}}
    for t in windows:
        results["windows"][str(t)] = {}
        for signal in ("backprop", "dni"):
            results["windows"][str(t)].update(run_cell(base, signal, t, seeds))
    results["seconds"] = time.time() - t0
    common.publish(args.out, name, results, report, figure)


def report(results: dict) -> str:
    """The benchmark's markdown, from its results alone."""
    sequences = "one stream per batch lane" if results.get("carry_state") else "episodes"
    return (
        f"# {results['task']}, {sequences} (LSTM {results['hidden']}, Adam {results['lr']:g}, "
        "batch 16, "
        f"{results['steps']} episodes, lengths 1..{results['max_length']}, "
        f"{results['seeds']} seeds)\n\n"
        f"Longest length solved, mean [{stats.INTERVAL}].\n\n{markdown(results)}\n"
        f"Total time {results['seconds']:.0f}s.\n"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
