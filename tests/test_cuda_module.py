"""fastmlp._cuda_core, the CUDA extension module, at the level of its own functions.

Argument errors are raised before the device is touched, so they are tested on any machine
that has the module built (FASTMLP_CUDA=ON). Everything that runs kernels compares the GPU
with the CPU core (fastmlp._core) on random networks, for every activation, loss and solver,
within float32 (or float64) tolerance; those tests skip without a GPU. Estimator-level GPU
parity is tests/test_cuda.py.
"""

import numpy as np
import pytest

from fastmlp import _core

cuda = pytest.importorskip(
    "fastmlp._cuda_core", reason="fastmlp._cuda_core is not built (build with FASTMLP_CUDA=ON)"
)

HAS_GPU = cuda.device_count() > 0
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason=f"no CUDA device: {cuda.device_status()}")
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


# --- what works without a GPU ------------------------------------------------------------------


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
    assert names - {"_DeviceProperties", "_BuildInfo"} == public
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


def lag_args(dtype=np.float64):
    X, coefs, intercepts, hidden, output = forward_args(dtype)
    Y = np.zeros((5, 2), dtype)
    grads = zeros_like_all(coefs), zeros_like_all(intercepts)
    return [X, Y, None, coefs, intercepts, *grads, hidden, output, "squared_error", 0.0]


def trainer_args(dtype=np.float64, solver="sgd"):
    X, coefs, intercepts, hidden, output = forward_args(dtype)
    Y = np.zeros((5, 2), dtype)
    first = zeros_like_all(coefs + intercepts)
    second = zeros_like_all(coefs + intercepts) if solver == "adam" else []
    return [X, Y, None, coefs, intercepts, first, second, hidden, output, "squared_error", solver]


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


@pytest.mark.parametrize("args, error, match", forward_errors())
def test_forward_argument_errors(args, error, match):
    with pytest.raises(error, match=match):
        cuda.forward(*args)


def test_forward_bad_device_index():
    with pytest.raises(IndexError, match="device"):
        cuda.forward(*forward_args(), device=-1)


def lag_errors():
    base = lag_args()
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


@pytest.mark.parametrize("args, error, match", lag_errors())
def test_loss_and_gradients_argument_errors(args, error, match):
    with pytest.raises(error, match=match):
        cuda.loss_and_gradients(*args)


def trainer_errors():
    sgd, adam = trainer_args(), trainer_args(solver="adam")
    return [
        (replaced(sgd, 10, "lbfgs"), ValueError, "solver"),
        (replaced(sgd, 5, sgd[5][:3]), ValueError, "first holds 3 arrays"),
        (replaced(sgd, 6, adam[6]), ValueError, "second holds 4 arrays, expected 0"),
        (replaced(adam, 6, []), ValueError, "second holds 0 arrays, expected 4"),
        (replaced(sgd, 5, sgd[5][2:] + sgd[5][:2]), ValueError, r"first\[0\] has shape"),
        (replaced(sgd, 0, sgd[0].astype(np.float32)), TypeError, "dtype"),
        (replaced(sgd, 1, np.zeros((5, 3))), ValueError, "Y has shape"),
        (replaced(sgd, 9, "poisson"), ValueError, "cannot be used"),
        (replaced(sgd, 7, "exp"), ValueError, "output activation"),
    ]


@pytest.mark.parametrize("args, error, match", trainer_errors())
def test_trainer_argument_errors(args, error, match):
    with pytest.raises(error, match=match):
        cuda.Trainer(*args)


def test_trainer_bad_device_index():
    with pytest.raises(IndexError, match="device"):
        cuda.Trainer(*trainer_args(), device=-2)


@needs_no_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_valid_calls_raise_without_a_device(dtype):
    message = "fastmlp CUDA: no usable GPU: " + cuda.device_status()
    with pytest.raises(RuntimeError, match=message):
        cuda.forward(*forward_args(dtype))
    with pytest.raises(RuntimeError, match=message):
        cuda.loss_and_gradients(*lag_args(dtype))
    for solver in ["sgd", "adam"]:
        with pytest.raises(RuntimeError, match=message):
            cuda.Trainer(*trainer_args(dtype, solver), fused=True)


# --- on the GPU: the kernels against the CPU core ----------------------------------------------

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
        expected = _core.forward(X, coefs, intercepts, hidden, output)
        got = cuda.forward(X, coefs, intercepts, hidden, output)
        assert got.dtype == dtype and got.shape == expected.shape
        if "step" in (hidden, output):
            # A threshold flips where a pre-activation sits within rounding of 0: compare most.
            assert np.mean(np.isclose(got, expected, **tol(dtype))) > 0.97
        else:
            np.testing.assert_allclose(got, expected, **tol(dtype))


