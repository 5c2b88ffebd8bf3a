"""fastmlp._cuda_core, the CUDA extension module, at the level of its own functions.

It exports the backend interface of every compiled module (fastmlp/_backend.py). Argument errors
are raised before the device is touched, so they are tested on any machine that has the module
built (FASTMLP_CUDA=ON). Everything that runs kernels compares the GPU with the CPU module
(fastmlp._core.module, the same interface) on random networks, for every activation, loss and
solver, within float32 (or float64) tolerance; those tests skip without a GPU. Estimator-level
GPU parity is tests/test_cuda.py.
"""

import numpy as np
import pytest

from fastmlp import _core

cuda = pytest.importorskip(
    "fastmlp._cuda_core", reason="fastmlp._cuda_core is not built (build with FASTMLP_CUDA=ON)"
)
cpu = _core.module

HAS_GPU = cuda.device_count() > 0
_skip_without_gpu = pytest.mark.skipif(
    not HAS_GPU, reason=f"no CUDA device: {cuda.device_status()}"
)


def needs_gpu(test):
    """A test that runs on the GPU: marked ``gpu``, skipped with the reason without one."""
    return pytest.mark.gpu(_skip_without_gpu(test))


needs_no_gpu = pytest.mark.skipif(HAS_GPU, reason="a CUDA device is present")

HIDDEN = ["identity", "logistic", "tanh", "relu"]
# (output activation, loss) pairs that training accepts.
PAIRS = [
    ("identity", "squared_error"),
    ("logistic", "squared_error"),
    ("tanh", "squared_error"),
    ("relu", "squared_error"),
    ("exp", "squared_error"),
    ("logistic", "log_loss"),
    ("softmax", "log_loss"),
    ("exp", "poisson"),
]
DTYPES = [np.float32, np.float64]


def tol(dtype):
    return {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-11}


def network(sizes, dtype=np.float64, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    coefs = [
        (rng.standard_normal((a, b)) * scale / np.sqrt(a)).astype(dtype)
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    intercepts = [(rng.standard_normal(b) * 0.1).astype(dtype) for b in sizes[1:]]
    return coefs, intercepts


def targets(n, n_out, output, loss, dtype, rng):
    if loss == "log_loss" and output == "softmax":
        return np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, n)]
    if loss == "log_loss":
        return rng.integers(0, 2, (n, n_out)).astype(dtype)
    if loss == "poisson":
        return rng.poisson(1.5, (n, n_out)).astype(dtype)
    return rng.standard_normal((n, n_out)).astype(dtype)


def zeros_like_all(arrays):
    return [np.zeros_like(a) for a in arrays]


def copies(arrays):
    return [a.copy() for a in arrays]


def flat(coefs, intercepts):
    """The flat parameter vector: W_0..W_{L-1}, then b_0..b_{L-1}, row-major."""
    return np.concatenate([a.ravel() for a in coefs + intercepts])


def moments_for(solver, coefs, intercepts):
    """(first, second) as the solver keeps them: sgd one moment, adam two, lbfgs none."""
    count = {"sgd": 1, "adam": 2, "lbfgs": 0}.get(solver, 1)
    first = zeros_like_all(coefs + intercepts) if count >= 1 else []
    second = zeros_like_all(coefs + intercepts) if count >= 2 else []
    return first, second


SETTINGS = dict(
    alpha=1e-3,
    batch_size=32,
    learning_rate=0.01,
    momentum=0.9,
    nesterov=True,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    t=0,
)


# --- what works without a GPU ------------------------------------------------------------------


def test_capabilities():
    assert cuda.capabilities() == {
        "device": "cuda",
        "dtypes": ["float32", "float64"],
        "bf16": False,
        "sparse": False,
    }


def test_the_backend_interface_is_the_cpu_modules():
    # The same functions and Trainer methods as every compiled module (fastmlp/_backend.py).
    for name in ("capabilities", "forward", "backward", "Trainer"):
        assert hasattr(cuda, name) and hasattr(cpu, name)
    for method in ("run", "loss_and_gradient", "set_parameters", "get_parameters"):
        assert hasattr(cuda.Trainer, method) and hasattr(cpu.Trainer, method)
    assert not hasattr(cuda, "loss_and_gradients") and not hasattr(cuda.Trainer, "train_epoch")


def test_device_queries():
    count = cuda.device_count()
    assert isinstance(count, int) and count >= 0
    status = cuda.device_status()
    assert isinstance(status, str)
    assert (status == "") == (count > 0)


@needs_no_gpu
def test_status_says_why_there_is_no_device():
    # cudaGetErrorString's text: no driver, or a driver without a device.
    assert cuda.device_status() != ""


def test_build_info():
    info = cuda.build_info()
    assert set(info) == {"cuda_runtime", "architectures", "fused_max_width"}
    major, minor = info["cuda_runtime"].split(".")
    assert major.isdigit() and minor.isdigit()
    assert info["architectures"] and all(a.startswith("sm_") for a in info["architectures"])
    assert info["fused_max_width"] == 128


