# Type stubs of the compiled core (the same for every instruction-set variant).
from typing import Literal

import numpy as np
from numpy.typing import NDArray

_Float = NDArray[np.float32] | NDArray[np.float64]

def forward(
    X: _Float,
    coefs: list[_Float],
    intercepts: list[_Float],
    activation: str,
    output_activation: str,
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
) -> float: ...
def train_epoch(
    X: _Float,
    Y: _Float,
    sample_weight: _Float | None,
    order: NDArray[np.int64],
    batch_size: int,
    coefs: list[_Float],
    intercepts: list[_Float],
    first: list[_Float],
    second: list[_Float],
    activation: str,
    output_activation: str,
    loss: str,
    alpha: float,
    solver: Literal["sgd", "adam"],
    learning_rate: float,
    momentum: float,
    nesterov: bool,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    t: int,
    batch_split: Literal["auto", "always", "never"] = "auto",
) -> tuple[float, int]: ...
def build_info() -> dict[str, object]: ...
