"""State and between-epoch rules of the stochastic optimizers.

The per-minibatch update runs in the backend's trainer (``fastmlp._backend``); what happens between
epochs stays here, exactly as scikit-learn states it: the ``invscaling`` learning-rate schedule,
the ``adaptive`` schedule's division by 5 when training stalls, and the decision to stop. The
moments are plain NumPy arrays in scikit-learn's parameter order (all coefs, then all
intercepts), so pickling and copying need no extra machinery.
"""

import numpy as np

from fastmlp import _core


class SGDState:
    """Minibatch SGD with momentum (optionally Nesterov's) and a learning-rate schedule."""

    solver = "sgd"

    def __init__(self, params, learning_rate_init, lr_schedule, momentum, nesterov, power_t):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocities = [np.zeros_like(p) for p in params]

    def core_arguments(self):
        """The backend trainer's arguments describing this optimizer: its moments, solver,
        settings, current learning rate and step count."""
        return dict(
            first=self.velocities,
            second=[],
            solver="sgd",
            learning_rate=self.learning_rate,
            momentum=self.momentum,
            nesterov=self.nesterov,
            beta_1=0.0,
            beta_2=0.0,
            epsilon=1.0,
            t=0,
        )

    def epoch_done(self, t):
        """Record what the core returned after an epoch (SGD keeps no step count)."""

    def iteration_ends(self, time_step):
        """Apply the schedule at the end of an epoch; time_step counts samples seen."""
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """Whether to stop once training stalled; 'adaptive' first divides the rate by 5."""
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(f"{msg} Setting learning rate to {self.learning_rate:f}")
        return False


class AdamState:
    """Adam (Kingma and Ba), with scikit-learn's bias correction folded into the rate."""

    solver = "adam"

    def __init__(self, params, learning_rate_init, beta_1, beta_2, epsilon):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def core_arguments(self):
        """The backend trainer's arguments describing this optimizer: its moments, solver,
        settings, current learning rate and step count."""
        return dict(
            first=self.ms,
            second=self.vs,
            solver="adam",
            learning_rate=self.learning_rate_init,
            momentum=0.0,
            nesterov=False,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            t=self.t,
        )

    def epoch_done(self, t):
        """Take the step count back from the core and the rate of its last step."""
        self.t = int(t)
        if self.t > 0:  # the core's own rule, not a copy of it
            self.learning_rate = _core.module.adam_step_rate(
                self.learning_rate_init, self.beta_1, self.beta_2, self.t
            )

    def iteration_ends(self, time_step):
        """Adam has no schedule between epochs."""

    def trigger_stopping(self, msg, verbose):
        """Adam stops as soon as training stalls."""
        if verbose:
            print(msg + " Stopping.")
        return True