def test_type_stub_lists_what_the_module_has():
    import ast
    from pathlib import Path

    stub = Path(cuda.__file__).with_name("_cuda_core.pyi")
    if not stub.exists():
        pytest.skip("the type stub is not installed next to the module")
    tree = ast.parse(stub.read_text())
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    public = {n for n in dir(cuda) if not n.startswith("_")}
    assert {n for n in names if not n.startswith("_")} == public
    (trainer,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer"]
    methods = {n.name for n in trainer.body if isinstance(n, ast.FunctionDef)} - {"__init__"}
    assert methods == {n for n in dir(cuda.Trainer) if not n.startswith("_")}


@pytest.mark.parametrize("index", [-1, 10_000])
def test_device_properties_bad_index(index):
    with pytest.raises(IndexError):
        cuda.device_properties(index)


def forward_args(dtype=np.float64):
    coefs, intercepts = network([3, 4, 2], dtype)
    return np.zeros((5, 3), dtype), coefs, intercepts, "relu", "identity"


def backward_args(dtype=np.float64):
    X, coefs, intercepts, hidden, output = forward_args(dtype)
    Y = np.zeros((5, 2), dtype)
    grads = zeros_like_all(coefs), zeros_like_all(intercepts)
    return [X, Y, None, coefs, intercepts, *grads, hidden, output, "squared_error", 0.0]


def trainer_args(dtype=np.float64, solver="sgd", **changes):
    """(args, kwargs) of a valid Trainer, with `changes` to the keyword arguments."""
    X, coefs, intercepts, hidden, output = forward_args(dtype)
    Y = np.zeros((5, 2), dtype)
    first, second = moments_for(solver, coefs, intercepts)
    kwargs = dict(
        SETTINGS, activation=hidden, output_activation=output, loss="squared_error", solver=solver
    )
    return [X, Y, None, coefs, intercepts, first, second], {**kwargs, **changes}


def replaced(args, index, value):
    args = list(args)
    args[index] = value
    return args


def forward_errors():
    X, coefs, intercepts, hidden, output = forward_args()
    f32 = [c.astype(np.float32) for c in coefs]
    return [
        ((X.astype(np.int64), coefs, intercepts, hidden, output), TypeError, "X has dtype"),
        ((X.astype(np.float32), coefs, intercepts, hidden, output), TypeError, "coefs"),
        ((X, f32, intercepts, hidden, output), TypeError, "coefs"),
        ((X[:, :2].copy(), coefs, intercepts, hidden, output), ValueError, "X has shape"),
        (
            (np.asfortranarray(np.zeros((5, 3))), coefs, intercepts, hidden, output),
            ValueError,
            "C-contiguous",
        ),
        ((X, coefs, intercepts, "bogus", output), ValueError, "unknown activation"),
        ((X, coefs, intercepts, "softmax", output), ValueError, "output activation"),
        ((X, [], [], hidden, output), ValueError, "coefs is empty"),
        ((X, coefs, intercepts[:1], hidden, output), ValueError, "intercepts holds"),
        (
            (X, coefs, [intercepts[0], intercepts[0]], hidden, output),
            ValueError,
            r"intercepts\[1\] has shape",
        ),
        ((X, [coefs[0], coefs[0]], intercepts, hidden, output), ValueError, "coefs"),
        ((X, [coefs[0], "x"], intercepts, hidden, output), TypeError, "numpy.ndarray"),
    ]


@pytest.mark.parametrize("activations", [False, True])
@pytest.mark.parametrize("args, error, match", forward_errors())
def test_forward_argument_errors(args, error, match, activations):
    with pytest.raises(error, match=match):
        cuda.forward(*args, activations=activations)


def test_forward_bad_device_index():
    with pytest.raises(IndexError, match="device"):
        cuda.forward(*forward_args(), device=-1)


def test_device_is_a_keyword_argument():
    # The interface's device and activations/internals are keyword-only.
    with pytest.raises(TypeError):
        cuda.forward(*forward_args(), 0)
    with pytest.raises(TypeError):
        cuda.backward(*backward_args(), 0)


def backward_errors():
    base = backward_args()
    ro = [g.copy() for g in base[5]]
    ro[0].setflags(write=False)
    return [
        (replaced(base, 9, "hinge"), ValueError, "unknown loss"),
        (replaced(base, 8, "softmax"), ValueError, "cannot be used"),
        (replaced(replaced(base, 8, "identity"), 9, "poisson"), ValueError, "cannot be used"),
        (replaced(base, 1, np.zeros((4, 2))), ValueError, "Y has shape"),
        (replaced(base, 1, np.zeros((5, 2), np.float32)), TypeError, "Y has dtype"),
        (replaced(base, 2, np.ones(4)), ValueError, "sample_weight has shape"),
        (replaced(base, 2, [1.0] * 5), TypeError, "sample_weight must be a numpy.ndarray"),
        (replaced(base, 5, ro), ValueError, "writeable"),
        (replaced(base, 6, base[6][:1]), ValueError, "intercept_grads holds"),
        # step units run forward only: asking for their gradient is an error, as on the CPU.
        (replaced(base, 7, "step"), ValueError, "step"),
    ]


@pytest.mark.parametrize("internals", [False, True])
@pytest.mark.parametrize("args, error, match", backward_errors())
def test_backward_argument_errors(args, error, match, internals):
    with pytest.raises(error, match=match):
        cuda.backward(*args, internals=internals)


def test_backward_bad_device_index():
    with pytest.raises(IndexError, match="device"):
        cuda.backward(*backward_args(), device=-1)


def trainer_errors():
    sgd, _ = trainer_args()
    adam, _ = trainer_args(solver="adam")
    X = sgd[0]
    return [
        (sgd, dict(solver="bogus"), ValueError, "unknown solver"),
        (replaced(sgd, 5, sgd[5][:3]), {}, ValueError, "first holds 3 arrays"),
        (replaced(sgd, 6, adam[6]), {}, ValueError, "second holds 4 arrays, expected 0"),
        (
            replaced(adam, 6, []),
            dict(solver="adam"),
            ValueError,
            "second holds 0 arrays, expected 4",
        ),
        # L-BFGS keeps no moments.
        (sgd, dict(solver="lbfgs"), ValueError, "first holds 4 arrays, expected 0"),
        (replaced(sgd, 5, sgd[5][2:] + sgd[5][:2]), {}, ValueError, r"first\[0\] has shape"),
        (replaced(sgd, 0, X.astype(np.float32)), {}, TypeError, "dtype"),
        (replaced(sgd, 0, X.astype(np.int32)), {}, TypeError, "X has dtype"),
        (replaced(sgd, 1, np.zeros((5, 3))), {}, ValueError, "Y has shape"),
        (replaced(sgd, 2, np.ones(6)), {}, ValueError, "sample_weight has shape"),
        (sgd, dict(loss="poisson"), ValueError, "cannot be used"),
        (sgd, dict(activation="exp"), ValueError, "output activation"),
        (sgd, dict(batch_size=0), ValueError, "batch_size"),
        # A trainer trains: step units (forward only) are refused when it is built.
        (sgd, dict(activation="step"), ValueError, "step"),
    ]


@pytest.mark.parametrize("args, changes, error, match", trainer_errors())
def test_trainer_argument_errors(args, changes, error, match):
    kwargs = {**trainer_args(solver=changes.get("solver", "sgd"))[1], **changes}
    with pytest.raises(error, match=match):
        cuda.Trainer(*args, **kwargs)


def test_trainer_takes_its_settings_by_keyword_only():
    args, kwargs = trainer_args()
    with pytest.raises(TypeError):
        cuda.Trainer(*args, kwargs.pop("activation"), **kwargs)
    args, kwargs = trainer_args()
    del kwargs["t"]
    with pytest.raises(TypeError):
        cuda.Trainer(*args, **kwargs)


def test_trainer_bad_device_index():
    args, kwargs = trainer_args()
    with pytest.raises(IndexError, match="device"):
        cuda.Trainer(*args, **kwargs, device=-2)


@needs_no_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_valid_calls_raise_without_a_device(dtype):
    message = "fastmlp CUDA: no usable GPU: " + cuda.device_status()
    with pytest.raises(RuntimeError, match=message):
        cuda.forward(*forward_args(dtype))
    with pytest.raises(RuntimeError, match=message):
        cuda.forward(*forward_args(dtype), activations=True)
    with pytest.raises(RuntimeError, match=message):
        cuda.backward(*backward_args(dtype))
    with pytest.raises(RuntimeError, match=message):
        cuda.backward(*backward_args(dtype), internals=True)
    for solver in ["sgd", "adam", "lbfgs"]:
        for fused in [True, False]:
            args, kwargs = trainer_args(dtype, solver)
            with pytest.raises(RuntimeError, match=message):
                cuda.Trainer(*args, **kwargs, fused=fused)


# --- on the GPU: the kernels against the CPU module --------------------------------------------

# Shapes that cross the 64 x 64 GEMM tiles, the fused kernel's 128 and its row tiles.
SHAPES = [[3, 5, 2], [7, 64, 65, 4], [130, 70, 3], [20, 128, 128, 10]]


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN + ["step"])
@pytest.mark.parametrize("output", ["identity", "logistic", "softmax", "exp", "step"])
def test_forward_matches_cpu(dtype, hidden, output):
    rng = np.random.default_rng(1)
    for sizes in SHAPES:
        coefs, intercepts = network(sizes, dtype)
        X = rng.standard_normal((77, sizes[0])).astype(dtype)
        expected = cpu.forward(X, coefs, intercepts, hidden, output)
        got = cuda.forward(X, coefs, intercepts, hidden, output)
        assert got.dtype == dtype and got.shape == expected.shape
        layers = cuda.forward(X, coefs, intercepts, hidden, output, activations=True)
        expected_layers = cpu.forward(X, coefs, intercepts, hidden, output, activations=True)
        assert len(layers) == len(sizes) - 1
        assert [z.shape for z in layers] == [(77, s) for s in sizes[1:]]
        for z, e in [(got, expected), *zip(layers, expected_layers, strict=True)]:
            if "step" in (hidden, output):
                # A threshold flips where a pre-activation sits within rounding of 0: compare
                # most.
                assert np.mean(np.isclose(z, e, **tol(dtype))) > 0.97
            else:
                np.testing.assert_allclose(z, e, **tol(dtype))


