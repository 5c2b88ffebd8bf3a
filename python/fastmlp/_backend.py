"""The one place that picks the compiled backend for a device.

Every compiled module (``fastmlp._core_<variant>`` for the CPU, ``fastmlp._cuda_core`` for CUDA
GPUs) exports the same interface, so that the estimators, :class:`fastmlp.MLP`, L-BFGS and the
epoch loop call it without knowing which device computes:

``capabilities() -> dict``
    ``device`` ("cpu" or "cuda"), ``dtypes`` (the dtypes of X it computes in), and one flag
    per optional capability (``bf16``, ``sparse``): a new kernel adds a capability, not a fork.

Where ``bf16`` is set, ``forward``, ``backward`` and ``Trainer`` also take ``bf16=True`` (float32
X and parameters only): the products run on bfloat16 operands with float32 accumulation, every
other step in float32 (``compute_dtype="bfloat16"``). :class:`Backend` passes it for the
estimators, and is where a backend without it refuses or falls back (see :func:`backend_for`).

Wherever a function takes X, a module whose ``sparse`` flag is set takes, besides a dense
(n_samples, n_features) array, a CSR matrix as the tuple ``(data, indices, indptr, n_cols)``
(``data`` of X's dtype; ``indices`` and ``indptr`` both int32 or both int64; duplicates add up,
explicit zeros add nothing, rows may be unsorted): the first layer multiplies it directly and
nothing densifies it. :class:`Backend` makes the tuple from any SciPy sparse matrix, and raises
a ValueError for sparse X on a module without the flag (CUDA's, for now).
``forward(X, coefs, intercepts, activation, output_activation, *, device=0, activations=False,
leaky_relu_slope=0.01)``
    The output activations (n_samples, n_outputs); with ``activations=True`` the list of every
    layer's output ``[z_1, ..., z_L]`` (``z_L`` the network's output). ``activation`` (the
    hidden layers') may also be "leaky_relu" (slope ``leaky_relu_slope`` below zero, positive
    and finite, else ValueError), "gelu" or "silu": hidden-only, computed by every module
    (CPU and CUDA alike).
``backward(X, Y, sample_weight, coefs, intercepts, coef_grads, intercept_grads, activation,
output_activation, loss, alpha, *, device=0, internals=False, leaky_relu_slope=0.01)``
    The weighted mean loss plus its L2 term; writes the gradients into ``coef_grads`` and
    ``intercept_grads`` in place. With ``internals=True`` returns ``(loss, activations,
    deltas)``, every layer's output and local error ``[delta_1, ..., delta_L]`` (the errors are
    weighted by the sample weights, not yet divided by their sum).
``Trainer(X, Y, sample_weight, coefs, intercepts, first, second, *, activation,
output_activation, loss, alpha, solver, batch_size, learning_rate, momentum, nesterov, beta_1,
beta_2, epsilon, t, device=0, leaky_relu_slope=0.01, **options)``
    Built once per ``fit`` or ``partial_fit`` call: it checks and parses everything and sizes
    its workspace once. ``solver`` is "sgd", "adam" or "lbfgs" (no moments: ``first`` and
    ``second`` empty). On the CPU it maps the given NumPy arrays and updates them in place
    (zero-copy); on a GPU it holds device copies. ``options`` are a backend's tuning switches
    (the CPU's ``batch_split``, CUDA's ``fused``); see :data:`trainer_options`.

    ``run(order, learning_rate, loss_sum=0.0) -> (loss_sum, t)``
        Minibatches of ``batch_size`` over ``order`` (int64 row indices; the last batch may be
        short), so that Python can run an epoch in chunks. Returns ``loss_sum`` plus the sum of
        batch loss times batch length (scikit-learn's accumulated loss), and Adam's step count
        so far. An epoch run in chunks, each given the previous chunk's sum, gives the same
        bits as one call: nothing depends on where it was cut.
    ``loss_and_gradient(params, grad) -> float``
        L-BFGS: the full-batch loss at the flat parameter vector ``params`` (W_0..W_{L-1} then
        b_0..b_{L-1}, row-major, X's dtype) with its gradient written into ``grad``.
    ``set_parameters(coefs, intercepts, first, second)``
        Take these arrays as the current state (Python rebound them: best weights restored,
        ``coefs_`` assigned): the CPU re-maps them, a GPU uploads them.
    ``get_parameters(coefs, intercepts, first, second)``
        Write the current state into these host arrays (a GPU downloads; on the CPU, where the
        trainer already works in those arrays, nothing is copied).
"""

import warnings

from fastmlp import _core, _cuda, _sparse

# Tuning switches that tests give every Trainer of a backend: {"cpu": {...}, "cuda": {...}}.
trainer_options: dict[str, dict] = {"cpu": {}, "cuda": {}}


class Bf16FallbackWarning(UserWarning):
    """A model trained with ``compute_dtype="bfloat16"`` predicts in float32 on this CPU,
    which has no bfloat16 kernel: the results differ from the bfloat16 ones by about bfloat16's
    rounding (a relative 2**-8 per operand)."""


