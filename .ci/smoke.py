"""Smoke test of an installed fastmlp, as a user who installed a wheel or an sdist has it.

Run with the interpreter of the environment to check, from outside the checkout (so that
``import fastmlp`` finds the installed package, not ``python/fastmlp``):

    python .ci/smoke.py [--version X.Y.Z] [--variants all|baseline,...] [--no-compiler]

It checks the version (``__version__``, ``build_info()`` and the installed metadata agree, and
equal ``--version`` if given), then, for every instruction-set variant that the CPU can run, in
a child process with ``FASTMLP_ARCH`` set: the variant loads, a small classifier and regressor
fit, predict, save, load and predict the same. ``.ci/release`` runs it on the repaired wheel and
on the sdist; cibuildwheel runs it as its test command (see ``[tool.cibuildwheel]``).
"""

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile

# Anything that could compile: a wheel must need none of them.
COMPILERS = ("cc", "c++", "gcc", "g++", "clang", "clang++", "cmake", "ninja", "nvcc")


def check_one_variant(name):
    """In this process, loaded with FASTMLP_ARCH=name: fit, predict, save, load."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    import fastmlp

    info = fastmlp.build_info()
    assert info["variant"] == name and info["variant_chosen_by"] == "FASTMLP_ARCH", info
    rng = np.random.RandomState(0)
    X = rng.standard_normal((200, 6)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(int)  # XOR of two signs: needs the hidden layer
    params = dict(max_iter=300, learning_rate_init=0.01, random_state=0)
    models = (
        (fastmlp.MLPClassifier(hidden_layer_sizes=(16,), **params), y, 0.95),
        (fastmlp.MLPRegressor(hidden_layer_sizes=(8,), **params), X[:, 0], 0.95),
    )
    with tempfile.TemporaryDirectory() as folder:
        for estimator, target, least_score in models:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                estimator.fit(X, target)
            predicted = estimator.predict(X)
            score = estimator.score(X, target)  # accuracy, R^2: easy problems, both near 1
            assert score > least_score, f"{name}: {estimator!r} scores {score} on its training set"
            path = os.path.join(folder, "model.npz")
            estimator.save(path)
            loaded = fastmlp.load(path)
            assert type(loaded) is type(estimator)
            np.testing.assert_array_equal(loaded.predict(X), predicted)
            print(f"  {name:8s} {type(estimator).__name__:13s} score {score:.3f}, saved, loaded")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--version", help="the version that pyproject.toml states")
    parser.add_argument(
        "--variants",
        default="all",
        help="'all': every variant this CPU can run must be built; else the comma-separated "
        "variants expected (e.g. 'baseline' for a build with FASTMLP_ISA_VARIANTS=OFF)",
    )
    parser.add_argument("--no-compiler", action="store_true", help="fail if a compiler is on PATH")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # the child processes' mode
    args = parser.parse_args()
    if args.variant:
        check_one_variant(args.variant)
        return

    if args.no_compiler:
        found = {name: shutil.which(name) for name in COMPILERS if shutil.which(name)}
        assert not found, f"a compiler is on PATH: {found}"
        print(f"no compiler on PATH ({os.environ['PATH']})")

    import fastmlp
    from fastmlp import _core

    info = fastmlp.build_info()
    print(f"fastmlp {fastmlp.__version__} from {os.path.dirname(fastmlp.__file__)}")
    print(f"build_info(): {info}")
    assert "site-packages" in fastmlp.__file__, "imported from a source tree, not an install"
    versions = {
        "fastmlp.__version__": fastmlp.__version__,
        "build_info()['version']": info["version"],
        "installed metadata": importlib.metadata.version("fastmlp"),
    }
    if args.version:
        versions["pyproject.toml"] = args.version
    assert len(set(versions.values())) == 1, f"versions disagree: {versions}"

    features = _core._cpu_features()
    runnable = [name for name, needs in _core._VARIANTS if all(f in features for f in needs)]
    built = _core.available_variants()
    expected = runnable if args.variants == "all" else args.variants.split(",")
    assert built == expected, f"variants: built and runnable {built}, expected {expected}"
    print(f"variants this CPU can run: {runnable}; built and checked: {built}")
    for name in built:
        env = dict(os.environ, FASTMLP_ARCH=name, OMP_NUM_THREADS="2")
        subprocess.run([sys.executable, __file__, "--variant", name], env=env, check=True)
    print("smoke test: passed")


if __name__ == "__main__":
    main()