@needs_gpu
def test_forward_many_rows_and_no_rows():
    coefs, intercepts = network([10, 33, 3], np.float32)
    X = np.random.default_rng(2).standard_normal((200_003, 10)).astype(np.float32)
    expected = cpu.forward(X, coefs, intercepts, "tanh", "softmax")
    np.testing.assert_allclose(
        cuda.forward(X, coefs, intercepts, "tanh", "softmax"), expected, rtol=2e-4, atol=2e-6
    )
    # Every layer, over more rows than one chunk of the workspace.
    layers = cuda.forward(X, coefs, intercepts, "tanh", "softmax", activations=True)
    np.testing.assert_allclose(layers[-1], expected, rtol=2e-4, atol=2e-6)
    hidden = cpu.forward(X, coefs, intercepts, "tanh", "softmax", activations=True)[0]
    np.testing.assert_allclose(layers[0], hidden, rtol=2e-4, atol=2e-6)
    assert cuda.forward(X[:0], coefs, intercepts, "tanh", "softmax").shape == (0, 3)


def backward_both(X, Y, w, coefs, intercepts, hidden, output, loss, alpha, internals=False):
    g_cpu = zeros_like_all(coefs), zeros_like_all(intercepts)
    g_gpu = zeros_like_all(coefs), zeros_like_all(intercepts)
    args = (hidden, output, loss, alpha)
    r_cpu = cpu.backward(X, Y, w, coefs, intercepts, *g_cpu, *args, internals=internals)
    r_gpu = cuda.backward(X, Y, w, coefs, intercepts, *g_gpu, *args, internals=internals)
    return (r_cpu, g_cpu), (r_gpu, g_gpu)


