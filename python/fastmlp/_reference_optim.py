"""The reference's training: the optimizers' update rules, the learning-rate schedules, an epoch.

Part of :mod:`fastmlp.reference`, which re-exports every public name here; a module of its own
only so that each file reads in one sitting. Like the rest of the reference it is plain NumPy,
imports nothing from fastmlp, and nothing in the product imports it: an oracle that shared a
helper with the product could not see that helper's bugs. The rules are scikit-learn's
(``sklearn.neural_network._stochastic_optimizers``), written out.

Notation: ``p`` is one parameter array (a ``W_l`` or a ``b_l``), ``g = dloss/dp`` its gradient
on the current minibatch, ``lr`` the learning rate. Parameters and gradients come as lists in
scikit-learn's order (every ``W_l``, then every ``b_l``); parameters and moments are updated in
place.
"""

import numpy as np

__all__ = ["SCHEDULES", "Adam", "SGD", "adam_step_rate", "epoch", "invscaling_rate"]

#: The learning-rate schedules of SGD.
SCHEDULES = ("constant", "invscaling", "adaptive")


def invscaling_rate(learning_rate_init, power_t, time_step):
    """The invscaling schedule: ``lr = lr_0 / (time_step + 1)**power_t``.

    Parameters
    ----------
    learning_rate_init : float
        ``lr_0``.
    power_t : float
    time_step : int
        The samples seen so far.

    Returns
    -------
    learning_rate : float
    """
    return float(learning_rate_init) / (time_step + 1) ** power_t


def adam_step_rate(learning_rate_init, beta_1, beta_2, t):
    """Adam's rate at step ``t`` (counted from 1), with both bias corrections folded in.

    ``lr_t = lr_0 * sqrt(1 - beta_2**t) / (1 - beta_1**t)``: the step ``lr_t m / (sqrt(s) +
    eps)`` is then Kingma and Ba's ``lr_0 m_hat / (sqrt(s_hat) + eps_hat)``, with ``m_hat = m /
    (1 - beta_1**t)``, ``s_hat = s / (1 - beta_2**t)`` (and ``eps`` scaled alike).

    Parameters
    ----------
    learning_rate_init : float
        ``lr_0``.
    beta_1, beta_2 : float
        The moments' decay rates.
    t : int
        The step, counted from 1.

    Returns
    -------
    learning_rate : float
    """
    return learning_rate_init * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)


class SGD:
    """Minibatch gradient descent with momentum, optionally Nesterov's.

    Parameters
    ----------
    params : list of ndarray
        The parameters, for the shapes and dtypes of the velocities (which start at 0).
    learning_rate_init : float, default=0.1
    lr_schedule : {"constant", "invscaling", "adaptive"}, default="constant"
        How the rate changes between epochs; see :meth:`iteration_ends` and
        :meth:`trigger_stopping`.
    momentum : float, default=0.9
    nesterov : bool, default=True
    power_t : float, default=0.5
        The exponent of "invscaling".

    Attributes
    ----------
    learning_rate : float
        The current rate.
    velocities : list of ndarray
        One per parameter: ``v``.
    """

    def __init__(
        self,
        params,
        learning_rate_init=0.1,
        lr_schedule="constant",
        momentum=0.9,
        nesterov=True,
        power_t=0.5,
    ):
        if lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {lr_schedule!r}")
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocities = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        """Update every parameter from its minibatch gradient, in place."""
        mu, lr = self.momentum, self.learning_rate
        for p, g, v in zip(params, grads, self.velocities, strict=True):
            v[...] = mu * v - lr * g  # v <- mu v - lr g
            if self.nesterov:
                p += mu * v - lr * g  # p <- p + mu v - lr g: a step from the look-ahead point
            else:
                p += v  # p <- p + v

    def iteration_ends(self, time_step):
        """The schedule at the end of an epoch; ``time_step`` counts the samples seen so far.

        "invscaling" sets ``lr = lr_0 / (time_step + 1)**power_t``; the others keep the rate.
        """
        if self.lr_schedule == "invscaling":
            self.learning_rate = invscaling_rate(self.learning_rate_init, self.power_t, time_step)

    def trigger_stopping(self):
        """Training stalled: return whether to stop.

        "adaptive" divides the rate by 5 and goes on, unless the rate is already <= 1e-6;
        the other schedules stop at once.
        """
        if self.lr_schedule != "adaptive" or self.learning_rate <= 1e-6:
            return True
        self.learning_rate /= 5.0
        return False


