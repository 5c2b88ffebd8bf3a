"""Long fits and predictions answer Ctrl-C (issue #13): SIGINT sent to a child process in the
middle of the work must make it return within a generous bound (2 s), with scikit-learn's
behaviour: sgd/adam fits warn "Training interrupted by user." and keep the weights reached, as
a usable estimator; L-BFGS fits and predictions raise KeyboardInterrupt and leave the estimator
as it was. A behaviour test, not a benchmark."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.slow

BOUND_SECONDS = 2.0

CHILD = textwrap.dedent(
    """
    import sys, time, warnings
    import numpy as np
    import fastmlp

    rng = np.random.RandomState(0)
    X = rng.normal(size=(4000, 256)).astype(np.float32)
    y = rng.randint(3, size=4000)
    what = sys.argv[1]

    def say(line):
        print(line, flush=True)

    if what in ("adam", "sgd"):
        model = fastmlp.MLPClassifier((512, 512), solver=what, max_iter=1000, random_state=0,
                                      batch_size=64)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            say("working")
            model.fit(X, y)
        say("returned")
        messages = [str(w.message) for w in caught]
        assert "Training interrupted by user." in messages, messages
        assert model.predict(X[:5]).shape == (5,)  # usable: the weights reached
        say(f"ok n_iter_={model.n_iter_}")
    elif what == "lbfgs":
        model = fastmlp.MLPClassifier((8,), solver="lbfgs", max_iter=5, random_state=1)
        model.fit(X[:100], y[:100])
        before = [c.copy() for c in model.coefs_]
        model.set_params(hidden_layer_sizes=(1024, 1024), max_iter=100000, warm_start=False)
        X_big = np.tile(X, (4, 1))
        try:
            say("working")
            model.fit(X_big, np.tile(y, 4))
        except KeyboardInterrupt:
            say("returned")
            assert model.hidden_layer_sizes == (1024, 1024)  # the user's setting stays
            assert all(np.array_equal(a, b) for a, b in zip(model.coefs_, before))
            model.set_params(hidden_layer_sizes=(8,))  # the fitted model is the earlier one
            assert model.predict(X[:5]).shape == (5,)
            say("ok")
    else:  # predict
        model = fastmlp.MLPClassifier((2048, 2048), max_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[:200], y[:200])
        before = [c.copy() for c in model.coefs_]
        X_big = rng.normal(size=(200_000, 256)).astype(np.float32)
        try:
            say("working")
            model.predict_proba(X_big)
        except KeyboardInterrupt:
            say("returned")
            assert all(np.array_equal(a, b) for a, b in zip(model.coefs_, before))
            say("ok")
    """
)


@pytest.mark.parametrize("what", ["adam", "sgd", "lbfgs", "predict"])
def test_sigint_returns_within_the_bound(what):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, what],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "working", child.stderr.read()
        time.sleep(1.5)  # well inside the work: a fit or prediction of tens of seconds
        assert child.poll() is None, "the work ended before the signal: make it longer"
        child.send_signal(signal.SIGINT)
        sent = time.monotonic()
        line = child.stdout.readline().strip()
        elapsed = time.monotonic() - sent
        child.wait(timeout=60)
        out, err = child.stdout.read(), child.stderr.read()
    finally:
        child.kill()
    assert line == "returned", err
    assert elapsed < BOUND_SECONDS, f"returned {elapsed:.2f} s after SIGINT"
    assert child.returncode == 0, err
    assert out.startswith("ok"), out + err