def assert_same_gradients(cpu_result, gpu_result, dtype):
    (v_cpu, (gc_cpu, gi_cpu)), (v_gpu, (gc_gpu, gi_gpu)) = cpu_result, gpu_result
    np.testing.assert_allclose(v_gpu, v_cpu, **tol(dtype))
    for a, b in zip(gc_gpu + gi_gpu, gc_cpu + gi_cpu, strict=True):
        np.testing.assert_allclose(
            a, b, rtol=tol(dtype)["rtol"] * 10, atol=tol(dtype)["atol"] * 10
        )


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output, loss", PAIRS)
@pytest.mark.parametrize("weighted", [False, True])
def test_backward_matches_cpu(dtype, hidden, output, loss, weighted):
    rng = np.random.default_rng(3)
    for sizes in SHAPES:
        coefs, intercepts = network(sizes, dtype)
        n = 300
        X = rng.standard_normal((n, sizes[0])).astype(dtype)
        Y = targets(n, sizes[-1], output, loss, dtype, rng)
        w = rng.uniform(0.0, 2.0, n).astype(dtype) if weighted else None
        cpu_result, gpu_result = backward_both(
            X, Y, w, coefs, intercepts, hidden, output, loss, 1e-2
        )
        assert_same_gradients(cpu_result, gpu_result, dtype)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, loss", [("softmax", "log_loss"), ("exp", "squared_error")])
