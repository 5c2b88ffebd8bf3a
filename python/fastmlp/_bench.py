"""Side-by-side benchmark: fastmlp (fp32, bf16), scikit-learn's MLPClassifier and PyTorch
(fp32, bf16 autocast), training and prediction.

Every engine trains the same network on the same float32 data in this one process: softmax
cross-entropy, relu hidden layers, minibatch SGD with learning rate 0.01 and momentum 0.9 (no
Nesterov), alpha 0, one shuffled epoch, then ``predict_proba`` on the training rows. Every fit
after the first continues the engine's model, as PyTorch's loop continues its module:
fastmlp and scikit-learn fit with ``warm_start=True``. So a run times an epoch, not the
weights' initialization, which a real fit pays once for many epochs (for ``wide``, NumPy's
RandomState draws scikit-learn's 6.3M initial weights in about 0.08 s, 5% of one epoch).
After one warm-up each (which also measures the fit's peak memory), the engines take turns:
in each of the ``repeats`` runs every engine fits and predicts once, in an order that
alternates from run to run, so that a machine's slow minute falls on all of them. Reported:
the median and the range (min-max) over the runs, and the ratios fastmlp/peer taken run by run
(the engines of one run met the same machine).

The GEMM peaks (2048^3 products timed in the same run: NumPy's and PyTorch's in fp32,
PyTorch's in bf16) turn samples/s into a share of the hardware, fp32 engines against the faster
fp32 peak, bf16 engines against the bf16 one: a training step costs 6 FLOP per weight per
sample (2 forward, 2 for the weight gradient, 2 to pass the error down), less the 2 per
first-layer weight that no engine spends (nothing is below the input layer).

fastmlp's bf16 engine runs where ``fastmlp.build_info()["bf16"]`` names a kernel; the table
says which. ``FASTMLP_BF16_KERNEL=amx`` or ``avx512_bf16`` forces one, so that a CPU with AMX
can measure both kernels in two runs of the benchmark.
"""

import functools
import gc
import json
import os
import platform
import statistics
import time
import warnings

import numpy as np

from fastmlp._atomic_file import atomic_write, save_figure

WORKLOADS = {
    "small": dict(n_samples=20000, n_features=32, hidden=(64, 64), n_classes=4, batch=32),
    "mnist": dict(n_samples=30000, n_features=784, hidden=(256, 128), n_classes=10, batch=128),
    "wide": dict(n_samples=8192, n_features=1024, hidden=(2048, 2048), n_classes=10, batch=512),
}
LEARNING_RATE, MOMENTUM = 0.01, 0.9


def make_data(workload, seed=0):
    """float32 X (n_samples, n_features) and integer labels from a random linear teacher."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((workload["n_samples"], workload["n_features"])).astype(np.float32)
    teacher = rng.standard_normal((workload["n_features"], workload["n_classes"]))
    return X, np.argmax(X @ teacher, axis=1)


def training_flops_per_sample(workload):
    """FLOP of one training step per sample: 6 per weight, less 2 per first-layer weight."""
    sizes = [workload["n_features"], *workload["hidden"], workload["n_classes"]]
    weights = [a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return 6 * sum(weights) - 2 * weights[0]


def gemm_peak_gflops(size=2048, repeats=5):
    """Best float32 GFLOP/s of a size^3 NumPy matmul (NumPy's BLAS)."""
    a = np.random.RandomState(0).standard_normal((size, size)).astype(np.float32)
    b = a.copy()
    a @ b  # warm up the BLAS threads
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _cpu_name():
    """The CPU's model name where Linux tells it, else the architecture."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _rss_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_memory_mib(fn):
    """Peak resident memory above the start while fn runs (Linux; None elsewhere)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak, to the current resident size
    except OSError:
        return None
    before = _rss_kib("VmRSS")
    fn()
    return (_rss_kib("VmHWM") - before) / 1024


def benchmark_classifier(workload, **params):
    """fastmlp's MLPClassifier with the benchmark's settings for workload, plus params."""
    from fastmlp import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=workload["hidden"],
        solver="sgd",
        learning_rate_init=LEARNING_RATE,
        momentum=MOMENTUM,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=workload["batch"],
        max_iter=1,
        shuffle=True,
        random_state=0,
        warm_start=True,  # the next fit continues: one epoch each, no re-initialization
        **params,
    )


class FastmlpEngine:
    name = "fastmlp"
    precision = "fp32"
    params: dict = {}

    @classmethod
    def unavailable(cls):
        """Why this engine cannot run here, or None."""
        return None

    def __init__(self, workload):
        self.model = benchmark_classifier(workload, **self.params)

    def fit(self, X, y):
        self.model.fit(X, y)

    def predict(self, X):
        return self.model.predict_proba(X)


class FastmlpBf16Engine(FastmlpEngine):
    name = "fastmlp-bf16"
    precision = "bf16"
    params = {"compute_dtype": "bfloat16"}

    @classmethod
    def unavailable(cls):
        return bf16_kernel()[1]