class Adam:
    """Adam (Kingma and Ba, 2014), as scikit-learn states it.

    Parameters
    ----------
    params : list of ndarray
        The parameters, for the shapes and dtypes of the moments (which start at 0).
    learning_rate_init : float, default=0.001
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of the first and second moments.
    epsilon : float, default=1e-8

    Attributes
    ----------
    t : int
        Steps taken so far (set it to resume a count).
    learning_rate : float
        The rate of the last step, :func:`adam_step_rate` of ``t``.
    ms, vs : list of ndarray
        The first and second moments ``m`` and ``s``, one per parameter.
    """

    def __init__(self, params, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        """Update every parameter from its minibatch gradient, in place."""
        b1, b2, eps = self.beta_1, self.beta_2, self.epsilon
        self.t += 1
        self.learning_rate = adam_step_rate(self.learning_rate_init, b1, b2, self.t)
        for p, g, m, s in zip(params, grads, self.ms, self.vs, strict=True):
            m[...] = b1 * m + (1 - b1) * g  # m <- beta_1 m + (1 - beta_1) g
            s[...] = b2 * s + (1 - b2) * g**2  # s <- beta_2 s + (1 - beta_2) g^2
            p -= self.learning_rate * m / (np.sqrt(s) + eps)  # p <- p - lr_t m / (sqrt(s) + eps)

    def iteration_ends(self, time_step):
        """Adam has no schedule between epochs."""

    def trigger_stopping(self):
        """Training stalled: Adam stops at once."""
        return True


def epoch(net, X, Y, sample_weight, order, batch_size, optimizer):
    """Run one epoch of minibatches over ``order``, updating ``net``'s parameters in place.

    Parameters
    ----------
    net : fastmlp.reference.MLP
        Its ``coefs`` and ``intercepts`` are the arrays that the optimizer updates.
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
    sample_weight : ndarray of shape (n_samples,) or None
    order : ndarray of int, shape (n_steps,)
        The rows, in the order the epoch visits them (shuffled or not).
    batch_size : int
        Rows per minibatch; the last one may be shorter.
    optimizer : SGD or Adam

    Returns
    -------
    accumulated_loss : float
        The sum over batches of the batch's loss times its number of rows, as scikit-learn
        accumulates it (its ``loss_`` is this divided by n_samples).
    """
    params = net.coefs + net.intercepts  # the network's own arrays
    accumulated_loss = 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]  # the minibatch B
        w = None if sample_weight is None else sample_weight[rows]
        if w is not None and not w.sum() > 0:
            # The batch's mean loss and gradient would be 0/0: it contributes no loss and a
            # zero gradient, and the optimizer still takes its step (momentum carries on, Adam
            # counts the step).
            loss, grads = 0.0, [np.zeros_like(p) for p in params]
        else:
            # The gradient of the batch's weighted mean loss, by backpropagation:
            #   dL/dW_l = (z_{l-1}.T @ delta_l + alpha W_l) / S_B,  dL/db_l = sum_i delta_l / S_B
            # where S_B is the sum of the batch's weights (its length when unweighted).
            loss, coef_grads, intercept_grads = net.backward(X[rows], Y[rows], w)
            grads = coef_grads + intercept_grads
        accumulated_loss += loss * len(rows)
        optimizer.step(params, grads)
    return accumulated_loss