def test_backward_internals_match_cpu(dtype, output, loss):
    # Every layer's output and local error, the errors weighted by the sample weights (not
    # divided by their sum), as the CPU's backprop before scaling.
    rng = np.random.default_rng(7)
    sizes = [7, 64, 65, 4]
    coefs, intercepts = network(sizes, dtype)
    X = rng.standard_normal((300, sizes[0])).astype(dtype)
    Y = targets(300, sizes[-1], output, loss, dtype, rng)
    w = rng.uniform(0.0, 2.0, 300).astype(dtype)
    (r_cpu, g_cpu), (r_gpu, g_gpu) = backward_both(
        X, Y, w, coefs, intercepts, "tanh", output, loss, 1e-2, internals=True
    )
    (v_cpu, z_cpu, d_cpu), (v_gpu, z_gpu, d_gpu) = r_cpu, r_gpu
    assert_same_gradients((v_cpu, g_cpu), (v_gpu, g_gpu), dtype)
    assert [z.shape for z in z_gpu] == [d.shape for d in d_gpu] == [(300, s) for s in sizes[1:]]
    loose = dict(rtol=tol(dtype)["rtol"] * 10, atol=tol(dtype)["atol"] * 10)
    for a, b in zip(z_gpu + d_gpu, z_cpu + d_cpu, strict=True):
        np.testing.assert_allclose(a, b, **loose)
    np.testing.assert_allclose(
        z_gpu[-1], cuda.forward(X, coefs, intercepts, "tanh", output), **tol(dtype)
    )


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_split_reduction_and_edge_cases(dtype):
    # Enough rows for the weight-gradient GEMM to split its reduction over blocks.
    rng = np.random.default_rng(4)
    coefs, intercepts = network([16, 32, 3], dtype)
    X = rng.standard_normal((50_001, 16)).astype(dtype)
    Y = targets(50_001, 3, "softmax", "log_loss", dtype, rng)
    cpu_result, gpu_result = backward_both(
        X, Y, None, coefs, intercepts, "relu", "softmax", "log_loss", 0.1
    )
    assert_same_gradients(cpu_result, gpu_result, dtype)
    # All-zero sample weights: no loss and no gradient, as on the CPU.
    w = np.zeros(50_001, dtype)
    (v, grads) = backward_both(X, Y, w, coefs, intercepts, "relu", "softmax", "log_loss", 0.1)[1]
    assert v == 0.0 and all(not g.any() for g in grads[0] + grads[1])


def trainer_pair(dtype, sizes, hidden, output, loss, solver, fused, weighted, seed=5, **settings):
    """A CUDA trainer and a CPU trainer on the same data and start: the CPU's works in place on
    its own copies of the parameters and moments, which it returns."""
    rng = np.random.default_rng(seed)
    coefs, intercepts = network(sizes, dtype, seed)
    n = 257
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    Y = targets(n, sizes[-1], output, loss, dtype, rng)
    w = rng.uniform(0.5, 1.5, n).astype(dtype) if weighted else None
    first, second = moments_for(solver, coefs, intercepts)
    kwargs = dict(
        SETTINGS,
        **settings,
        activation=hidden,
        output_activation=output,
        loss=loss,
        solver=solver,
    )
    gpu_trainer = cuda.Trainer(X, Y, w, coefs, intercepts, first, second, fused=fused, **kwargs)
    state = [copies(a) for a in (coefs, intercepts, first, second)]
    cpu_trainer = cpu.Trainer(X, Y, w, *state, **kwargs)
    return gpu_trainer, cpu_trainer, (X, Y, w, state)


def downloaded(trainer, state):
    """The trainer's parameters and moments, written into fresh arrays shaped as `state`."""
    out = [zeros_like_all(a) for a in state]
    trainer.get_parameters(*out)
    return out


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("solver, nesterov", [("sgd", True), ("sgd", False), ("adam", False)])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output, loss", PAIRS)
def test_trainer_runs_match_cpu(dtype, fused, solver, nesterov, hidden, output, loss):
    sizes = [6, 40, 33, 3]
    gpu_trainer, cpu_trainer, (X, Y, w, state) = trainer_pair(
        dtype, sizes, hidden, output, loss, solver, fused, (hidden == "tanh"), nesterov=nesterov
    )
    assert gpu_trainer.fused == fused
    rng = np.random.default_rng(6)
    for epoch in range(3):
        order = rng.permutation(len(X)).astype(np.int64)
        learning_rate = 0.01 / (epoch + 1)  # as a schedule changes it between epochs
        loss_cpu, t_cpu = cpu_trainer.run(order, learning_rate)
        if epoch == 1:
            # An epoch in two chunks at a batch boundary is the same as in one call.
            loss_gpu, _ = gpu_trainer.run(order[:64], learning_rate)
            rest, t_gpu = gpu_trainer.run(order[64:], learning_rate)
            loss_gpu += rest
        else:
            loss_gpu, t_gpu = gpu_trainer.run(order, learning_rate)
        assert t_gpu == t_cpu == (9 * (epoch + 1) if solver == "adam" else 0)
        np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-3 if dtype == np.float32 else 1e-9)
    cpu_trainer.get_parameters(*state)
    loose = {"rtol": 2e-3, "atol": 2e-4} if dtype == np.float32 else tol(dtype)
    for got, expected in zip(downloaded(gpu_trainer, state), state, strict=True):
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, **loose)
    coefs, intercepts = downloaded(gpu_trainer, state)[:2]
    np.testing.assert_allclose(
        cuda.forward(X, coefs, intercepts, hidden, output),
        cpu.forward(X, state[0], state[1], hidden, output),
        **loose,
    )


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_lbfgs_trainer_loss_and_gradient_matches_cpu(dtype, weighted):
    gpu_trainer, cpu_trainer, (X, Y, w, state) = trainer_pair(
        dtype, [5, 17, 2], "relu", "identity", "squared_error", "lbfgs", False, weighted, alpha=0.1
    )
    for seed in (9, 10):
        params = flat(*network([5, 17, 2], dtype, seed=seed))
        g_cpu, g_gpu = np.zeros_like(params), np.zeros_like(params)
        v_cpu = cpu_trainer.loss_and_gradient(params, g_cpu)
        v_gpu = gpu_trainer.loss_and_gradient(params, g_gpu)
        np.testing.assert_allclose(v_gpu, v_cpu, **tol(dtype))
        np.testing.assert_allclose(
            g_gpu, g_cpu, rtol=tol(dtype)["rtol"] * 10, atol=tol(dtype)["atol"] * 10
        )
    with pytest.raises(ValueError, match="lbfgs"):
        gpu_trainer.run(np.arange(3, dtype=np.int64), 0.1)