class SklearnEngine(FastmlpEngine):
    name = "scikit-learn"

    def __init__(self, workload):
        # scikit-learn's MLP with the same parameters (less fastmlp's device).
        self.model = FastmlpEngine(workload).model.to_sklearn()


def _has_compute_dtype():
    from fastmlp import MLPClassifier

    return "compute_dtype" in MLPClassifier().get_params()


def bf16_kernel():
    """(the bf16 kernel fastmlp would run, None), or (None, why fastmlp cannot train in bf16)."""
    import fastmlp

    if not _has_compute_dtype():
        return None, "this fastmlp has no compute_dtype parameter"
    bf16 = fastmlp.build_info().get("bf16")
    if not isinstance(bf16, dict):
        return None, "fastmlp.build_info() names no bf16 kernel"
    if not bf16.get("kernel"):
        return None, bf16.get("reason") or "no bf16 kernel for this CPU"
    return bf16["kernel"], None


def torch_mlp(workload):
    """The workload's network as a plain PyTorch relu MLP (seeded), on the CPU."""
    import torch

    torch.manual_seed(0)
    sizes = [workload["n_features"], *workload["hidden"], workload["n_classes"]]
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def _engine_classes():
    from fastmlp._bench_torch import TorchBf16Engine, TorchEngine

    return [FastmlpEngine, FastmlpBf16Engine, SklearnEngine, TorchEngine, TorchBf16Engine]


def available_engines():
    """(the engine classes that can run here, {name: why not} for the others)."""
    engines, skipped = [], {}
    for engine in _engine_classes():
        why_not = engine.unavailable()
        if why_not is None:
            engines.append(engine)
        else:
            skipped[engine.name] = why_not
    return engines, skipped


# Ratios taken run by run: fastmlp's engine over the named peers (the faster one in that run).
RATIOS = {
    "fastmlp/scikit-learn": ("fastmlp", ("scikit-learn",)),
    "fastmlp/pytorch": ("fastmlp", ("pytorch",)),
    "fastmlp/faster fp32 peer": ("fastmlp", ("scikit-learn", "pytorch")),
    "fastmlp-bf16/pytorch-bf16": ("fastmlp-bf16", ("pytorch-bf16",)),
    "fastmlp-bf16/fastmlp": ("fastmlp-bf16", ("fastmlp",)),
}


def _spread(values):
    return dict(median=statistics.median(values), min=min(values), max=max(values))


def measure(engines, workload, X, y, repeats):
    """Samples/s of every engine's fit and predict in each of ``repeats`` interleaved runs.

    Returns {name: {"precision": "fp32" or "bf16", "train": [...], "predict": [...],
    "memory_mib": the warm-up fit's peak memory}}.
    """
    built = [engine_class(workload) for engine_class in engines]
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch does not converge
        for engine in built:
            memory = peak_memory_mib(functools.partial(engine.fit, X, y))  # and the warm-up
            engine.predict(X)
            runs[engine.name] = dict(
                precision=engine.precision, train=[], predict=[], memory_mib=memory
            )
        for r in range(repeats):
            for engine in built if r % 2 == 0 else built[::-1]:
                gc.collect()
                runs[engine.name]["train"].append(len(X) / _timed(engine.fit, X, y))
                runs[engine.name]["predict"].append(len(X) / _timed(engine.predict, X))
    return runs


def summarize(runs, flops_per_sample, peaks):
    """Rows per engine (medians, ranges, share of peak, memory) and the run-by-run ratios."""
    fp32_peak = max(peaks[name] for name in ("numpy_fp32", "pytorch_fp32") if name in peaks)
    rows = {}
    for name, run in runs.items():
        peak = peaks.get("pytorch_bf16") if run["precision"] == "bf16" else fp32_peak
        train = _spread(run["train"])
        gflops = train["median"] * flops_per_sample / 1e9
        rows[name] = dict(
            train_samples_per_s=train["median"],
            train_range=[train["min"], train["max"]],
            share_of_peak=None if peak is None else gflops / peak,
            predict_samples_per_s=statistics.median(run["predict"]),
            predict_range=[min(run["predict"]), max(run["predict"])],
            fit_peak_memory_mib=run["memory_mib"],
            runs=dict(train=run["train"], predict=run["predict"]),
        )
    ratios: dict = {"train": {}, "predict": {}}
    for label, (ours, peers) in RATIOS.items():
        if ours not in runs or any(peer not in runs for peer in peers):
            continue
        for what in ratios:
            per_run = [
                mine / max(runs[peer][what][i] for peer in peers)
                for i, mine in enumerate(runs[ours][what])
            ]
            ratios[what][label] = _spread(per_run)
    return rows, ratios


HEADER = "{:<9}{:<14}{:>28}{:>8}{:>28}{:>7}".format(
    "workload", "engine", "train/s (min-max)", "%peak", "predict/s (min-max)", "MiB"
)


def _si(rate):
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if rate >= scale:
            return f"{rate / scale:.3g}{suffix}"
    return f"{rate:.3g}"


