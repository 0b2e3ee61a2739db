import os
import re
from pathlib import Path

import numpy as np
import pytest

from dnijax import data


def test_article_set_and_weights_are_the_seeds():
    rng = np.random.RandomState(data.ARTICLE_SEED)
    x, y = data.article_classification(rng)
    net, sg = data.article_weights(rng)
    assert x.shape == (500, 2) and set(np.unique(y)) == {0, 1}
    assert [w.shape for w in net] == [(2, 10), (10, 28), (28, 1)]
    assert [s.shape for s in sg] == [(10, 10), (28, 28), (1, 1)]
    from dnijax.experiments import presets  # here, so other tests run without its stack

    ds, (net0, sg0) = presets.preset_data("seed", 0)
    np.testing.assert_allclose(ds.x_train, x.astype(np.float32))
    np.testing.assert_allclose(net0[2]["w"], net[2].astype(np.float32))


@pytest.mark.parametrize(
    "name,n_classes,n_features",
    [("article", 2, 2), ("moons", 2, 2), ("circles", 2, 2), ("digits", 10, 64)],
)
def test_loaders_give_fixed_stratified_splits(name, n_classes, n_features):
    a, b = data.load(name, seed=1), data.load(name, seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.n_classes == n_classes and a.n_features == n_features
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int32
    assert len(np.unique(a.y_test)) == n_classes
    if name == "digits":
        assert a.x_train.min() >= 0 and a.x_train.max() <= 1


def test_unknown_data_set_is_refused():
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        data.load("mnist")


# --- user files: load_file / resolve ------------------------------------------------------


def _xy(n=40, d=3, labels=(3, 7, -1)):
    """Small inputs whose first column is the raw label, to check the remapping."""
    y = np.array([labels[i % len(labels)] for i in range(n)])
    x = np.random.RandomState(0).randn(n, d) * 5 + 2
    x[:, 0] = y
    return x, y


def _csv(path, rows, header=None):
    lines = ([header] if header else []) + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("fmt", ["npz", "csv-header", "csv-plain"])
def test_load_file_good(tmp_path, fmt):
    x, y = _xy()
    if fmt == "npz":
        path = str(tmp_path / "set.npz")
        np.savez(path, x=x, labels=y)
    else:
        rows = [list(xi) + [yi] for xi, yi in zip(x, y, strict=True)]
        path = _csv(tmp_path / "set.csv", rows, "a,b,c,label" if fmt == "csv-header" else None)
    ds = data.load_file(path, seed=0)
    assert ds.name == ("set.npz" if fmt == "npz" else "set.csv") and ds.n_classes == 3
    assert ds.x_train.shape == (32, 3) and ds.x_test.shape == (8, 3) and ds.n_features == 3
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    # labels -1, 3, 7 become 0, 1, 2 in sorted order; every class lands in both splits
    assert set(ds.y_train) == set(ds.y_test) == {0, 1, 2}
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(0), 1, atol=1e-4)
    raw = data.load_file(path, seed=0, standardize=False)
    for xs, ys in ((raw.x_train, raw.y_train), (raw.x_test, raw.y_test)):
        np.testing.assert_array_equal(ys, np.searchsorted([-1, 3, 7], xs[:, 0]))
    again, other = data.load_file(path, seed=0), data.load_file(path, seed=1)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    np.testing.assert_array_equal(again.y_test, ds.y_test)
    assert not np.array_equal(other.x_train, ds.x_train)


def test_resolve(tmp_path):
    np.testing.assert_array_equal(data.resolve("moons", 1).x_train, data.load("moons", 1).x_train)
    path = str(tmp_path / "mine.npz")
    np.savez(path, x=_xy()[0], labels=_xy()[1])
    assert data.resolve(path).name == "mine.npz"
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'.*moons.*\.npz or \.csv"):
        data.resolve("mnist")
    with pytest.raises(ValueError, match="no such file"):
        data.resolve("nothere.csv")  # has an extension, so it is taken as a path


def _npz(**arrays):
    return lambda path: np.savez(path, **arrays)


