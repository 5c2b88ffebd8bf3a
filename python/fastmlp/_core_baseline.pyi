# Type stubs of the compiled CPU core (the same for every instruction-set variant): the backend
# interface of fastmlp._backend.
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import NDArray

_Float = NDArray[np.float32] | NDArray[np.float64]

def capabilities() -> dict[str, Any]: ...
def device_count() -> int: ...
def all_finite(a: _Float) -> bool: ...
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
    bf16: bool = False,
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
    bf16: bool = False,
) -> list[_Float]: ...
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
    internals: bool = False,
    leaky_relu_slope: float = 0.01,
    bf16: bool = False,
) -> Any: ...

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
        bf16: bool = False,
        batch_split: Literal["auto", "always", "never"] = "auto",
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
    def n_samples(self) -> int: ...
    @property
    def t(self) -> int: ...

def build_info() -> dict[str, object]: ...
def adam_step_rate(learning_rate: float, beta_1: float, beta_2: float, t: int) -> float: ...
