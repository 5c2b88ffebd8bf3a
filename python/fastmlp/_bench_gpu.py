"""GPU training benchmark: fastmlp with device="cuda" beside a plain PyTorch CUDA loop.

The CPU benchmark's settings (fastmlp._bench): the same float32 data, softmax cross-entropy,
relu hidden layers, minibatch SGD with learning rate 0.01 and momentum 0.9 (no Nesterov),
alpha 0, one shuffled epoch, on the same GPU in one process. Each timed fit starts from host
NumPy arrays, as a user's does, so both engines' times include sending X and y to the device
once (fastmlp's also include its input validation, the labels' one-hot encoding, and bringing
the weights back). PyTorch's loop keeps the data on the GPU, shuffles with ``randperm`` on the
device and gathers each batch there. One warm-up, then the median of ``repeats``, with
``torch.cuda.synchronize()`` around each PyTorch run (fastmlp's fit returns after its weights
have come back, which waits for the device).

A second measurement, "epoch", times one more epoch on data already on the GPU: what each
further epoch of a longer fit costs, without the one-time transfers and checks. For fastmlp
that is ``_cuda_core.Trainer.run`` over the epoch's order, drawn on the host by scikit-learn's
``shuffle``, as the estimator draws it (``order s`` reports that draw alone); for PyTorch, the
same loop on its resident tensors.

Workloads (targets from issue #6):

- ``wide``: 8192×1024, hidden (2048, 2048), 10 classes, batch 512: GEMM-bound (fastmlp ≥ 1.0×).
- ``narrow``: 1,000,000×64, four hidden layers of 64, 10 classes, batch 16384: launch- and
  memory-bound, where fastmlp's fully fused kernel applies (fastmlp ≥ 3×). It runs twice: with
  the fused kernel allowed (the default) and without it.
"""

import functools
import json
import os
import statistics
import time
import warnings

import numpy as np

from fastmlp._atomic_file import atomic_write
from fastmlp._bench import (
    LEARNING_RATE,
    MOMENTUM,
    WORKLOADS,
    benchmark_classifier,
    make_data,
    torch_mlp,
)

GPU_WORKLOADS: dict[str, dict] = {
    "wide": WORKLOADS["wide"],
    "narrow": dict(
        n_samples=1_000_000, n_features=64, hidden=(64, 64, 64, 64), n_classes=10, batch=16384
    ),
}
# The speed-ups over PyTorch that issue #6 asks for.
TARGETS = {"wide": 1.0, "narrow": 3.0}


class FastmlpCudaEngine:
    name = "fastmlp"
    fused = True

    def __init__(self, workload):
        self.workload = workload
        self.model = benchmark_classifier(workload, device="cuda")

    def fit(self, X, y):
        from fastmlp import _backend

        options = _backend.trainer_options["cuda"]
        saved = dict(options)
        options["fused"] = self.fused
        try:
            self.model.fit(X, y)
        finally:
            options.clear()
            options.update(saved)

    def predict(self, X):
        return self.model.predict_proba(X)

    def prepare_resident(self, X, y):
        """Put X, one-hot y, initial weights and zero velocities on the device, in a Trainer."""
        from sklearn.utils import shuffle

        from fastmlp import MLP, _cuda

        w = self.workload
        sizes = (w["n_features"], *w["hidden"], w["n_classes"])
        net = MLP(sizes, "relu", "softmax", "log_loss", dtype="float32", random_state=0)
        Y = np.zeros((len(y), w["n_classes"]), np.float32)
        Y[np.arange(len(y)), y] = 1  # Y is (n_samples, n_classes)
        velocities = [np.zeros_like(p) for p in net.coefs + net.intercepts]
        trainer = _cuda.module().Trainer(
            X,
            Y,
            None,
            net.coefs,
            net.intercepts,
            velocities,
            [],
            activation="relu",
            output_activation="softmax",
            loss="log_loss",
            alpha=0.0,
            solver="sgd",
            batch_size=w["batch"],
            learning_rate=LEARNING_RATE,
            momentum=MOMENTUM,
            nesterov=False,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-8,
            t=0,
            device=0,
            fused=self.fused,
        )
        rng, indices = np.random.RandomState(0), np.arange(len(X), dtype=np.int64)

        def draw_order():
            return np.ascontiguousarray(shuffle(indices, random_state=rng), np.int64)

        def epoch():
            # Returns the epoch's loss: the device has finished.
            trainer.run(draw_order(), LEARNING_RATE)

        return epoch, draw_order


class FastmlpCudaUnfusedEngine(FastmlpCudaEngine):
    name = "fastmlp-unfused"
    fused = False


