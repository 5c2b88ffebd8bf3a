"""A stand-in for ``fastmlp._cuda_core`` that computes on the CPU, for machines without a GPU.

It follows the contract of the real module (/tmp/cuda_api.md in issue #6: the functions and
the ``Trainer`` class with their arguments) and acts out its one property that the Python side
must get right: a Trainer keeps its own copies of the data, parameters and moments ("on the
device"), so the host's arrays change only when ``download`` writes them. Each pass calls the
C++ core with the same arguments the CPU path uses, so a fit through this module must give
bitwise the CPU's model; any difference is a fault of the Python plumbing (a stale read, a
missed download, a moment not sent or not brought back). It counts the transfers, so tests can
check that X goes up once per fit.
"""

import numpy as np

from fastmlp import _core
from fastmlp._arrays import aligned_copy


class FakeCudaCore:
    """The module: ``device_count`` devices, all computing with the CPU core."""

    def __init__(self, device_count=1):
        self._device_count = device_count
        self.trainers = []  # every Trainer made, in order
        self.forward_calls = 0

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

    def forward(self, X, coefs, intercepts, activation, output_activation, device=0):
        self._check_device(device)
        self.forward_calls += 1
        return _core.forward(X, coefs, intercepts, activation, output_activation)

    def loss_and_gradients(
        self,
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
        device=0,
    ):
        self._check_device(device)
        return _core.loss_and_gradients(
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
        )

    def Trainer(self, *args, **kwargs):  # noqa: N802 (a class in the real module)
        trainer = FakeTrainer(self, *args, **kwargs)
        self.trainers.append(trainer)
        return trainer


def _device_copies(arrays):
    # Aligned as the host's own (see fastmlp._arrays): the core's last bits depend on it.
    return [aligned_copy(a, a.dtype) for a in arrays]


class FakeTrainer:
    """Holds copies of everything it is given; the host sees results only through download."""

    def __init__(
        self,
        module,
        X,
        Y,
        sample_weight,
        coefs,
        intercepts,
        first,
        second,
        activation,
        output_activation,
        loss,
        solver,
        device=0,
        fused=False,
    ):
        module._check_device(device)
        if not isinstance(fused, bool):
            raise TypeError("fused must be a bool")
        n_layers = len(coefs)
        expected_second = 2 * n_layers if solver == "adam" else 0
        if len(first) != 2 * n_layers or len(second) != expected_second:
            raise ValueError(f"{solver}: wrong number of moment arrays")
        dtype = X.dtype
        for array in (X, Y, *coefs, *intercepts, *first, *second):
            if array.dtype != dtype:
                raise TypeError(f"every array must be {dtype}, got {array.dtype}")
        self._X, self._Y = X.copy(), Y.copy()
        self._sample_weight = None if sample_weight is None else sample_weight.copy()
        self._coefs, self._intercepts = _device_copies(coefs), _device_copies(intercepts)
        self._first, self._second = _device_copies(first), _device_copies(second)
        self._network = dict(activation=activation, output_activation=output_activation, loss=loss)
        self.solver = solver
        self.fused = fused
        self.epochs = 0
        self.downloads = 0

    @property
    def n_samples(self):
        return self._X.shape[0]

    @property
    def dtype(self):
        return self._X.dtype

    def train_epoch(
        self,
        order,
        batch_size,
        alpha,
        learning_rate,
        momentum,
        nesterov,
        beta_1,
        beta_2,
        epsilon,
        t,
    ):
        if order.dtype != np.int64:
            raise TypeError("order must be int64")
        self.epochs += 1
        return _core.train_epoch(
            self._X,
            self._Y,
            self._sample_weight,
            np.array(order, copy=True),  # uploaded: the host may reuse its array
            batch_size,
            self._coefs,
            self._intercepts,
            alpha=alpha,
            first=self._first,
            second=self._second,
            solver=self.solver,
            learning_rate=learning_rate,
            momentum=momentum,
            nesterov=nesterov,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            t=t,
            **self._network,
        )

    def download(self, coefs, intercepts, first, second):
        self.downloads += 1
        for hosts, devices in (
            (coefs, self._coefs),
            (intercepts, self._intercepts),
            (first, self._first),
            (second, self._second),
        ):
            if len(hosts) != len(devices):
                raise ValueError("download: wrong number of arrays")
            for host, device in zip(hosts, devices, strict=True):
                if host.shape != device.shape or host.dtype != device.dtype:
                    raise ValueError("download: wrong shape or dtype")
                host[...] = device

    def upload(self, coefs, intercepts):
        self._coefs, self._intercepts = _device_copies(coefs), _device_copies(intercepts)

    def loss_and_gradients(self, coefs, intercepts, coef_grads, intercept_grads, alpha):
        # The real module uploads these; computing on them where they are keeps the CPU's
        # memory layout, so that L-BFGS does not amplify last-bit differences (fastmlp._arrays).
        return _core.loss_and_gradients(
            self._X,
            self._Y,
            self._sample_weight,
            coefs,
            intercepts,
            coef_grads,
            intercept_grads,
            self._network["activation"],
            self._network["output_activation"],
            self._network["loss"],
            alpha,
        )

    def predict(self, X):
        return _core.forward(
            X,
            self._coefs,
            self._intercepts,
            self._network["activation"],
            self._network["output_activation"],
        )