@needs_gpu
def test_forward_many_rows_and_no_rows():
    coefs, intercepts = network([10, 33, 3], np.float32)
    X = np.random.default_rng(2).standard_normal((200_003, 10)).astype(np.float32)
    expected = _core.forward(X, coefs, intercepts, "tanh", "softmax")
    np.testing.assert_allclose(
        cuda.forward(X, coefs, intercepts, "tanh", "softmax"), expected, rtol=2e-4, atol=2e-6
    )
    assert cuda.forward(X[:0], coefs, intercepts, "tanh", "softmax").shape == (0, 3)


def lag_both(X, Y, w, coefs, intercepts, hidden, output, loss, alpha):
    g_cpu = zeros_like_all(coefs), zeros_like_all(intercepts)
    g_gpu = zeros_like_all(coefs), zeros_like_all(intercepts)
    v_cpu = _core.loss_and_gradients(
        X, Y, w, coefs, intercepts, *g_cpu, hidden, output, loss, alpha
    )
    v_gpu = cuda.loss_and_gradients(
        X, Y, w, coefs, intercepts, *g_gpu, hidden, output, loss, alpha
    )
    return (v_cpu, g_cpu), (v_gpu, g_gpu)


def assert_same_gradients(cpu, gpu, dtype):
    (v_cpu, (gc_cpu, gi_cpu)), (v_gpu, (gc_gpu, gi_gpu)) = cpu, gpu
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
def test_loss_and_gradients_match_cpu(dtype, hidden, output, loss, weighted):
    rng = np.random.default_rng(3)
    for sizes in SHAPES:
        coefs, intercepts = network(sizes, dtype)
        n = 300
        X = rng.standard_normal((n, sizes[0])).astype(dtype)
        Y = targets(n, sizes[-1], output, loss, dtype, rng)
        w = rng.uniform(0.0, 2.0, n).astype(dtype) if weighted else None
        cpu, gpu = lag_both(X, Y, w, coefs, intercepts, hidden, output, loss, 1e-2)
        assert_same_gradients(cpu, gpu, dtype)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_and_gradients_split_reduction_and_edge_cases(dtype):
    # Enough rows for the weight-gradient GEMM to split its reduction over blocks.
    rng = np.random.default_rng(4)
    coefs, intercepts = network([16, 32, 3], dtype)
    X = rng.standard_normal((50_001, 16)).astype(dtype)
    Y = targets(50_001, 3, "softmax", "log_loss", dtype, rng)
    cpu, gpu = lag_both(X, Y, None, coefs, intercepts, "relu", "softmax", "log_loss", 0.1)
    assert_same_gradients(cpu, gpu, dtype)
    # All-zero sample weights: no loss and no gradient, as on the CPU.
    w = np.zeros(50_001, dtype)
    (v, grads) = lag_both(X, Y, w, coefs, intercepts, "relu", "softmax", "log_loss", 0.1)[1]
    assert v == 0.0 and all(not g.any() for g in grads[0] + grads[1])


def trainer_pair(dtype, sizes, hidden, output, loss, solver, fused, weighted, seed=5):
    rng = np.random.default_rng(seed)
    coefs, intercepts = network(sizes, dtype, seed)
    n = 257
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    Y = targets(n, sizes[-1], output, loss, dtype, rng)
    w = rng.uniform(0.5, 1.5, n).astype(dtype) if weighted else None
    first = zeros_like_all(coefs + intercepts)
    second = zeros_like_all(coefs + intercepts) if solver == "adam" else []
    trainer = cuda.Trainer(
        X, Y, w, coefs, intercepts, first, second, hidden, output, loss, solver, fused=fused
    )
    return trainer, (X, Y, w, coefs, intercepts, first, second)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("solver, nesterov", [("sgd", True), ("sgd", False), ("adam", False)])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output, loss", PAIRS)
def test_trainer_epochs_match_cpu(dtype, fused, solver, nesterov, hidden, output, loss):
    sizes = [6, 40, 33, 3]
    trainer, (X, Y, w, coefs, intercepts, first, second) = trainer_pair(
        dtype, sizes, hidden, output, loss, solver, fused, weighted=(hidden == "tanh")
    )
    assert trainer.fused == fused and trainer.n_samples == len(X) and trainer.dtype == dtype
    rng = np.random.default_rng(6)
    settings = dict(
        alpha=1e-3,
        learning_rate=0.01,
        momentum=0.9,
        nesterov=nesterov,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
    )
    t_cpu = t_gpu = 0
    for _ in range(3):
        order = rng.permutation(len(X)).astype(np.int64)
        acc_cpu, t_cpu = _core.train_epoch(
            X,
            Y,
            w,
            order,
            32,
            coefs,
            intercepts,
            first,
            second,
            hidden,
            output,
            loss,
            settings["alpha"],
            solver,
            settings["learning_rate"],
            settings["momentum"],
            nesterov,
            settings["beta_1"],
            settings["beta_2"],
            settings["epsilon"],
            t_cpu,
        )
        acc_gpu, t_gpu = trainer.train_epoch(order, 32, t=t_gpu, **settings)
        assert t_gpu == t_cpu
        np.testing.assert_allclose(acc_gpu, acc_cpu, rtol=1e-3 if dtype == np.float32 else 1e-9)
    got = zeros_like_all(coefs), zeros_like_all(intercepts)
    got_first = zeros_like_all(first)
    got_second = zeros_like_all(second)
    trainer.download(*got, got_first, got_second)
    loose = {"rtol": 2e-3, "atol": 2e-4} if dtype == np.float32 else tol(dtype)
    expected = coefs + intercepts + first + second
    for a, b in zip(got[0] + got[1] + got_first + got_second, expected, strict=True):
        np.testing.assert_allclose(a, b, **loose)
    np.testing.assert_allclose(
        trainer.predict(X), _core.forward(X, coefs, intercepts, hidden, output), **loose
    )


