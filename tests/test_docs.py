"""The pages hold only blocks the suite runs, and the results pages are what the JSON gives.

The blocks themselves run through Sybil (the repository's ``conftest.py``); these tests check
what Sybil cannot see: a fence of another language would be skipped silently, and a results
table edited by hand would never be compared with anything.
"""

import glob
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = {"python", "console"}  # run by Sybil (conftest.py)
NOT_CODE = {"text"}  # output and listings
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([^\s`]*)")


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def pages() -> list[str]:
    """README.md and every Markdown page under docs/ but the generated tables."""
    found = [os.path.join(ROOT, "README.md")]
    found += glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
    return sorted(p for p in found if os.sep + "generated" + os.sep not in p)


def fences(path: str) -> list[tuple[int, str]]:
    """(line number, info string) of every opening fence of a Markdown file."""
    opened, found = None, []
    for number, line in enumerate(read(path).splitlines(), 1):
        match = FENCE.match(line)
        if not match:
            continue
        if opened is None:
            opened = match.group(2)
            found.append((number, match.group(3)))
        elif match.group(2).startswith(opened) and not match.group(3):
            opened = None
    assert opened is None, f"{path}: a fence is never closed"
    return found


def test_every_fence_is_one_the_suite_runs_or_plain_text():
    wrong = [
        f"{os.path.relpath(path, ROOT)}:{number}: ```{info}"
        for path in pages()
        for number, info in fences(path)
        if info not in RUN | NOT_CODE
    ]
    assert not wrong, "fences the suite would not run (use python, console or text):\n" + (
        "\n".join(wrong)
    )


def test_the_fence_check_sees_what_it_should(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n\n````text\n```bash\n````\n\n```bash\nls\n```\n")
    assert fences(str(page)) == [(1, "python"), (5, "text"), (9, "bash")]


@pytest.fixture(scope="module")
def results_pages():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import results_pages

        yield results_pages
    finally:
        sys.path.remove(os.path.join(ROOT, "benchmarks"))


def test_the_results_tables_are_what_the_benchmarks_json_gives(results_pages):
    assert results_pages.build(check=True) == []


def test_every_published_benchmark_has_its_results_page(results_pages):
    publishing = {
        os.path.basename(path)[: -len(".py")]
        for path in glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))
        if "common.publish(" in read(path)
    }
    assert publishing <= {page.module for page in results_pages.PAGES}
    article = read(os.path.join(ROOT, "docs", "results", "article.md"))
    assert '--8<-- "docs/results/generated/article/summary.md"' in article
    for page in results_pages.PAGES:
        text = read(os.path.join(ROOT, "docs", "results", f"{page.doc or page.name}.md"))
        assert f'--8<-- "docs/results/generated/{page.name}.md"' in text, page.name


def test_a_hand_edited_results_table_is_found(results_pages, tmp_path):
    page = results_pages.PAGES[0]
    data = tmp_path / "data"
    out = tmp_path / "generated"
    data.mkdir()
    source = os.path.join(results_pages.DATA, f"{page.name}.json")
    (data / f"{page.name}.json").write_text(read(source))
    results_pages.build(str(data), str(out))
    table = out / f"{page.name}.md"
    problems = [p for p in results_pages.build(str(data), str(out), check=True) if page.name in p]
    assert problems == []
    table.write_text(table.read_text().replace("|", "| ", 1))
    problems = [p for p in results_pages.build(str(data), str(out), check=True) if page.name in p]
    assert problems == [f"{page.name}: {table} is not what {page.name}.json gives"]


def test_the_readme_test_command_is_the_one_ci_runs():
    """The README's set-up blocks are ``text`` (the suite cannot run pip inside itself), so
    this holds the test command to ``.ci/run``, which CI runs."""
    readme, ci = read(os.path.join(ROOT, "README.md")), read(os.path.join(ROOT, ".ci", "run"))
    assert 'pip install -e ".[test]" && python -m pytest' in readme
    lines = [line.strip() for line in ci.splitlines()]
    assert 'pip install -q -e ".[test]" || exit 1' in lines
    assert "python -m pytest" in lines
    assert "pip install -e . && dnijax compare" in readme
