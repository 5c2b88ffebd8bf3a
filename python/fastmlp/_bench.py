"""Side-by-side training benchmark: fastmlp, scikit-learn's MLPClassifier and PyTorch.

Every engine trains the same network on the same float32 data in this one process, one after
the other: softmax cross-entropy, relu hidden layers, minibatch SGD with learning rate 0.01 and
momentum 0.9 (no Nesterov), alpha 0, one shuffled epoch. Each measurement is repeated and the
median kept. The machine's float32 GEMM peak (a 2048^3 NumPy matmul, timed in the same run)
turns samples/s into a share of the hardware: a training step costs 6 FLOP per weight per sample
(2 forward, 2 for the weight gradient, 2 to pass the error down), less the 2 per first-layer
weight that no engine spends (nothing is below the input layer).
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
    """Best float32 GFLOP/s of a size^3 NumPy matmul."""
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


def _timed(fn):
    start = time.perf_counter()
    fn()
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
        **params,
    )


class FastmlpEngine:
    name = "fastmlp"

    def __init__(self, workload):
        self.model = benchmark_classifier(workload)

    def fit(self, X, y):
        self.model.fit(X, y)

    def predict(self, X):
        return self.model.predict_proba(X)


class SklearnEngine(FastmlpEngine):
    name = "scikit-learn"

    def __init__(self, workload):
        # scikit-learn's MLP with the same parameters (less fastmlp's device).
        self.model = FastmlpEngine(workload).model.to_sklearn()


def torch_mlp(workload):
    """The workload's network as a plain PyTorch relu MLP (seeded), on the CPU."""
    import torch

    torch.manual_seed(0)
    sizes = [workload["n_features"], *workload["hidden"], workload["n_classes"]]
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


class TorchEngine:
    name = "pytorch"

    def __init__(self, workload):
        import torch

        self.torch = torch
        self.model = torch_mlp(workload)
        self.batch = workload["batch"]

    def fit(self, X, y):
        torch = self.torch
        X, y = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        opt = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
        loss_fn = torch.nn.CrossEntropyLoss()
        order = torch.randperm(len(X))
        for start in range(0, len(X), self.batch):
            idx = order[start : start + self.batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(self.model(X[idx]), y[idx]).backward()
            opt.step()

    def predict(self, X):
        with self.torch.no_grad():
            return self.torch.softmax(self.model(self.torch.from_numpy(X)), dim=1).numpy()


def available_engines():
    engines: list[type] = [FastmlpEngine, SklearnEngine]
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        engines.append(TorchEngine)
    except ImportError:
        print("PyTorch is not installed (pip install 'fastmlp[bench]'): its column is left out")
    return engines


def run(workloads=tuple(WORKLOADS), repeats=3, out_dir=None):
    """Run the benchmark; print the table; write results.json (and a chart) to out_dir."""
    peak = gemm_peak_gflops()
    import fastmlp

    info = fastmlp.build_info()
    machine = f"{_cpu_name()}, {os.cpu_count()} cores"
    print(f"machine: {machine}; float32 GEMM peak {peak:.1f} GFLOP/s (NumPy 2048^3)")
    print(f"fastmlp {info['version']} variant {info['variant']}, {info['max_threads']} threads")
    results = {"machine": machine, "gemm_peak_gflops": peak, "fastmlp": info, "workloads": {}}
    engines = available_engines()
    header = f"{'workload':<9}{'engine':<14}{'train/s':>12}{'%peak':>8}{'predict/s':>12}{'MiB':>8}"
    if "sparse" in workloads:
        # Sparse input, fastmlp against scikit-learn, each in a process of its own.
        from fastmlp._bench_sparse import run_sparse

        results["workloads"]["sparse"] = run_sparse()
        workloads = [name for name in workloads if name != "sparse"]
    if workloads:
        print(header)
    for name in workloads:
        workload = WORKLOADS[name]
        X, y = make_data(workload)
        flops_per_sample = training_flops_per_sample(workload)
        rows = {}
        for engine_class in engines:
            engine = engine_class(workload)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = functools.partial(engine.fit, X, y)
                memory = peak_memory_mib(fit)  # also the warm-up
                fit_seconds = statistics.median(_timed(fit) for _ in range(repeats))
            predict = functools.partial(engine.predict, X)
            predict_seconds = statistics.median(_timed(predict) for _ in range(repeats))
            train_rate = len(X) / fit_seconds
            rows[engine.name] = dict(
                train_samples_per_s=train_rate,
                share_of_gemm_peak=train_rate * flops_per_sample / (peak * 1e9),
                predict_samples_per_s=len(X) / predict_seconds,
                fit_peak_memory_mib=memory,
            )
            r = rows[engine.name]
            mib = "-" if memory is None else f"{memory:.0f}"
            print(
                f"{name:<9}{engine.name:<14}{train_rate:>12,.0f}"
                f"{100 * r['share_of_gemm_peak']:>7.1f}%{r['predict_samples_per_s']:>12,.0f}"
                f"{mib:>8}"
            )
        base = rows["fastmlp"]["train_samples_per_s"]
        ratios = {
            f"fastmlp/{other}": base / rows[other]["train_samples_per_s"]
            for other in rows
            if other != "fastmlp"
        }
        print("         " + ", ".join(f"{k} = {v:.2f}x" for k, v in ratios.items()))
        results["workloads"][name] = dict(workload, engines=rows, ratios=ratios)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with atomic_write(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=2, default=str)
        _chart(results, os.path.join(out_dir, "results.png"))
        print(f"wrote {out_dir}/results.json")
    return results


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
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(engines)
    for i, engine in enumerate(engines):
        shares = [
            100 * results["workloads"][n]["engines"][engine]["share_of_gemm_peak"] for n in names
        ]
        ax.bar(np.arange(len(names)) + i * width, shares, width, label=engine)
    ax.set_xticks(np.arange(len(names)) + width * (len(engines) - 1) / 2, names)
    ax.set_ylabel("training throughput, % of float32 GEMM peak")
    ax.set_title(f"One SGD epoch, {results['machine']}")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
