"""The ``sparse`` benchmark workload (issue #15): TF-IDF-sized sparse input, fastmlp against
scikit-learn's MLPClassifier, each engine and dtype in a subprocess of its own so that its peak
memory is its own.

20,000 rows x 100,000 columns with 100 stored values per row (CSR, random columns, values in
[0, 1)), two classes from a random linear teacher; hidden (64,), relu, adam, batch 200, one
epoch, float64 and float32. Reported per engine: training and prediction samples/s, and the
fit's peak resident memory (the process's peak, and its rise above the process with the data
loaded).
"""

import json
import subprocess
import sys
import time
import warnings

import numpy as np
import scipy.sparse

SPARSE = dict(
    n_samples=20000, n_features=100_000, nnz_per_row=100, hidden=(64,), n_classes=2, batch=200
)
ENGINES = ("fastmlp", "scikit-learn")
DTYPES = ("float64", "float32")


def make_sparse_data(workload=SPARSE, dtype=np.float64, seed=0):
    """CSR X (n_samples, n_features) of ``dtype`` and integer labels."""
    rng = np.random.RandomState(seed)
    n, k = workload["n_samples"], workload["nnz_per_row"]
    indices = rng.randint(0, workload["n_features"], n * k).astype(np.int32)
    data = rng.rand(n * k).astype(dtype)
    indptr = np.arange(n + 1, dtype=np.int32) * k
    X = scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, workload["n_features"]))
    teacher = rng.standard_normal((workload["n_features"], workload["n_classes"]))
    return X, np.argmax(X @ teacher, axis=1)


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _model(engine, workload):
    from fastmlp import MLPClassifier

    model = MLPClassifier(
        hidden_layer_sizes=workload["hidden"], solver="adam", batch_size=workload["batch"],
        max_iter=1, shuffle=True, random_state=0,
    )  # fmt: skip
    return model if engine == "fastmlp" else model.to_sklearn()


def child(engine, dtype):
    """One engine on one dtype (run in a fresh process): prints a JSON line of results."""
    X, y = make_sparse_data(SPARSE, np.dtype(dtype))
    model = _model(engine, SPARSE)
    before = _status_kib("VmRSS")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.fit(X, y)
        fit_seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    start = time.perf_counter()
    model.predict_proba(X)
    predict_seconds = time.perf_counter() - start
    print(
        json.dumps(
            dict(
                train_samples_per_s=X.shape[0] / fit_seconds,
                predict_samples_per_s=X.shape[0] / predict_seconds,
                fit_seconds=fit_seconds,
                peak_memory_mib=peak / 1024,
                fit_memory_above_data_mib=(peak - before) / 1024,
            )
        )
    )


def run_sparse(engines=ENGINES, dtypes=DTYPES):
    """Print the table; return {dtype: {"engines": {engine: results}, "ratios": ...}}."""
    results = {}
    columns = f"{'train/s':>10}{'predict/s':>11}{'peak MiB':>10}{'fit +MiB':>10}"
    print(f"{'sparse':<9}{'engine':<14}{columns}")
    for dtype in dtypes:
        rows = {}
        for engine in engines:
            code = f"from fastmlp._bench_sparse import child; child({engine!r}, {dtype!r})"
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                print(f"{engine} failed on {dtype}:\n{done.stderr[-2000:]}")
                continue
            r = rows[engine] = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{dtype:<9}{engine:<14}{r['train_samples_per_s']:>10,.0f}"
                f"{r['predict_samples_per_s']:>11,.0f}{r['peak_memory_mib']:>10.0f}"
                f"{r['fit_memory_above_data_mib']:>10.0f}"
            )
        ratios = {}
        if len(rows) == 2:
            ours, theirs = rows["fastmlp"], rows["scikit-learn"]
            ratios = {
                "train": ours["train_samples_per_s"] / theirs["train_samples_per_s"],
                "predict": ours["predict_samples_per_s"] / theirs["predict_samples_per_s"],
                "peak_memory": ours["peak_memory_mib"] / theirs["peak_memory_mib"],
            }
            print(
                "         fastmlp/scikit-learn: "
                + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
            )
        results[dtype] = dict(engines=rows, ratios=ratios)
    return dict(SPARSE, dtypes=results)