@needs_gpu
@pytest.mark.parametrize("fused", [False, True])
def test_trainer_state_gradient_and_errors(fused):
    dtype = np.float32
    sizes = [5, 17, 2]
    gpu_trainer, _, (X, Y, w, state) = trainer_pair(
        dtype, sizes, "relu", "identity", "squared_error", "sgd", fused, weighted=True, alpha=0.1
    )
    other_coefs, other_intercepts = network(sizes, dtype, seed=9)
    g_cpu = zeros_like_all(other_coefs), zeros_like_all(other_intercepts)
    v_cpu = cpu.backward(
        X, Y, w, other_coefs, other_intercepts, *g_cpu, "relu", "identity", "squared_error", 0.1
    )
    grad = np.zeros(sum(a.size for a in other_coefs + other_intercepts), dtype)
    v_gpu = gpu_trainer.loss_and_gradient(flat(other_coefs, other_intercepts), grad)
    np.testing.assert_allclose(v_gpu, v_cpu, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(grad, flat(*g_cpu), rtol=2e-3, atol=2e-4)
    # The trained parameters are untouched by loss_and_gradient...
    for got, start in zip(downloaded(gpu_trainer, state), state, strict=True):
        for a, b in zip(got, start, strict=True):
            np.testing.assert_array_equal(a, b)
    # ...and replaced, moments included, by set_parameters.
    velocities = [np.full_like(v, 0.5) for v in state[2]]
    gpu_trainer.set_parameters(other_coefs, other_intercepts, velocities, [])
    got = downloaded(gpu_trainer, state)
    for a, b in zip(
        got[0] + got[1] + got[2], other_coefs + other_intercepts + velocities, strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert gpu_trainer.run(np.zeros(0, np.int64), 0.1) == (0.0, 0)
    with pytest.raises(IndexError, match="order"):
        gpu_trainer.run(np.array([0, len(X)], np.int64), 0.1)
    with pytest.raises(TypeError, match="order"):
        gpu_trainer.run(np.arange(3, dtype=np.int32), 0.1)
    with pytest.raises(ValueError, match="params has shape"):
        gpu_trainer.loss_and_gradient(grad[:-1].copy(), grad)
    with pytest.raises(TypeError, match="grad has dtype"):
        gpu_trainer.loss_and_gradient(grad, grad.astype(np.float64))
    read_only = [copies(a) for a in state]
    read_only[0][0].setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        gpu_trainer.get_parameters(*read_only)
    with pytest.raises(ValueError, match="second holds 1 arrays, expected 0"):
        gpu_trainer.set_parameters(*state[:3], [state[0][0]])
    with pytest.raises(TypeError, match="coefs"):
        gpu_trainer.set_parameters([c.astype(np.float64) for c in state[0]], *state[1:])


@needs_gpu
def test_device_properties():
    props = cuda.device_properties(0)
    assert set(props) == {"name", "compute_capability", "total_memory", "multiprocessors"}
    assert props["total_memory"] > 0 and props["multiprocessors"] > 0


@needs_gpu
@pytest.mark.parametrize(
    "sizes, expected",
    [
        ([4, 128, 128, 2], True),
        ([4, 129, 2], False),
        ([129, 8, 2], False),
        ([4] * 18 + [2], False),
    ],
)
def test_fused_kernel_takes_narrow_networks_only(sizes, expected):
    # Wider than 128 anywhere, or deeper than 16 weight layers: the unfused kernels run instead,
    # with the same results.
    gpu_trainer, cpu_trainer, (X, *_) = trainer_pair(
        np.float64, sizes, "tanh", "identity", "squared_error", "adam", True, weighted=False,
        alpha=1e-4, batch_size=50, learning_rate=1e-3, nesterov=False,
    )  # fmt: skip
    assert gpu_trainer.fused is expected
    order = np.arange(len(X), dtype=np.int64)
    loss_gpu, t_gpu = gpu_trainer.run(order, 1e-3)
    loss_cpu, t_cpu = cpu_trainer.run(order, 1e-3)
    assert t_gpu == t_cpu == 6
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-9)


@needs_gpu
def test_device_index_past_the_last_device():
    with pytest.raises(IndexError, match="device"):
        cuda.forward(*forward_args(), device=cuda.device_count())


# --- the hidden activations of issue #16: leaky_relu (its slope), gelu and silu ----------------

# (hidden activation, leaky_relu_slope): leaky_relu at its default slope and another one.
NEW = [("leaky_relu", 0.01), ("leaky_relu", 0.3), ("gelu", 0.01), ("silu", 0.01)]
NEW_IDS = [f"{a}-{s}" if a == "leaky_relu" else a for a, s in NEW]


@pytest.mark.parametrize("hidden", ["leaky_relu", "gelu", "silu"])
def test_new_activations_are_hidden_only(hidden):
    X, coefs, intercepts, _, _ = forward_args()
    with pytest.raises(ValueError, match="hidden activation"):
        cuda.forward(X, coefs, intercepts, "relu", hidden)


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf")])
def test_a_bad_slope_is_refused_before_the_device(bad):
    # As the CPU module: checked with the network, before any device is looked for.
    X, coefs, intercepts, _, output = forward_args()
    with pytest.raises(ValueError, match="leaky_relu_slope"):
        cuda.forward(X, coefs, intercepts, "leaky_relu", output, leaky_relu_slope=bad)
    with pytest.raises(ValueError, match="leaky_relu_slope"):
        cuda.backward(*replaced(backward_args(), 7, "leaky_relu"), leaky_relu_slope=bad)
    args, kwargs = trainer_args(activation="leaky_relu", leaky_relu_slope=bad)
    with pytest.raises(ValueError, match="leaky_relu_slope"):
        cuda.Trainer(*args, **kwargs)


@needs_no_gpu
@pytest.mark.parametrize("hidden", ["leaky_relu", "gelu", "silu"])
def test_new_activations_are_no_longer_refused(hidden):
    # Accepted by every entry point: what stops them here is the missing GPU, nothing else.
    message = "fastmlp CUDA: no usable GPU: "
    X, coefs, intercepts, _, output = forward_args()
    with pytest.raises(RuntimeError, match=message):
        cuda.forward(X, coefs, intercepts, hidden, output, leaky_relu_slope=0.3)
    with pytest.raises(RuntimeError, match=message):
        cuda.backward(*replaced(backward_args(), 7, hidden), internals=True)
    for solver in ["sgd", "adam", "lbfgs"]:
        args, kwargs = trainer_args(solver=solver, activation=hidden, leaky_relu_slope=0.3)
        with pytest.raises(RuntimeError, match=message):
            cuda.Trainer(*args, **kwargs)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["identity", "softmax"])