def _print_rows(name, rows, ratios):
    for engine, r in rows.items():
        share = "-" if r["share_of_peak"] is None else f"{100 * r['share_of_peak']:.1f}%"
        mib = "-" if r["fit_peak_memory_mib"] is None else f"{r['fit_peak_memory_mib']:.0f}"
        train = "{:,.0f} ({}-{})".format(r["train_samples_per_s"], *map(_si, r["train_range"]))
        predict = "{:,.0f} ({}-{})".format(
            r["predict_samples_per_s"], *map(_si, r["predict_range"])
        )
        print(f"{name:<9}{engine:<14}{train:>28}{share:>8}{predict:>28}{mib:>7}")
    for what, by_label in ratios.items():
        text = ", ".join(
            f"{label} {v['median']:.2f}x ({v['min']:.2f}-{v['max']:.2f})"
            for label, v in by_label.items()
        )
        print(f"{'':9}{what}: {text}")


def run(workloads=tuple(WORKLOADS), repeats=5, out_dir=None):
    """Run the benchmark; print the table; write results.json (and a chart) to out_dir."""
    import fastmlp
    from fastmlp._bench_torch import torch_gemm_peaks_gflops

    peaks = {"numpy_fp32": gemm_peak_gflops()}
    peaks.update({f"pytorch_{p}": v for p, v in torch_gemm_peaks_gflops().items()})
    info = fastmlp.build_info()
    machine = f"{_cpu_name()}, {os.cpu_count()} cores"
    print(f"machine: {machine}")
    print("GEMM peaks (2048^3), GFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()))
    print(f"fastmlp {info['version']} variant {info['variant']}, {info['max_threads']} threads")
    kernel, why_not = bf16_kernel()
    forced = os.environ.get("FASTMLP_BF16_KERNEL")
    print(
        f"fastmlp bf16 kernel: {kernel or 'none'}"
        + (f" (FASTMLP_BF16_KERNEL={forced})" if forced else "")
        + (f" ({why_not})" if why_not else "")
    )
    engines, skipped = available_engines()
    for name, why in skipped.items():
        print(f"{name}: unavailable: {why}")
    if repeats < 5:
        print(f"{repeats} runs: fewer than the 5 that the targets are measured with")
    results = dict(machine=machine, gemm_peaks_gflops=peaks, fastmlp=info, repeats=repeats)
    results.update(bf16_kernel=kernel, bf16_kernel_forced=forced, unavailable=skipped)
    results["workloads"] = {}
    if "sparse" in workloads:
        # Sparse input, fastmlp against scikit-learn, each in a process of its own.
        from fastmlp._bench_sparse import run_sparse

        results["workloads"]["sparse"] = run_sparse()
        workloads = [name for name in workloads if name != "sparse"]
    if workloads:
        print(HEADER)
    for name in workloads:
        workload = WORKLOADS[name]
        X, y = make_data(workload)
        runs = measure(engines, workload, X, y, repeats)
        rows, ratios = summarize(runs, training_flops_per_sample(workload), peaks)
        _print_rows(name, rows, ratios)
        results["workloads"][name] = dict(workload, engines=rows, ratios=ratios)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with atomic_write(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=2, default=str)
        _chart(results, os.path.join(out_dir, "results.png"))
        print(f"wrote {out_dir}/results.json")
    return results


def _error_bars(value, low, high):
    """matplotlib's yerr for bars at value spanning [low, high]: never negative, which the
    rescaled share of peak could be by a rounding where the median is the minimum."""
    return [np.maximum(value - low, 0.0), np.maximum(high - value, 0.0)]


def _chart(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart written")
        return
    names = [name for name in results["workloads"] if name in WORKLOADS]
    if not names:
        return
    engines = list(results["workloads"][names[0]]["engines"])
    fig, (train_ax, predict_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(engines)
    for i, engine in enumerate(engines):
        rows = [results["workloads"][n]["engines"][engine] for n in names]
        x = np.arange(len(names)) + i * width
        # Share of the peak of the engine's precision, its run-to-run range as the error bar.
        share = np.array([r["share_of_peak"] for r in rows], dtype=float)  # None: nan
        scale = 100 * share / np.array([r["train_samples_per_s"] for r in rows])
        low, high = (scale * np.array([r["train_range"][k] for r in rows]) for k in (0, 1))
        train_ax.bar(x, 100 * share, width, yerr=_error_bars(100 * share, low, high))
        rate = np.array([r["predict_samples_per_s"] for r in rows])
        low, high = (np.array([r["predict_range"][k] for r in rows]) for k in (0, 1))
        predict_ax.bar(x, rate, width, label=engine, yerr=_error_bars(rate, low, high))
    for ax in (train_ax, predict_ax):
        ax.set_xticks(np.arange(len(names)) + width * (len(engines) - 1) / 2, names)
    train_ax.set_ylabel("training, % of the GEMM peak of its precision")
    train_ax.set_title("One SGD epoch (median, min-max)")
    predict_ax.set_yscale("log")
    predict_ax.set_ylabel("predict_proba, samples/s")
    predict_ax.set_title("Prediction (median, min-max)")
    predict_ax.legend(fontsize="small")
    fig.suptitle(results["machine"])
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
