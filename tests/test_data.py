import numpy as np
import pytest

from dnijax import compare, data


def test_article_set_and_weights_are_the_seeds():
    rng = np.random.RandomState(data.ARTICLE_SEED)
    x, y = data.article_classification(rng)
    net, sg = data.article_weights(rng)
    assert x.shape == (500, 2) and set(np.unique(y)) == {0, 1}
    assert [w.shape for w in net] == [(2, 10), (10, 28), (28, 1)]
    assert [s.shape for s in sg] == [(10, 10), (28, 28), (1, 1)]
    ds, (net0, sg0) = compare.preset_data("seed", 0)
    np.testing.assert_allclose(ds.x_train, x.astype(np.float32))
    np.testing.assert_allclose(net0[2]["w"], net[2].astype(np.float32))


@pytest.mark.parametrize("name,n_classes,n_features", [("article", 2, 2), ("moons", 2, 2),
                                                       ("circles", 2, 2), ("digits", 10, 64)])
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