@pytest.mark.parametrize("hidden, slope", NEW, ids=NEW_IDS)
def test_new_activations_forward_matches_cpu(dtype, hidden, slope, output):
    # The output alone (the fused kernel where the network fits it, [130, 70, 3] unfused) and
    # every layer's output (the layer-by-layer GEMMs).
    rng = np.random.default_rng(11)
    for sizes in SHAPES:
        coefs, intercepts = network(sizes, dtype, scale=1.5)
        X = (2 * rng.standard_normal((77, sizes[0]))).astype(dtype)
        args = (X, coefs, intercepts, hidden, output)
        np.testing.assert_allclose(
            cuda.forward(*args, leaky_relu_slope=slope),
            cpu.forward(*args, leaky_relu_slope=slope),
            **tol(dtype),
        )
        layers = cuda.forward(*args, activations=True, leaky_relu_slope=slope)
        expected = cpu.forward(*args, activations=True, leaky_relu_slope=slope)
        for z, e in zip(layers, expected, strict=True):
            np.testing.assert_allclose(z, e, **tol(dtype))


@needs_gpu
def test_the_slope_reaches_the_kernels():
    # Another slope, another output, on both forward paths and in the gradient.
    coefs, intercepts = network([4, 9, 2], scale=2.0)
    X = np.random.default_rng(12).standard_normal((40, 4)) * 3
    out = {s: cuda.forward(X, coefs, intercepts, "leaky_relu", "identity", leaky_relu_slope=s)
           for s in (0.01, 0.5)}  # fmt: skip
    assert not np.allclose(out[0.01], out[0.5])
    for s, got in out.items():
        expected = cpu.forward(X, coefs, intercepts, "leaky_relu", "identity", leaky_relu_slope=s)
        np.testing.assert_allclose(got, expected, **tol(np.float64))


