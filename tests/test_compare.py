"""The four-regime comparison (dnijax.experiments.compare) beyond its command line."""

from dnijax.experiments import compare


def test_progress_counts_every_block_of_runs_once(monkeypatch):
    """With blocks of one run, progress still climbs to exactly 100% (it once passed 4000%
    on a 20 000-seed comparison, counting each block's steps against one block's total)."""
    monkeypatch.setenv("DNIJAX_MEMORY_BUDGET", "1")  # every block holds a single run
    ticks = []
    compare.run_compare(
        "tuned", seeds=2, steps=20, progress=lambda done, total: ticks.append((done, total))
    )
    assert all(0 < done <= total for done, total in ticks)
    assert [d for d, _ in ticks] == sorted(d for d, _ in ticks)
    assert ticks[-1][0] == ticks[-1][1] and len({t for _, t in ticks}) == 1
    assert len(ticks) >= 2 * 4  # two rules, four blocks (two seeds, with and without noise)
