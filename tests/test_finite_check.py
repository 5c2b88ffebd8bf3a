"""The core's finiteness check (all_finite), which replaces scikit-learn's float sum over X
before each prediction: against NumPy's isfinite, in every built instruction-set variant, and
the estimators' errors for NaN and infinity, which must stay scikit-learn's own."""

import importlib

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

import fastmlp
from fastmlp import _core

BLOCK = 1 << 16  # the core's block of values: sizes and positions around its edges matter

VARIANTS = [importlib.import_module(f"fastmlp._core_{v}") for v in _core.available_variants()]


@pytest.mark.parametrize("module", VARIANTS, ids=lambda m: m.__name__.rsplit("_", 1)[-1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_finds_every_nan_and_infinity(module, dtype):
    rng = np.random.default_rng(0)
    info = np.finfo(dtype)
    for n in [0, 1, 15, 17, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5]:
        # Finite values of every kind: the largest, the smallest denormal, both zeros.
        a = rng.uniform(-1, 1, n).astype(dtype)
        special = np.array([info.max, -info.max, info.smallest_subnormal, -0.0, 0.0], dtype)
        a[: min(n, special.size)] = special[: min(n, special.size)]
        assert module.all_finite(a) is True
        for position in {0, n // 2, BLOCK - 1, BLOCK, n - 1}:
            if not 0 <= position < n:
                continue
            for bad in (np.nan, np.inf, -np.inf):
                b = a.copy()
                b[position] = bad
                assert module.all_finite(b) is False, (n, position, bad)
                assert module.all_finite(b) == bool(np.isfinite(b).all())


def test_all_finite_reads_c_and_f_order_and_refuses_other_arrays():
    a = np.ones((300, 7), np.float32)
    a[299, 6] = np.nan
    assert _core.module.all_finite(a) is False
    assert _core.module.all_finite(np.asfortranarray(a)) is False
    assert _core.module.all_finite(np.ones((300, 7), np.float64, order="F")) is True
    with pytest.raises(ValueError, match="C- or F-contiguous"):
        _core.module.all_finite(np.ones((10, 10))[:, ::2])
    with pytest.raises(ValueError, match="float32 or float64"):
        _core.module.all_finite(np.ones(10, np.int64))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("layout", ["C", "F", "strided", "csr"])
def test_prediction_on_non_finite_x_raises_scikit_learns_error(dtype, bad, layout):
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 6)).astype(dtype)
    y = np.arange(40) % 3
    ours = fastmlp.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    theirs = SkMLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    Xb = X.copy()
    Xb[17, 3] = bad
    if layout == "F":
        Xb = np.asfortranarray(Xb)
    elif layout == "strided":
        Xb = np.repeat(Xb, 2, axis=1)[:, ::2]
    elif layout == "csr":
        Xb = sp.csr_matrix(Xb)
    with pytest.raises(ValueError) as expected:
        theirs.predict(Xb)
    for method in (ours.predict, ours.predict_proba):
        with pytest.raises(ValueError) as raised:
            method(Xb)
        assert str(raised.value) == str(expected.value)
    # Finite X of the same layout predicts as before.
    Xb_ok = Xb.copy()
    if layout == "csr":
        Xb_ok.data[~np.isfinite(Xb_ok.data)] = 0.0
    else:
        Xb_ok[~np.isfinite(Xb_ok)] = 0.0
    assert ours.predict_proba(Xb_ok).shape == (40, 3)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_threaded_check_runs_and_scikit_learns_only_on_a_hit(monkeypatch):
    from fastmlp import _finite

    X = np.random.default_rng(2).standard_normal((60, 4)).astype(np.float32)
    model = fastmlp.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    model.fit(X, np.arange(60) % 2)
    calls = []
    monkeypatch.setattr(_finite, "assert_all_finite", lambda *a, **k: calls.append(a))
    model.predict(X)
    assert calls == []  # finite, contiguous float32: the core's check alone
    Xb = X.copy()
    Xb[3, 1] = np.inf
    model.predict(Xb)  # (scikit-learn's check, patched out here, would raise)
    assert len(calls) == 1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_errors_come_in_scikit_learns_order_and_assume_finite_skips_the_check():
    import sklearn

    X = np.random.default_rng(3).standard_normal((40, 4))
    y = np.arange(40) % 2
    ours = fastmlp.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    theirs = SkMLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    # NaN and the wrong number of features at once: scikit-learn reports the NaN first.
    wrong = np.full((3, 6), np.nan)
    with pytest.raises(ValueError) as expected:
        theirs.predict(wrong)
    with pytest.raises(ValueError) as raised:
        ours.predict(wrong)
    assert str(raised.value) == str(expected.value)
    assert "NaN" in str(raised.value)
    # The wrong number of features alone: scikit-learn's message too.
    with pytest.raises(ValueError, match="4 features"):
        ours.predict(np.zeros((3, 6)))
    # Under assume_finite scikit-learn checks nothing, and neither does fastmlp.
    Xb = X[:5].copy()
    Xb[0, 0] = np.nan
    with sklearn.config_context(assume_finite=True):
        theirs.predict_proba(Xb)
        assert ours.predict_proba(Xb).shape == (5, 2)