def backward_new(X, Y, w, coefs, intercepts, hidden, output, loss, slope):
    """backward_both with internals, for a slope."""
    results = []
    for module in (cpu, cuda):
        grads = zeros_like_all(coefs), zeros_like_all(intercepts)
        value = module.backward(
            X, Y, w, coefs, intercepts, *grads, hidden, output, loss, 1e-2,
            internals=True, leaky_relu_slope=slope,
        )  # fmt: skip
        results.append((value, grads))
    return results


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "output, loss", [("identity", "squared_error"), ("softmax", "log_loss"), ("exp", "poisson")]
)
@pytest.mark.parametrize("hidden, slope", NEW, ids=NEW_IDS)
def test_new_activations_backward_matches_cpu(dtype, hidden, slope, output, loss):
    # The deltas too: gelu's and silu's come from the pre-activations the forward GEMMs kept.
    rng = np.random.default_rng(13)
    for sizes in SHAPES:
        coefs, intercepts = network(sizes, dtype, scale=1.5)
        n = 300
        X = (2 * rng.standard_normal((n, sizes[0]))).astype(dtype)
        Y = targets(n, sizes[-1], output, loss, dtype, rng)
        w = rng.uniform(0.0, 2.0, n).astype(dtype)
        (r_cpu, g_cpu), (r_gpu, g_gpu) = backward_new(
            X, Y, w, coefs, intercepts, hidden, output, loss, slope
        )
        (v_cpu, z_cpu, d_cpu), (v_gpu, z_gpu, d_gpu) = r_cpu, r_gpu
        assert_same_gradients((v_cpu, g_cpu), (v_gpu, g_gpu), dtype)
        loose = dict(rtol=tol(dtype)["rtol"] * 10, atol=tol(dtype)["atol"] * 10)
        for a, b in zip(z_gpu + d_gpu, z_cpu + d_cpu, strict=True):
            np.testing.assert_allclose(a, b, **loose)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver, nesterov", [("sgd", True), ("adam", False)])
@pytest.mark.parametrize("hidden, slope", NEW, ids=NEW_IDS)
def test_new_activations_trainer_runs_match_cpu(dtype, solver, nesterov, hidden, slope):
    # The fused and the unfused minibatch path (the fused kernel keeps gelu's and silu's
    # pre-activations beside the hidden outputs) against the CPU's trainer and each other.
    sizes = [6, 40, 33, 3]
    got = {}
    for fused in (True, False):
        gpu_trainer, cpu_trainer, (X, Y, w, state) = trainer_pair(
            dtype, sizes, hidden, "softmax", "log_loss", solver, fused, True,
            nesterov=nesterov, leaky_relu_slope=slope,
        )  # fmt: skip
        assert gpu_trainer.fused == fused
        rng = np.random.default_rng(14)
        for epoch in range(3):
            order = rng.permutation(len(X)).astype(np.int64)
            loss_cpu, t_cpu = cpu_trainer.run(order, 0.05 / (epoch + 1))
            loss_gpu, t_gpu = gpu_trainer.run(order, 0.05 / (epoch + 1))
            assert t_gpu == t_cpu
            np.testing.assert_allclose(
                loss_gpu, loss_cpu, rtol=1e-3 if dtype == np.float32 else 1e-9
            )
        cpu_trainer.get_parameters(*state)
        got[fused] = downloaded(gpu_trainer, state)
        loose = {"rtol": 2e-3, "atol": 2e-4} if dtype == np.float32 else tol(dtype)
        for a_list, b_list in zip(got[fused], state, strict=True):
            for a, b in zip(a_list, b_list, strict=True):
                np.testing.assert_allclose(a, b, **loose)
    for a_list, b_list in zip(got[True], got[False], strict=True):
        for a, b in zip(a_list, b_list, strict=True):
            np.testing.assert_allclose(a, b, **loose)


@needs_gpu
@pytest.mark.parametrize("hidden, slope", NEW, ids=NEW_IDS)
def test_new_activations_lbfgs_over_several_workspace_chunks(hidden, slope):
    # More rows than one chunk of the workspace (65536 at most): the pre-activations of each
    # chunk are where its backward pass reads them.
    dtype = np.float64
    sizes = [16, 32, 3]
    rng = np.random.default_rng(15)
    coefs, intercepts = network(sizes, dtype, scale=1.5)
    n = 70_001
    X = (2 * rng.standard_normal((n, sizes[0]))).astype(dtype)
    Y = targets(n, 3, "softmax", "log_loss", dtype, rng)
    w = rng.uniform(0.5, 1.5, n).astype(dtype)
    kwargs = dict(
        SETTINGS, activation=hidden, output_activation="softmax", loss="log_loss",
        solver="lbfgs", leaky_relu_slope=slope,
    )  # fmt: skip
    gpu_trainer = cuda.Trainer(X, Y, w, coefs, intercepts, [], [], **kwargs)
    cpu_trainer = cpu.Trainer(X, Y, w, copies(coefs), copies(intercepts), [], [], **kwargs)
    params = flat(coefs, intercepts)
    g_cpu, g_gpu = np.zeros_like(params), np.zeros_like(params)
    v_cpu = cpu_trainer.loss_and_gradient(params, g_cpu)
    v_gpu = gpu_trainer.loss_and_gradient(params, g_gpu)
    np.testing.assert_allclose(v_gpu, v_cpu, **tol(dtype))
    np.testing.assert_allclose(g_gpu, g_cpu, rtol=1e-8, atol=1e-10)
