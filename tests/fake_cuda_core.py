"""A stand-in for ``fastmlp._cuda_core`` that computes on the CPU, for machines without a GPU.

It exports the backend interface every compiled module exports (``fastmlp/_backend.py``), the
device queries of ``fastmlp._cuda``, and the CUDA Trainer's option ``fused``, and acts out the
one property of a GPU backend that the Python side must get right: a Trainer keeps its own
copies of the data, parameters and moments ("on the device"), so the host's arrays change only
when ``get_parameters`` writes them, and the device's only when ``set_parameters`` sends them.
Everything else is the CPU module's (``fastmlp._core.module``), called with the same arguments
the CPU path uses, so a fit through this module must give bitwise the CPU's model; any difference
is a fault of the Python plumbing (a stale read, a missed ``get_parameters``, a moment not sent
or not brought back). It counts the calls, so tests can check that X goes up once per fit.
"""

import numpy as np

from fastmlp import _core
from fastmlp._arrays import aligned_copy


class FakeCudaCore:
    """The module: ``device_count`` devices, all computing with the CPU module."""

    def __init__(self, device_count=1):
        self._device_count = device_count
        self.trainers = []  # every Trainer made, in order
        self.forward_calls = 0
        self.backward_calls = 0

    def capabilities(self):
        return {"device": "cuda", "dtypes": ["float32", "float64"], "bf16": False, "sparse": False}

    def device_count(self):
        return self._device_count

    def device_status(self):
        return "" if self._device_count else "no CUDA-capable device is detected"

    def device_properties(self, index):
        self._check_device(index)
        return {
            "name": "Fake GPU",
            "compute_capability": (9, 0),
            "total_memory": 1 << 30,
            "multiprocessors": 1,
        }

    def build_info(self):
        return {"cuda_runtime": "0.0", "architectures": ["sm_90"], "fused_max_width": 128}

    def _check_device(self, device):
        if not isinstance(device, int) or not 0 <= device < self._device_count:
            raise IndexError(f"no device {device!r}")

    def forward(self, X, coefs, intercepts, activation, output_activation, *, device=0,
                activations=False, leaky_relu_slope=0.01):  # fmt: skip
        self._check_device(device)
        self.forward_calls += 1
        return _core.module.forward(
            X, coefs, intercepts, activation, output_activation, activations=activations,
            leaky_relu_slope=leaky_relu_slope,
        )  # fmt: skip

    def backward(self, X, Y, sample_weight, coefs, intercepts, coef_grads, intercept_grads,
                 activation, output_activation, loss, alpha, *, device=0,
                 internals=False, leaky_relu_slope=0.01):  # fmt: skip
        self._check_device(device)
        self.backward_calls += 1
        return _core.module.backward(
            X,
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
            internals=internals,
            leaky_relu_slope=leaky_relu_slope,
        )

    def Trainer(self, *args, **kwargs):  # noqa: N802 (a class in the real module)
        trainer = FakeTrainer(self, *args, **kwargs)
        self.trainers.append(trainer)
        return trainer


def _device_copies(arrays):
    # Aligned as the host's own (see fastmlp._arrays): the core's last bits depend on it.
    return [aligned_copy(a, a.dtype) for a in arrays]


def _copy_into(targets, sources, what):
    if len(targets) != len(sources):
        raise ValueError(f"{what}: {len(sources)} arrays, expected {len(targets)}")
    for target, source in zip(targets, sources, strict=True):
        if target.shape != source.shape or target.dtype != source.dtype:
            raise ValueError(f"{what}: wrong shape or dtype")
        target[...] = source


class FakeTrainer:
    """A CPU trainer over copies of everything it is given; the host sees results only through
    ``get_parameters``."""

    def __init__(self, module, X, Y, sample_weight, coefs, intercepts, first, second, *,
                 device=0, fused=True, **config):  # fmt: skip
        module._check_device(device)
        if not isinstance(fused, bool):
            raise TypeError("fused must be a bool")
        self.fused = fused
        self.config = dict(config)  # the network and optimizer settings it was given
        self._state = [_device_copies(a) for a in (coefs, intercepts, first, second)]
        data = (X.copy(), Y.copy(), None if sample_weight is None else sample_weight.copy())
        # The CPU trainer checks every argument as the real module does, and then works in
        # these copies in place.
        self._trainer = _core.module.Trainer(*data, *self._state, **config)
        self.runs = 0  # run() calls
        self.rows = 0  # rows over all run() calls
        self.gradient_calls = 0
        self.uploads = 0  # set_parameters
        self.downloads = 0  # get_parameters

    def run(self, order, learning_rate, loss_sum=0.0):
        if not isinstance(order, np.ndarray) or order.dtype != np.int64:
            raise TypeError("order must be an int64 numpy.ndarray")
        self.runs += 1
        self.rows += len(order)
        # Uploaded: the host may reuse its array.
        return self._trainer.run(np.array(order, copy=True), learning_rate, loss_sum)

    def loss_and_gradient(self, params, grad):
        # The real module uploads params and downloads grad; computing on them where they are
        # keeps the CPU's memory layout, so that L-BFGS does not amplify last-bit differences
        # (fastmlp._arrays).
        self.gradient_calls += 1
        return self._trainer.loss_and_gradient(params, grad)

    def set_parameters(self, coefs, intercepts, first, second):
        self.uploads += 1
        for device, host in zip(self._state, (coefs, intercepts, first, second), strict=True):
            _copy_into(device, host, "set_parameters")
        self._trainer.set_parameters(*self._state)

    def get_parameters(self, coefs, intercepts, first, second):
        self.downloads += 1
        self._trainer.get_parameters(*self._state)
        for host, device in zip((coefs, intercepts, first, second), self._state, strict=True):
            _copy_into(host, device, "get_parameters")
