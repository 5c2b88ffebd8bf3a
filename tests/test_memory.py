"""Repeated fit/predict cycles do not grow the process's memory (no leak in the core)."""

import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastmlp

pytestmark = pytest.mark.slow


def resident_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_thousand_fit_predict_cycles_do_not_grow_memory():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(64, 10))
    y = rng.randint(3, size=64)

    def cycle(solver):
        clf = fastmlp.MLPClassifier(
            (16,), solver=solver, max_iter=3, batch_size=16, random_state=0
        )
        clf.fit(X, y)
        clf.predict_proba(X)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i in range(100):  # warm-up: allocator pools and caches reach their steady size
            cycle(("adam", "sgd", "lbfgs")[i % 3])
        before = resident_kib()
        for i in range(1000):
            cycle(("adam", "sgd", "lbfgs")[i % 3])
        grown = resident_kib() - before
    # A leak of even one small workspace (a few KiB) per cycle would add up to several MiB.
    assert grown < 2048, f"resident memory grew by {grown} KiB over 1000 cycles"