class TorchCudaEngine:
    name = "pytorch"
    device = "cuda"  # the tests run the same loop on "cpu"

    def __init__(self, workload):
        import torch

        self.torch = torch
        self.model = torch_mlp(workload).to(self.device)
        self.batch = workload["batch"]

    def fit(self, X, y):
        torch = self.torch
        self._synchronize()
        X = torch.from_numpy(X).to(self.device)
        y = torch.from_numpy(y.astype("int64")).to(self.device)
        opt = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
        self._epoch(X, y, opt)
        self._synchronize()

    def _synchronize(self):
        if self.device != "cpu":
            self.torch.cuda.synchronize()

    def _epoch(self, X, y, opt):
        loss_fn = self.torch.nn.CrossEntropyLoss()
        order = self.torch.randperm(len(X), device=self.device)
        for start in range(0, len(X), self.batch):
            idx = order[start : start + self.batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(self.model(X[idx]), y[idx]).backward()
            opt.step()

    def prepare_resident(self, X, y):
        torch = self.torch
        X = torch.from_numpy(X).to(self.device)
        y = torch.from_numpy(y.astype("int64")).to(self.device)
        opt = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)

        def epoch():
            self._epoch(X, y, opt)
            self._synchronize()

        return epoch, None

    def predict(self, X):
        torch = self.torch
        with torch.no_grad():
            outputs = self.model(torch.from_numpy(X).to(self.device))
            return torch.softmax(outputs, dim=1).cpu().numpy()  # .cpu() waits for the device


def _median_seconds(fn, repeats):
    fn()  # warm-up: CUDA context, cuBLAS handles, kernel loading, caching allocators
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _torch_cuda_or_why_not():
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, "PyTorch sees no CUDA device"
    return torch, None


def run(workloads=tuple(GPU_WORKLOADS), repeats=5, out_dir=None):
    """Run the GPU benchmark; print the table; write gpu_results.json to out_dir.

    Returns the results, or None (after saying why) where fastmlp cannot use a GPU here.
    """
    import fastmlp
    from fastmlp import _cuda

    if not fastmlp.cuda_available():
        why = _cuda.import_problem or _cuda.cuda_core.device_status()
        print(f"GPU benchmark skipped: no CUDA device for fastmlp ({why})")
        return None
    info = fastmlp.build_info()
    device = info["cuda"]["devices"][0]
    print(
        f"GPU: {device['name']} (compute capability {device['compute_capability']}); "
        f"fastmlp {info['version']}, CUDA {info['cuda']['runtime']}, "
        f"kernels for {', '.join(info['cuda']['architectures'])}"
    )
    engines: list[type] = [FastmlpCudaEngine, FastmlpCudaUnfusedEngine]
    torch, why_not = _torch_cuda_or_why_not()
    if torch is None:
        print(f"{why_not}: the PyTorch column is left out")
    else:
        engines.append(TorchCudaEngine)
        print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    results = {"device": device, "fastmlp": info, "repeats": repeats, "workloads": {}}
    print(
        f"{'workload':<9}{'engine':<17}{'fit: train/s':>14}{'fit s':>9}{'epoch: train/s':>16}"
        f"{'epoch s':>9}{'order s':>9}{'predict/s':>13}"
    )
    for name in workloads:
        workload = GPU_WORKLOADS[name]
        X, y = make_data(workload)
        widest = max(workload["n_features"], *workload["hidden"], workload["n_classes"])
        fused_applies = widest <= (info["cuda"]["fused_max_width"] or 0)
        rows = {}
        for engine_class in engines:
            if engine_class is FastmlpCudaUnfusedEngine and not fused_applies:
                continue  # the same run as "fastmlp": the fused kernel is not for wide layers
            engine = engine_class(workload)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # one epoch: ConvergenceWarning
                fit_seconds = _median_seconds(functools.partial(engine.fit, X, y), repeats)
            predict_seconds = _median_seconds(functools.partial(engine.predict, X), repeats)
            epoch, draw_order = engine.prepare_resident(X, y)
            epoch_seconds = _median_seconds(epoch, repeats)
            order_seconds = None if draw_order is None else _median_seconds(draw_order, repeats)
            rows[engine.name] = dict(
                train_samples_per_s=len(X) / fit_seconds,
                fit_seconds=fit_seconds,
                epoch_samples_per_s=len(X) / epoch_seconds,
                epoch_seconds=epoch_seconds,
                host_order_seconds=order_seconds,
                predict_samples_per_s=len(X) / predict_seconds,
            )
            r = rows[engine.name]
            order = "-" if order_seconds is None else f"{order_seconds:.4f}"
            print(
                f"{name:<9}{engine.name:<17}{r['train_samples_per_s']:>14,.0f}"
                f"{fit_seconds:>9.4f}{r['epoch_samples_per_s']:>16,.0f}{epoch_seconds:>9.4f}"
                f"{order:>9}{r['predict_samples_per_s']:>13,.0f}"
            )
            del epoch, draw_order  # free the device memory before the next engine
        entry = dict(workload, fused_kernel_applies=fused_applies, engines=rows)
        if "pytorch" in rows:
            ratios = {}
            for measure in ("train", "epoch"):
                torch_rate = rows["pytorch"][f"{measure}_samples_per_s"]
                for engine, row in rows.items():
                    if engine != "pytorch":
                        rate = row[f"{measure}_samples_per_s"]
                        ratios[f"{measure}: {engine}/pytorch"] = rate / torch_rate
            met = {m: ratios[f"{m}: fastmlp/pytorch"] >= TARGETS[name] for m in ("train", "epoch")}
            print("         " + ", ".join(f"{k} = {v:.2f}x" for k, v in ratios.items()))
            print(
                f"         target fastmlp >= {TARGETS[name]:.1f}x PyTorch: "
                + ", ".join(f"{m} {'met' if ok else 'NOT met'}" for m, ok in met.items())
            )
            entry.update(ratios=ratios, target=TARGETS[name], target_met=met)
        results["workloads"][name] = entry
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "gpu_results.json")
        with atomic_write(path, "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"wrote {path}")
    return results