def _truncated(path):
    np.savez(path, x=X, labels=Y)
    raw = Path(path).read_bytes()
    Path(path).write_bytes(raw[:200] + raw[-200:])  # zip directory intact, members cut


def _npy(path):
    with open(path, "wb") as f:
        np.save(f, X)


def _text(text):
    return lambda path: Path(path).write_text(text)


X, Y = _xy()
BAD = {
    "missing": ("a.npz", None, "no such file"),
    "extension": ("a.txt", _text("1,0\n"), "unknown file extension '.txt'; use .npz or .csv"),
    "empty-npz": ("a.npz", _text(""), "empty"),
    "empty-csv": ("a.csv", _text("\n\n"), "empty"),
    "directory": ("d.npz", lambda p: os.mkdir(p), "is a directory"),
    "not-zip": ("a.npz", _text("not a zip"), r"is not an .npz archive \(not a zip file\)"),
    "npy": ("a.npz", _npy, r"not an .npz archive \(a single .npy"),
    "truncated": ("a.npz", _truncated, "cannot be read as an .npz archive"),
    "objects": ("a.npz", _npz(x=X, labels=np.array([None] * 40)), "cannot be read as an .npz"),
    "no-labels": ("a.npz", _npz(x=X, y=Y), r"no array 'labels' \(arrays present: x, y\)"),
    "no-x": ("a.npz", _npz(labels=Y), r"no array 'x' \(arrays present: labels\)"),
    "x-1d": ("a.npz", _npz(x=X[:, 0], labels=Y), r"x has shape \(40,\), expected 2-D"),
    "mismatch": ("a.npz", _npz(x=X, labels=Y[:-1]), "x has 40 rows but labels has shape .39,."),
    "nan": (
        "a.npz",
        _npz(x=np.where(np.arange(40)[:, None] == 5, np.nan, X), labels=Y),
        r"x has NaN or inf in 1 row\(s\) \(first: row index 5",
    ),
    "inf": ("a.npz", _npz(x=np.where(X > 9, np.inf, X), labels=Y), "x has NaN or inf"),
    "x-text": ("a.npz", _npz(x=X.astype(str), labels=Y), "x has dtype <U.*, not numbers"),
    "fraction": (
        "a.npz",
        _npz(x=X, labels=np.r_[0.5, Y[1:]]),
        r"labels must be integers, found 0.5 in 1 row",
    ),
    "label-text": ("a.npz", _npz(x=X, labels=Y.astype(str)), "labels has dtype <U.*, not numbers"),
    "one-class": ("a.npz", _npz(x=X, labels=np.full(40, 4)), r"single class \(label 4\)"),
    "one-row-class": (
        "a.npz",
        _npz(x=X, labels=np.r_[9, Y[1:]]),
        "too few rows: class 9 has only 1 row",
    ),
    "tiny": (
        "a.npz",
        _npz(x=X[:6], labels=Y[:6]),
        "too few rows: the test split gets 2 of 6 rows, fewer than the 3 classes",
    ),
    "csv-cell": (
        "a.csv",
        _text("f1,f2,label\n1,2,0\n3,oops,1\n"),
        r"row 3, column 2 is 'oops', not a finite number",
    ),
    "csv-nan": (
        "a.csv",
        _text("a,b,y\n\n1,2,0\n3,nan,1\n"),  # the blank row 2 still counts
        r"row 4, column 2 is 'nan', not a finite",
    ),
    "csv-label": ("a.csv", _text("1,2,0\n3,4,cat\n"), r"row 2, column 3 \(the label\) is 'cat'"),
    "csv-ragged": ("a.csv", _text("1,2,0\n3,4,1\n5,1\n"), "row 3 has 2 column.s., expected 3"),
    "csv-header-only": ("a.csv", _text("a,b,label\n"), "header but no data rows"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_file_gives_one_line_error(tmp_path, case):
    name, write, problem = BAD[case]
    path = str(tmp_path / name)
    if write:
        write(path)
    with pytest.raises(ValueError) as err:
        data.load_file(path)
    msg = str(err.value)
    assert msg.startswith(f"data: {path!r}: ") and "\n" not in msg, msg
    assert re.search(problem, msg), msg
    assert ";" in msg  # problem; what to fix
