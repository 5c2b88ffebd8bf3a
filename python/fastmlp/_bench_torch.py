"""The benchmark's PyTorch engines (fp32, and bf16 autocast) and PyTorch's GEMM peaks.

Both engines run the same plain loop as fastmlp's engines: minibatch SGD with the benchmark's
learning rate and momentum on fp32 master weights, one shuffled epoch per fit. The bf16 engine
wraps forward and loss in ``torch.autocast("cpu", dtype=torch.bfloat16)``, the way PyTorch's
documentation trains in mixed precision on a CPU: the products take bf16 operands, the
weights, their gradients and the optimizer stay fp32.
"""

import contextlib
import os
import time

import numpy as np

from fastmlp._bench import LEARNING_RATE, MOMENTUM, torch_mlp


def torch_or_why_not():
    """(torch, None) with its threads set to every core, or (None, why it cannot run)."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed (pip install 'fastmlp[bench]')"
    torch.set_num_threads(os.cpu_count() or 1)
    return torch, None


class TorchEngine:
    name = "pytorch"
    precision = "fp32"

    @classmethod
    def unavailable(cls):
        """Why this engine cannot run here, or None."""
        return torch_or_why_not()[1]

    def __init__(self, workload):
        import torch

        self.torch = torch
        self.model = torch_mlp(workload)
        self.batch = workload["batch"]

    def _autocast(self):
        return contextlib.nullcontext()

    def fit(self, X, y):
        torch = self.torch
        X, y = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        opt = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
        loss_fn = torch.nn.CrossEntropyLoss()
        order = torch.randperm(len(X))
        for start in range(0, len(X), self.batch):
            idx = order[start : start + self.batch]
            opt.zero_grad(set_to_none=True)
            with self._autocast():
                loss = loss_fn(self.model(X[idx]), y[idx])
            loss.backward()  # outside autocast, as PyTorch recommends
            opt.step()

    def predict(self, X):
        torch = self.torch
        with torch.no_grad(), self._autocast():
            outputs = self.model(torch.from_numpy(X))
        return torch.softmax(outputs.float(), dim=1).numpy()  # probabilities in fp32


class TorchBf16Engine(TorchEngine):
    name = "pytorch-bf16"
    precision = "bf16"

    def _autocast(self):
        return self.torch.autocast("cpu", dtype=self.torch.bfloat16)


def torch_gemm_peaks_gflops(size=2048, repeats=5):
    """Best GFLOP/s of a size^3 ``torch.mm`` in fp32 and in bf16: {"fp32": ..., "bf16": ...}.

    Empty where PyTorch is not installed.
    """
    torch, _ = torch_or_why_not()
    if torch is None:
        return {}
    peaks = {}
    generator = torch.Generator().manual_seed(0)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, generator=generator).to(dtype)
        b = a.clone()
        torch.mm(a, b)  # warm up the threads (and, for bf16, the AMX tile state)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        peaks[precision] = 2 * size**3 / best / 1e9
    return peaks
