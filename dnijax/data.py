"""Data sets behind one interface: arrays in, a fixed train/test split out.

* ``article``: the seed's ``make_classification`` set (``docs/math.md``, "The seed
  preset"), scikit-learn's generator;
* ``moons``, ``circles``: scikit-learn's 2-D toy sets with noise;
* ``digits``: scikit-learn's bundled 8x8 digits, scaled to [0, 1] (offline);
* ``mnist1d``: the ``mnist1d`` package's ``make_dataset`` (generated offline; never
  its downloading ``get_dataset``). Needs ``pip install mnist1d``.

User files (``load_file``; ``resolve`` takes a built-in name or a path):

* ``.npz``: arrays ``x`` (N, d) and ``labels`` (N,) of integers;
* ``.csv``: numeric columns, the last one the integer label; an optional header row.

Minibatches are drawn on device, inside the compiled step (``RunConfig.batch_size``).

Examples:
  >>> from dnijax import data
  >>> ds = data.load("moons", seed=0, n_samples=200)
  >>> ds.x_train.shape, ds.x_test.shape, ds.n_classes
  ((160, 2), (40, 2), 2)
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from typing import NamedTuple

import numpy as np
from sklearn import datasets as skdata
from sklearn.model_selection import train_test_split

DATASETS = ("article", "moons", "circles", "digits", "mnist1d")
FILE_TYPES = (".npz", ".csv")
ARTICLE_SEED = 4567


class Dataset(NamedTuple):
    """A train/test split: float32 inputs (N, d) and int32 labels (N,)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]


