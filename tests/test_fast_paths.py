"""Short cuts the estimators take around scikit-learn helpers give exactly the helpers' results."""

import numpy as np
import pytest
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import shuffle

from fastmlp._classifier import _binarize, _fitted_label_binarizer
from fastmlp._stochastic import shuffled as _shuffled


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_shuffled_is_sklearn_shuffle(n, seed):
    order = np.random.RandomState(99).permutation(n).astype(np.int64)
    ours = np.random.RandomState(seed)
    theirs = np.random.RandomState(seed)
    for _ in range(3):  # epochs: each shuffle continues the same random stream
        expected = shuffle(order, random_state=theirs)
        order = _shuffled(order, ours)
        np.testing.assert_array_equal(order, expected)
        assert order.dtype == np.int64 and order.flags.c_contiguous
    assert ours.randint(1 << 30) == theirs.randint(1 << 30)


LABELS = [
    np.array([0, 1, 1, 0, 1]),
    np.array([3, 3, 3]),  # one class: "binary" to LabelBinarizer
    np.array([5, -2, 7, 5, 0], dtype=np.int32),
    np.array([2, 0, 1, 2, 9, 4], dtype=np.uint8),
    np.random.RandomState(0).randint(0, 10, 500).astype(np.int16),
    np.array([1, 0, 3, 2, 3], dtype=np.uint64),  # 0..K-1, counted by bincount
    np.array([0, 1, 1, 0], dtype=np.int8),
    np.array([4, 9, 4, 7], dtype=np.int64),  # small, but not 0..K-1
    np.array([0, 10**6, 5], dtype=np.int64),  # too large to count: np.unique
]


@pytest.mark.parametrize("y", LABELS, ids=lambda y: f"{y.dtype}-{len(np.unique(y))}")
def test_fitted_label_binarizer_is_labelbinarizer_fit(y):
    fast, slow = _fitted_label_binarizer(y), LabelBinarizer().fit(y)
    assert sorted(vars(fast)) == sorted(vars(slow))
    for name, value in vars(slow).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(fast, name), value)
            assert getattr(fast, name).dtype == value.dtype
        else:
            assert getattr(fast, name) == value
    np.testing.assert_array_equal(_binarize(fast, y), slow.transform(y).astype(bool))


@pytest.mark.parametrize(
    "y", [np.array(["a", "b"]), np.array([0.0, 1.0]), np.array([True, False]), np.eye(3)]
)
def test_other_labels_take_labelbinarizer_fit(y):
    fast, slow = _fitted_label_binarizer(y), LabelBinarizer().fit(y)
    assert fast.y_type_ == slow.y_type_
    np.testing.assert_array_equal(fast.classes_, slow.classes_)