@needs_gpu
@pytest.mark.parametrize("fused", [False, True])
def test_trainer_upload_loss_and_gradients_and_errors(fused):
    dtype = np.float32
    trainer, (X, Y, w, coefs, intercepts, first, second) = trainer_pair(
        dtype, [5, 17, 2], "relu", "identity", "squared_error", "sgd", fused, weighted=True
    )
    other_coefs, other_intercepts = network([5, 17, 2], dtype, seed=9)
    g_cpu = zeros_like_all(coefs), zeros_like_all(intercepts)
    g_gpu = zeros_like_all(coefs), zeros_like_all(intercepts)
    v_cpu = _core.loss_and_gradients(
        X, Y, w, other_coefs, other_intercepts, *g_cpu, "relu", "identity", "squared_error", 0.1
    )
    v_gpu = trainer.loss_and_gradients(other_coefs, other_intercepts, *g_gpu, 0.1)
    assert_same_gradients((v_cpu, g_cpu), (v_gpu, g_gpu), dtype)
    # The trained parameters are untouched by loss_and_gradients...
    np.testing.assert_allclose(
        trainer.predict(X),
        _core.forward(X, coefs, intercepts, "relu", "identity"),
        rtol=2e-4,
        atol=2e-5,
    )
    # ...and replaced by upload.
    trainer.upload(other_coefs, other_intercepts)
    np.testing.assert_allclose(
        trainer.predict(X),
        _core.forward(X, other_coefs, other_intercepts, "relu", "identity"),
        rtol=2e-4,
        atol=2e-5,
    )
    settings = dict(
        alpha=0.0,
        learning_rate=0.1,
        momentum=0.9,
        nesterov=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        t=0,
    )
    assert trainer.train_epoch(np.zeros(0, np.int64), 8, **settings) == (0.0, 0)
    with pytest.raises(IndexError, match="order"):
        trainer.train_epoch(np.array([0, len(X)], np.int64), 8, **settings)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.train_epoch(np.arange(3, dtype=np.int64), 0, **settings)
    with pytest.raises(TypeError, match="order"):
        trainer.train_epoch(np.arange(3, dtype=np.int32), 2, **settings)
    with pytest.raises(TypeError):
        trainer.predict(X.astype(np.float64))


@needs_gpu
def test_step_units_forward_only_on_the_trainer():
    trainer, (X, *_rest) = trainer_pair(
        np.float64, [4, 6, 1], "step", "identity", "squared_error", "sgd", False, False
    )
    assert trainer.predict(X).shape == (len(X), 1)
    with pytest.raises(ValueError, match="step"):
        trainer.train_epoch(
            np.arange(4, dtype=np.int64), 2, 0.0, 0.1, 0.9, True, 0.9, 0.999, 1e-8, 0
        )


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
    trainer, (X, Y, w, coefs, intercepts, first, second) = trainer_pair(
        np.float64, sizes, "tanh", "identity", "squared_error", "adam", True, weighted=False
    )
    assert trainer.fused is expected
    order = np.arange(len(X), dtype=np.int64)
    settings = (1e-4, 1e-3, 0.9, False, 0.9, 0.999, 1e-8, 0)
    acc_gpu, t_gpu = trainer.train_epoch(order, 50, *settings)
    acc_cpu, t_cpu = _core.train_epoch(
        X,
        Y,
        w,
        order,
        50,
        coefs,
        intercepts,
        first,
        second,
        "tanh",
        "identity",
        "squared_error",
        settings[0],
        "adam",
        *settings[1:],
    )
    assert t_gpu == t_cpu
    np.testing.assert_allclose(acc_gpu, acc_cpu, rtol=1e-9)


@needs_gpu
def test_device_index_past_the_last_device():
    with pytest.raises(IndexError, match="device"):
        cuda.forward(*forward_args(), device=cuda.device_count())