def article_classification(rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """The seed's set: ``make_classification`` with its exact arguments, drawn from ``rng``."""
    return skdata.make_classification(
        n_samples=500,
        n_features=2,
        n_informative=2,
        n_redundant=0,
        n_repeated=0,
        n_classes=2,
        n_clusters_per_class=2,
        class_sep=4,
        random_state=rng,
    )


def article_weights(rng: np.random.RandomState) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The seed's initial weights, drawn right after the data from the same ``rng``:
    w1 (2x10), w2 (10x28), w3 (28x1), then S1 (10x10), S2 (28x28), S3 (1x1),
    each ``0.2 * randn - 0.1``."""
    draw = lambda *shape: 0.2 * rng.randn(*shape) - 0.1  # noqa: E731
    net = [draw(2, 10), draw(10, 28), draw(28, 1)]
    sg = [draw(10, 10), draw(28, 28), draw(1, 1)]
    return net, sg


def _split(
    name: str, x: np.ndarray, y: np.ndarray, seed: int, test_size: float, n_classes: int
) -> Dataset:
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    f, i = np.float32, np.int32
    return Dataset(name, x_tr.astype(f), y_tr.astype(i), x_te.astype(f), y_te.astype(i), n_classes)


def load(
    name: str,
    seed: int = 0,
    *,
    n_samples: int = 500,
    noise: float = 0.2,
    test_size: float = 0.2,
    standardize: bool = True,
) -> Dataset:
    """Loads or generates a data set with a fixed, stratified train/test split.

    Args:
      name: one of ``DATASETS``.
      seed: generator and split seed (``article`` uses ``ARTICLE_SEED + seed``).
      n_samples: points for the generated 2-D sets (``article`` is always 500).
      noise: label noise of ``moons`` and ``circles``.
      test_size: held-out fraction.
      standardize: scale the 2-D sets' inputs to zero mean and unit variance
        (statistics of the training split); ``digits`` is always scaled to [0, 1].
    """
    if name == "article":
        x, y = article_classification(np.random.RandomState(ARTICLE_SEED + seed))
    elif name == "moons":
        x, y = skdata.make_moons(n_samples, noise=noise, random_state=seed)
    elif name == "circles":
        x, y = skdata.make_circles(n_samples, noise=noise / 2, factor=0.5, random_state=seed)
    elif name == "digits":
        d = skdata.load_digits()
        return _split(name, d.data / 16.0, d.target, seed, test_size, 10)
    elif name == "mnist1d":
        return _mnist1d(seed)
    else:
        raise ValueError(f"data: unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    ds = _split(name, x, y, seed, test_size, 2)
    return _standardize(ds) if standardize else ds


def _standardize(ds: Dataset) -> Dataset:
    mu, sd = ds.x_train.mean(0), ds.x_train.std(0) + 1e-8
    return ds._replace(x_train=(ds.x_train - mu) / sd, x_test=(ds.x_test - mu) / sd)


def _mnist1d(seed: int) -> Dataset:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ValueError("data: mnist1d needs the mnist1d package; pip install mnist1d") from err
    args = get_dataset_args()
    args.seed = seed
    d = make_dataset(args)  # generated locally, no download
    return Dataset(
        "mnist1d",
        d["x"].astype(np.float32),
        d["y"].astype(np.int32),
        d["x_test"].astype(np.float32),
        d["y_test"].astype(np.int32),
        10,
    )


_SAVE = "save it with np.savez(path, x=inputs, labels=labels)"


def _fail(path: str, problem: str) -> ValueError:
    return ValueError(f"data: {path!r}: " + " ".join(problem.split()))  # always one line


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            what = "a single .npy array" if f.read(6) == b"\x93NUMPY" else "not a zip file"
        raise _fail(path, f"is not an .npz archive ({what}); {_SAVE}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x", "labels") if k in z.files}
            names = ", ".join(z.files) or "none"
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise _fail(
            path,
            f"cannot be read as an .npz archive, damaged or holding object "
            f"arrays ({err}); re-{_SAVE} from numeric arrays",
        ) from err
    for k in ("x", "labels"):
        if k not in arrays:
            raise _fail(path, f"has no array {k!r} (arrays present: {names}); {_SAVE}")
    return arrays["x"], arrays["labels"]


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)  # line_num: the 1-based file row, header included
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise _fail(
            path, f"is not a readable CSV text file ({err}); save it as comma-separated UTF-8 text"
        ) from err
    header = bool(rows) and any(_number(c) is None for c in rows[0][1])  # not all numbers
    if len(rows) <= header:
        raise _fail(
            path,
            ("has a header but no data rows" if header else "is empty (only blank lines)")
            + "; add rows of numbers, the label last",
        )
    rows = rows[header:]
    width, table = max(len(rows[0][1]), 2), []  # features, then the label
    for line, row in rows:
        if len(row) != width:
            raise _fail(
                path,
                f"row {line} has {len(row)} column(s), expected {width}; give "
                "every row the same comma-separated columns, the label last",
            )
        table.append([_number(c) for c in row])
        for col, (cell, v) in enumerate(zip(row, table[-1], strict=True), 1):
            if v is None or not math.isfinite(v):
                what = " (the label)" if col == width else ""
                raise _fail(
                    path,
                    f"row {line}, column {col}{what} is {cell.strip()[:40]!r}, "
                    "not a finite number; make every cell a finite number",
                )
    arr = np.array(table)
    return arr[:, :-1], arr[:, -1]


def _check(path: str, x: np.ndarray, labels: np.ndarray, test_size: float) -> np.ndarray:
    """Validates a file's arrays for a stratified split; returns labels remapped to 0..K-1."""
    if x.ndim != 2 or 0 in x.shape:
        raise _fail(
            path,
            f"x has shape {x.shape}, expected 2-D (rows, features) with at least "
            "one of each; reshape it",
        )
    if labels.ndim != 1 or len(labels) != len(x):
        raise _fail(
            path,
            f"shape mismatch: x has {len(x)} rows but labels has shape "
            f"{labels.shape}; give one label per row, a 1-D array of {len(x)}",
        )
    for name, a in (("x", x), ("labels", labels)):
        if a.dtype.kind not in "biuf":
            raise _fail(
                path,
                f"{name} has dtype {a.dtype}, not numbers; store numeric values"
                + (", an integer id per class" if name == "labels" else ""),
            )
    bad = ~np.isfinite(x).all(1)
    if bad.any():
        raise _fail(
            path,
            f"x has NaN or inf in {bad.sum()} row(s) (first: row index "
            f"{bad.argmax()}, from 0); remove or fill those values",
        )
    frac = (
        (labels != np.round(labels)) | ~np.isfinite(labels)
        if labels.dtype.kind == "f"
        else np.zeros(len(labels), bool)
    )  # float labels must be whole: 1.0 is class 1
    if frac.any():
        raise _fail(
            path,
            f"labels must be integers, found {labels[frac][0]} in {frac.sum()} "
            "row(s); use integer class ids",
        )
    classes, y, counts = np.unique(labels.astype(np.int64), return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise _fail(
            path,
            f"has a single class (label {classes[0]}); a classifier needs at "
            "least 2 distinct labels",
        )
    if counts.min() < 2:
        raise _fail(
            path,
            f"too few rows: class {classes[counts.argmin()]} has only 1 row; a "
            "stratified split needs at least 2 per class (train and test); add rows",
        )
    n_test = math.ceil(test_size * len(y))
    for split, n in (("test", n_test), ("train", len(y) - n_test)):
        if n < len(classes):
            raise _fail(
                path,
                f"too few rows: the {split} split gets {n} of {len(y)} rows, "
                f"fewer than the {len(classes)} classes; add rows",
            )
    return y


def load_file(
    path: str, seed: int = 0, *, test_size: float = 0.2, standardize: bool = True
) -> Dataset:
    """Loads a user's ``.npz`` or ``.csv`` file with the same split as ``load``.

    Labels may be any integers; they are remapped to 0..K-1 in sorted order (the
    smallest becomes class 0), and ``n_classes`` is K, the number of distinct labels.

    Args:
      path: an ``.npz`` with arrays ``x`` (N, d) and ``labels`` (N,), or a comma-separated
        ``.csv`` whose last column is the label, with an optional header row.
      seed: split seed (stratified ``train_test_split(random_state=seed)``).
      test_size: held-out fraction.
      standardize: scale inputs to zero mean and unit variance (training-split statistics).

    Returns:
      A ``Dataset`` named after the file's base name.

    Raises:
      ValueError: one line, ``data: 'PATH': problem; fix``.
    """
    path = os.path.expanduser(os.fspath(path))
    ext = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        what = "is a directory, not a file" if os.path.isdir(path) else "no such file"
        raise _fail(path, f"{what}; check the path")
    if ext not in FILE_TYPES:
        raise _fail(
            path, f"unknown file extension {ext or '(none)'!r}; use {' or '.join(FILE_TYPES)}"
        )
    if os.path.getsize(path) == 0:
        raise _fail(path, "the file is empty (0 bytes); write the data into it")
    if not 0 < test_size < 1:
        raise _fail(path, f"test_size must lie strictly between 0 and 1, got {test_size}")
    x, labels = (_read_npz if ext == ".npz" else _read_csv)(path)
    y = _check(path, x, labels, test_size)
    ds = _split(os.path.basename(path), x, y, seed, test_size, int(y.max()) + 1)
    return _standardize(ds) if standardize else ds


def resolve(spec: str, seed: int = 0) -> Dataset:
    """Turns a ``--data NAME|PATH`` argument into a data set.

    Args:
      spec: a name in ``DATASETS`` (goes to ``load``), or a path: it has a file extension
        or a path separator, or exists (goes to ``load_file``).
      seed: generator and split seed.

    Raises:
      ValueError: one line, for an unknown name or a bad file.
    """
    if spec in DATASETS:
        return load(spec, seed)
    seps = "/" + os.sep + (os.altsep or "")
    if os.path.splitext(spec)[1] or any(c in seps for c in spec) or os.path.exists(spec):
        return load_file(spec, seed)
    raise ValueError(
        f"data: unknown data set {spec!r}; choose one of {', '.join(DATASETS)}, "
        f"or a file path ending in {' or '.join(FILE_TYPES)}"
    )
