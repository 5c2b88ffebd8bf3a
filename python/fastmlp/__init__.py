"""fastmlp: fast multilayer perceptrons with a C++ core and scikit-learn's interface.

- :class:`MLPClassifier`, :class:`MLPRegressor`: drop-ins for scikit-learn's estimators.
- :class:`MLP`: the low-level network (forward, backward, one SGD step).
- :mod:`fastmlp.reference`: the same low-level network in plain NumPy, the tests' oracle.
"""

from fastmlp._classifier import MLPClassifier
from fastmlp._core import build_info
from fastmlp._network import MLP
from fastmlp._regressor import MLPRegressor

__version__ = build_info()["version"]

__all__ = ["MLP", "MLPClassifier", "MLPRegressor", "build_info", "__version__"]
