"""fastmlp: fast multilayer perceptrons with a C++ core and scikit-learn's interface.

- :class:`MLPClassifier`, :class:`MLPRegressor`: drop-ins for scikit-learn's estimators.
- :class:`MLP`: the low-level network (forward, backward, one SGD step).
- :mod:`fastmlp.reference`: the same low-level network in plain NumPy, the tests' oracle.
- :func:`load` reads a model written by ``estimator.save(path)``; :func:`from_sklearn`
  converts a fitted scikit-learn MLP, ``estimator.to_sklearn()`` the other way.
- ``device="cuda"`` trains and predicts on a GPU where fastmlp was built with CUDA;
  :func:`cuda_available` says whether it can here, :func:`build_info` what was built.
"""

from fastmlp._backend import Bf16FallbackWarning
from fastmlp._classifier import MLPClassifier
from fastmlp._config import config_context, get_config, set_config
from fastmlp._core import build_info
from fastmlp._cuda import cuda_available
from fastmlp._network import MLP
from fastmlp._persistence import ModelFormatError, load
from fastmlp._regressor import MLPRegressor
from fastmlp._sklearn_interop import from_sklearn
from fastmlp._version import __version__

__all__ = [
    "Bf16FallbackWarning",
    "MLP",
    "MLPClassifier",
    "MLPRegressor",
    "ModelFormatError",
    "__version__",
    "build_info",
    "config_context",
    "cuda_available",
    "from_sklearn",
    "get_config",
    "load",
    "set_config",
]
