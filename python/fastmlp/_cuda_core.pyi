# Type stubs of the CUDA extension module (built only with FASTMLP_CUDA=ON); its contract with
# the Python side is cpp/cuda/README.md.
from typing import Literal, TypedDict

import numpy as np
from numpy.typing import NDArray

_Float = NDArray[np.float32] | NDArray[np.float64]

class _DeviceProperties(TypedDict):
    name: str
    compute_capability: tuple[int, int]
    total_memory: int
    multiprocessors: int

class _BuildInfo(TypedDict):
    cuda_runtime: str
    architectures: list[str]
    fused_max_width: int

def device_count() -> int: ...
def device_status() -> str: ...
def device_properties(index: int) -> _DeviceProperties: ...
def build_info() -> _BuildInfo: ...
def forward(
    X: _Float,
    coefs: list[_Float],
    intercepts: list[_Float],
    activation: str,
    output_activation: str,
    device: int = 0,
) -> _Float: ...
def loss_and_gradients(
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
    device: int = 0,
) -> float: ...

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
        activation: str,
        output_activation: str,
        loss: str,
        solver: Literal["sgd", "adam"],
        device: int = 0,
        fused: bool = False,
    ) -> None: ...
    def train_epoch(
        self,
        order: NDArray[np.int64],
        batch_size: int,
        alpha: float,
        learning_rate: float,
        momentum: float,
        nesterov: bool,
        beta_1: float,
        beta_2: float,
        epsilon: float,
        t: int,
    ) -> tuple[float, int]: ...
    def download(
        self,
        coefs: list[_Float],
        intercepts: list[_Float],
        first: list[_Float],
        second: list[_Float],
    ) -> None: ...
    def upload(self, coefs: list[_Float], intercepts: list[_Float]) -> None: ...
    def loss_and_gradients(
        self,
        coefs: list[_Float],
        intercepts: list[_Float],
        coef_grads: list[_Float],
        intercept_grads: list[_Float],
        alpha: float,
    ) -> float: ...
    def predict(self, X: _Float) -> _Float: ...
    @property
    def n_samples(self) -> int: ...
    @property
    def dtype(self) -> np.dtype[np.float32] | np.dtype[np.float64]: ...
    @property
    def fused(self) -> bool: ...
