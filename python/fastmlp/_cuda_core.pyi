# Type stubs of the CUDA extension module (built only with FASTMLP_CUDA=ON). It exports the
# backend interface of every compiled fastmlp module (fastmlp/_backend.py), plus the device
# queries of fastmlp._cuda; cpp/cuda/README.md describes it.
from typing import Literal, TypedDict, overload

import numpy as np
from numpy.typing import NDArray

_Float = NDArray[np.float32] | NDArray[np.float64]

class _Capabilities(TypedDict):
    device: Literal["cuda"]
    dtypes: list[str]
    bf16: bool
    sparse: bool

class _DeviceProperties(TypedDict):
    name: str
    compute_capability: tuple[int, int]
    total_memory: int
    multiprocessors: int

class _BuildInfo(TypedDict):
    cuda_runtime: str
    architectures: list[str]
    fused_max_width: int

def capabilities() -> _Capabilities: ...
def device_count() -> int: ...
def device_status() -> str: ...
def device_properties(index: int) -> _DeviceProperties: ...
def build_info() -> _BuildInfo: ...
@overload
def forward(
    X: _Float,
    coefs: list[_Float],
    intercepts: list[_Float],
    activation: str,
    output_activation: str,
    *,
    device: int = 0,
    activations: Literal[False] = False,
    leaky_relu_slope: float = 0.01,
) -> _Float: ...
@overload
def forward(
    X: _Float,
    coefs: list[_Float],
    intercepts: list[_Float],
    activation: str,
    output_activation: str,
    *,
    device: int = 0,
    activations: Literal[True],
    leaky_relu_slope: float = 0.01,
) -> list[_Float]: ...
@overload
def backward(
    X: _Float,
    Y: _Float,
    sample_weight: _Float | None,
    coefs: list[_Float],
    intercepts: list[_Float],
    coef_grads: list[_Float],
    intercept_grads: list[_Float],
    activation: str,
    output_activation: str,
    loss: str,
    alpha: float,
    *,
    device: int = 0,
    internals: Literal[False] = False,
    leaky_relu_slope: float = 0.01,
) -> float: ...
@overload
def backward(
    X: _Float,
    Y: _Float,
    sample_weight: _Float | None,
    coefs: list[_Float],
    intercepts: list[_Float],
    coef_grads: list[_Float],
    intercept_grads: list[_Float],
    activation: str,
    output_activation: str,
    loss: str,
    alpha: float,
    *,
    device: int = 0,
    internals: Literal[True],
    leaky_relu_slope: float = 0.01,
) -> tuple[float, list[_Float], list[_Float]]: ...

class Trainer:
    def __init__(
        self,
        X: _Float,
        Y: _Float,
        sample_weight: _Float | None,
        coefs: list[_Float],
        intercepts: list[_Float],
        first: list[_Float],
        second: list[_Float],
        *,
        activation: str,
        output_activation: str,
        loss: str,
        alpha: float,
        solver: Literal["sgd", "adam", "lbfgs"],
        batch_size: int,
        learning_rate: float,
        momentum: float,
        nesterov: bool,
        beta_1: float,
        beta_2: float,
        epsilon: float,
        t: int,
        device: int = 0,
        leaky_relu_slope: float = 0.01,
        fused: bool = True,
    ) -> None: ...
    def run(
        self, order: NDArray[np.int64], learning_rate: float, loss_sum: float = 0.0
    ) -> tuple[float, int]: ...
    def loss_and_gradient(self, params: _Float, grad: _Float) -> float: ...
    def set_parameters(
        self,
        coefs: list[_Float],
        intercepts: list[_Float],
        first: list[_Float],
        second: list[_Float],
    ) -> None: ...
    def get_parameters(
        self,
        coefs: list[_Float],
        intercepts: list[_Float],
        first: list[_Float],
        second: list[_Float],
    ) -> None: ...
    @property
    def fused(self) -> bool: ...
