"""L-BFGS for the estimators: SciPy's L-BFGS-B driving the core's full-batch loss and gradient,
with scikit-learn's options, iteration count and convergence warning.

The backend's trainer (``fastmlp._backend``, solver "lbfgs") holds the data for the whole fit (on
a GPU, on the device); each evaluation hands it the flat parameters L-BFGS-B proposes and takes
back the flat gradient, which SciPy needs on the host anyway.
"""

import warnings

import numpy as np
import scipy
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from fastmlp._arrays import aligned_empty, contiguous

# Frames from warnings.warn up to the user's line: fit_lbfgs, _fit, fit or partial_fit,
# scikit-learn's _fit_context wrapper, the user.
_USER_STACKLEVEL = 5


def _scipy_lbfgs_iprint_options(iprint):
    # SciPy 1.15 deprecated L-BFGS-B's iprint (and later removed it); older SciPy needs it to
    # stay quiet.
    major, minor = (int(part) for part in scipy.__version__.split(".")[:2])
    return {"iprint": iprint} if (major, minor) < (1, 15) else {}


def fit_lbfgs(est, X, y, sample_weight, backend):
    """Fit est (a BaseMultilayerPerceptron) by L-BFGS on backend (``fastmlp._backend``); sets
    coefs_, intercepts_, loss_, n_iter_."""
    dtype = X.dtype
    Y = contiguous(y, dtype)
    if sample_weight is not None:
        sample_weight = contiguous(sample_weight, dtype)
    shapes = [c.shape for c in est.coefs_] + [b.shape for b in est.intercepts_]
    sizes = [int(np.prod(s)) for s in shapes]
    bounds = np.cumsum([0, *sizes])
    n_layers = len(est.coefs_)

    def split(flat):
        # Views of the flat vector in the layout of coefs_ then intercepts_.
        parts = [
            flat[a:b].reshape(s) for a, b, s in zip(bounds[:-1], bounds[1:], shapes, strict=True)
        ]
        return parts[:n_layers], parts[n_layers:]

    # Aligned buffers (see _aligned_empty): L-BFGS can amplify differences in the last bits
    # of the gradients into a different model.
    flat = aligned_empty(bounds[-1], dtype)
    grad = aligned_empty(bounds[-1], dtype)
    trainer = backend.trainer(
        X, Y, sample_weight, est.coefs_, est.intercepts_, [], [],
        activation=est.activation, output_activation=est.out_activation_,
        loss=est._core_loss_name(), alpha=est.alpha, solver="lbfgs", batch_size=max(X.shape[0], 1),
        learning_rate=0.0, momentum=0.0, nesterov=False, beta_1=0.0, beta_2=0.0, epsilon=1.0, t=0,
        leaky_relu_slope=est.leaky_relu_slope,
    )  # fmt: skip

    def loss_and_grad(packed):
        flat[...] = packed
        loss = trainer.loss_and_gradient(flat, grad)
        return loss, grad.astype(np.float64)

    packed = np.concatenate([p.ravel() for p in (*est.coefs_, *est.intercepts_)])
    iprint = 1 if est.verbose is True or est.verbose >= 1 else -1
    # L-BFGS-B's own vector work is tiny; a threaded BLAS only makes it wait on its threads
    # (30x slower on digits). The loss and gradient run in the core, which is not BLAS.
    with threadpool_limits(limits=1, user_api="blas"):
        result = scipy.optimize.minimize(
            loss_and_grad,
            packed.astype(np.float64),
            method="L-BFGS-B",
            jac=True,
            options={
                "maxfun": est.max_fun,
                "maxiter": est.max_iter,
                "gtol": est.tol,
                **_scipy_lbfgs_iprint_options(iprint),
            },
        )
    est.n_iter_ = min(result.nit, est.max_iter)
    if result.status != 0:
        # scikit-learn's message (sklearn.utils.optimize._check_optimize_result).
        msg = (
            f"lbfgs failed to converge after {est.n_iter_} iteration(s) "
            f"(status={result.status}):\n{result.message}\n"
        )
        if est.n_iter_ == est.max_iter:
            msg += (
                "\nIncrease the number of iterations to improve the convergence "
                f"(max_iter={est.max_iter})."
            )
        msg += (
            "\nYou might also want to scale the data as shown in:\n"
            "    https://scikit-learn.org/stable/modules/preprocessing.html"
        )
        warnings.warn(msg, ConvergenceWarning, stacklevel=_USER_STACKLEVEL)
    est.loss_ = float(result.fun)
    coefs, intercepts = split(np.array(result.x, dtype=dtype))
    est.coefs_ = [contiguous(c, dtype) for c in coefs]
    est.intercepts_ = [contiguous(b, dtype) for b in intercepts]