class Backend:
    """A compiled module bound to one device: the interface above, with ``device`` filled in
    and, for ``compute_dtype="bfloat16"``, ``bf16=True``."""

    def __init__(self, module, device_index, kind, bf16=False):
        self.module = module
        self.device_index = device_index
        self.kind = kind
        self.bf16 = bf16
        # Passed only when set: modules without the capability do not know the argument.
        self._bf16_argument = {"bf16": True} if bf16 else {}

    def capabilities(self):
        return dict(self.module.capabilities())

    def check_input(self, X):
        """Raise a ValueError if this backend cannot take X (sparse X without ``sparse``)."""
        if _sparse.is_sparse(X) and not self.capabilities().get("sparse", False):
            raise ValueError(
                f"sparse X is not supported on device {self.kind!r} yet: use device='cpu' "
                "(which keeps X sparse), or pass X.toarray() if it fits in memory"
            )

    def _input(self, X):
        """X as the module takes it: a dense array, or sparse X as its CSR tuple."""
        self.check_input(X)
        return _sparse.core_input(X)

    def forward(self, X, coefs, intercepts, activation, output_activation, activations=False,
                *, leaky_relu_slope=0.01):  # fmt: skip
        return self.module.forward(
            self._input(X),
            coefs,
            intercepts,
            activation,
            output_activation,
            device=self.device_index,
            activations=activations,
            leaky_relu_slope=leaky_relu_slope,
            **self._bf16_argument,
        )

    def backward(self, X, Y, sample_weight, coefs, intercepts, coef_grads, intercept_grads,
                 activation, output_activation, loss, alpha, internals=False, *,
                 leaky_relu_slope=0.01):  # fmt: skip
        return self.module.backward(
            self._input(X),
            Y,
            sample_weight,
            coefs,
            intercepts,
            coef_grads,
            intercept_grads,
            activation,
            output_activation,
            loss,
            alpha,
            device=self.device_index,
            internals=internals,
            leaky_relu_slope=leaky_relu_slope,
            **self._bf16_argument,
        )

    def trainer(self, X, Y, sample_weight, coefs, intercepts, first, second, **config):
        return self.module.Trainer(
            self._input(X),
            Y,
            sample_weight,
            coefs,
            intercepts,
            first,
            second,
            device=self.device_index,
            **config,
            **trainer_options[self.kind],
            **self._bf16_argument,
        )

    def bf16_unavailable_reason(self):
        """Why this backend has no bfloat16 kernel (empty when it has one)."""
        if self.capabilities().get("bf16", False):
            return ""
        info = self.module.build_info()
        reason = info["bf16"]["reason"] if isinstance(info.get("bf16"), dict) else ""
        return reason or f"the {self.kind} backend has no bfloat16 kernels"


COMPUTE_DTYPES = (None, "bfloat16")


def backend_for(device, compute_dtype=None, *, fitting=True):
    """The backend that computes on ``device`` ("cpu", "cuda" or "cuda:N"), in
    ``compute_dtype``: None (the parameters' dtype) or "bfloat16" (products on bfloat16
    operands, for fitting when ``fitting``, else for predicting).

    Raises
    ------
    ValueError
        If ``device`` or ``compute_dtype`` is misspelled.
    RuntimeError
        If it names a GPU that this build or machine lacks (see ``fastmlp._cuda``), or, for
        fitting, bfloat16 on a CPU without a bfloat16 kernel (predicting there warns with a
        :class:`Bf16FallbackWarning` and computes in float32).
    NotImplementedError
        For bfloat16 on a GPU.
    """
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be None or 'bfloat16', got {compute_dtype!r}")
    index = _cuda.resolve_device(device)
    if index is None:
        backend = Backend(_core.module, 0, "cpu")
    else:
        backend = Backend(_cuda.module(), index, "cuda")
    if compute_dtype is None:
        return backend
    if backend.kind == "cuda":
        raise NotImplementedError(
            "compute_dtype='bfloat16' is not implemented on the GPU yet: use device='cpu' on "
            "a CPU with AMX or AVX512-BF16, or compute_dtype=None"
        )
    reason = backend.bf16_unavailable_reason()
    if not reason:
        return Backend(backend.module, backend.device_index, backend.kind, bf16=True)
    if fitting:
        raise RuntimeError(
            "compute_dtype='bfloat16' needs a CPU with AMX-BF16 or AVX512-BF16 (Intel Sapphire "
            f"Rapids or later, AMD Zen 4 or later), and {reason}: fit with compute_dtype=None"
        )
    warnings.warn(
        f"this model was trained with compute_dtype='bfloat16', but {reason}: it predicts in "
        "float32, whose results differ from bfloat16's by about bfloat16's rounding",
        Bf16FallbackWarning,
        stacklevel=3,
    )
    return backend
