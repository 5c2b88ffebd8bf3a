"""scikit-learn's own MLP test module, run against fastmlp's estimators.

The installed scikit-learn's ``sklearn/neural_network/tests/test_mlp.py`` (shipped in its
wheel) is copied to a temporary directory with one line changed, its import of the estimators,
and run by pytest in a subprocess, with the ``global_random_seed`` fixture that scikit-learn's
own conftest gives (42, or the seeds in ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED``). Every test case
must pass: that is what "drop-in" means.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sklearn

SKLEARN_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor\n"
FASTMLP_IMPORT = "from fastmlp import MLPClassifier, MLPRegressor\n"
CONFTEST = """\
import os

import pytest


def _seeds():
    value = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42")
    if value == "all":
        return list(range(100))
    if "-" in value:
        start, stop = (int(part) for part in value.split("-"))
        return list(range(start, stop + 1))
    return [int(part) for part in value.split(",")]


@pytest.fixture(params=_seeds())
def global_random_seed(request):
    return request.param
"""


def _sklearn_test_module():
    path = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    if not path.exists():
        pytest.skip(f"this scikit-learn install has no test module at {path}")
    return path.read_text()


@pytest.mark.integration
def test_sklearn_mlp_test_module_passes_with_fastmlp(tmp_path):
    source = _sklearn_test_module()
    # The one change: the estimators under test are fastmlp's.
    assert source.count(SKLEARN_IMPORT) == 1, "scikit-learn's test module changed its import"
    (tmp_path / "test_mlp.py").write_text(source.replace(SKLEARN_IMPORT, FASTMLP_IMPORT))
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this project's settings
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "test_mlp.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=900,
    )
    summary = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    # All of them ran: none skipped (pandas is a test dependency) and none deselected.
    assert "skipped" not in summary, summary
