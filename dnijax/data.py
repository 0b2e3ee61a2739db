"""Data sets behind one interface: arrays in, a fixed train/test split out.

* ``article``: the seed's ``make_classification`` set (SPEC.md), scikit-learn's generator;
* ``moons``, ``circles``: scikit-learn's 2-D toy sets with noise;
* ``digits``: scikit-learn's bundled 8x8 digits, scaled to [0, 1] (offline);
* ``mnist1d``: the ``mnist1d`` package's ``make_dataset`` (generated offline; never
  its downloading ``get_dataset``). Needs ``pip install mnist1d``.

Minibatches are drawn on device, inside the compiled step (``RunConfig.batch_size``).

Example:
  >>> from dnijax import data
  >>> ds = data.load("moons", seed=0, n_samples=200)
  >>> ds.x_train.shape, ds.x_test.shape, ds.n_classes
  ((160, 2), (40, 2), 2)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn import datasets as skdata
from sklearn.model_selection import train_test_split

DATASETS = ("article", "moons", "circles", "digits", "mnist1d")
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
        n_samples=500, n_features=2, n_informative=2, n_redundant=0, n_repeated=0,
        n_classes=2, n_clusters_per_class=2, class_sep=4, random_state=rng)


def article_weights(rng: np.random.RandomState) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The seed's initial weights, drawn right after the data from the same ``rng``:
    w1 (2x10), w2 (10x28), w3 (28x1), then S1 (10x10), S2 (28x28), S3 (1x1),
    each ``0.2 * randn - 0.1``."""
    draw = lambda *shape: 0.2 * rng.randn(*shape) - 0.1  # noqa: E731
    net = [draw(2, 10), draw(10, 28), draw(28, 1)]
    sg = [draw(10, 10), draw(28, 28), draw(1, 1)]
    return net, sg


def _split(name: str, x: np.ndarray, y: np.ndarray, seed: int, test_size: float,
           n_classes: int) -> Dataset:
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed,
                                              stratify=y)
    f, i = np.float32, np.int32
    return Dataset(name, x_tr.astype(f), y_tr.astype(i), x_te.astype(f), y_te.astype(i),
                   n_classes)


def load(name: str, seed: int = 0, *, n_samples: int = 500, noise: float = 0.2,
         test_size: float = 0.2, standardize: bool = True) -> Dataset:
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
    if standardize:
        mu, sd = ds.x_train.mean(0), ds.x_train.std(0) + 1e-8
        ds = ds._replace(x_train=(ds.x_train - mu) / sd, x_test=(ds.x_test - mu) / sd)
    return ds


def _mnist1d(seed: int) -> Dataset:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ValueError("data: mnist1d needs the mnist1d package; pip install mnist1d") from err
    args = get_dataset_args()
    args.seed = seed
    d = make_dataset(args)  # generated locally, no download
    return Dataset("mnist1d", d["x"].astype(np.float32), d["y"].astype(np.int32),
                   d["x_test"].astype(np.float32), d["y_test"].astype(np.int32), 10)

