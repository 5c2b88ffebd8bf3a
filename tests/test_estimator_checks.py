"""scikit-learn's own estimator checks, every one of them, with no expected failure.

Each solver is checked on both estimators, with ``max_iter=100`` as scikit-learn checks its own
MLPs. The few checks that scikit-learn itself skips say why in their skip message: pandas not
installed (the pandas-input checks), ``SCIPY_ARRAY_API`` not set (the array API check, run below
in a subprocess that sets it), and ``MLPClassifier`` having no ``decision_function``.
"""

import os
import subprocess
import sys
import textwrap

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastmlp

# The checks fit on small data with max_iter=100, and say nothing about convergence.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = [
    cls(solver=solver, max_iter=100)
    for cls in (fastmlp.MLPClassifier, fastmlp.MLPRegressor)
    for solver in ("adam", "sgd", "lbfgs")
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_array_api_dispatch_with_numpy_inputs():
    # SciPy reads SCIPY_ARRAY_API once, at import: the check needs a fresh interpreter.
    code = textwrap.dedent(
        """
        import fastmlp
        from sklearn.utils.estimator_checks import check_array_api_input

        for cls in (fastmlp.MLPClassifier, fastmlp.MLPRegressor):
            for solver in ("adam", "sgd", "lbfgs"):
                est = cls(solver=solver, max_iter=100)
                check_array_api_input(
                    cls.__name__, est, array_namespace="numpy", expect_only_array_outputs=False
                )
        print("checked")
        """
    )
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "checked"
