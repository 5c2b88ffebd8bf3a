"""Full-batch L-BFGS on the cluster: a backend whose trainer's ``loss_and_gradient`` is the sum
over the workers' data, so that :func:`fastmlp._lbfgs.fit_lbfgs` (SciPy's L-BFGS-B with the local
estimators' options, iteration count and warnings) drives it unchanged from the client.

Each evaluation sends the flat parameters to every group's worker; each returns its rows'
summed loss and gradient without the L2 term (the core's weighted means times the group's weight
total), a tree reduction adds them up on the workers, and the client adds the L2 term once:

    loss = (sum_g L_g + alpha/2 * ||W||^2) / S,   grad = (sum_g G_g + alpha * [W, 0]) / S

with S the total sample weight: the local loss and gradient on the concatenated data, to a few
units in the last place. The groups and their order are fixed for the fit, so a fit's sums do
not depend on which task ends first, and an evaluation that reruns elsewhere after a worker is
lost (its task depends on the group's partitions, which the scheduler recomputes) gives the
same numbers: the same model.
"""

import numpy as np

from fastmlp.dask import _worker

_SOLVER_SETTINGS = (
    "solver", "batch_size", "learning_rate", "momentum", "nesterov", "beta_1", "beta_2",
    "epsilon", "t",
)  # fmt: skip
# Parameters above this size travel by one scatter to every worker rather than inside tasks.
_SCATTER_BYTES = 1 << 20


class ClusterBackend:
    """Stands in for :class:`fastmlp._backend.Backend` in ``fit_lbfgs``: its trainer computes
    on the cluster held by ``session`` (a FitSession)."""

    def __init__(self, session, data_spec, trainer_spec):
        self.session = session
        self.data_spec = data_spec
        self.trainer_spec = trainer_spec

    def trainer(self, X, Y, sample_weight, coefs, intercepts, first, second, **config):
        # Everything but the solver's settings describes the network (activation, loss, alpha
        # and whatever fit_lbfgs passes besides): the workers' trainers get all of it.
        network = {k: v for k, v in config.items() if k not in _SOLVER_SETTINGS}
        self.trainer_spec.network = network
        n_coef = sum(int(np.prod(c.shape)) for c in coefs)
        return ClusterLBFGS(self.session, self.data_spec, self.trainer_spec, n_coef)


class ClusterLBFGS:
    """``loss_and_gradient(params, grad)`` of the backend interface, over the cluster's data."""

    def __init__(self, session, data_spec, trainer_spec, n_coef):
        self.session = session
        self.data_spec = data_spec
        self.trainer_spec = trainer_spec
        self.alpha = float(trainer_spec.network["alpha"])
        self.n_coef = n_coef
        # Where each group is evaluated: where its parts were, then where it last ran.
        self.where = {g: group.address for g, group in enumerate(session.data.groups)}

    def evaluate(self, params):
        """The summed loss and gradient over every group (an ``_worker.Evaluation``)."""
        session, client = self.session, self.session.client
        params = np.array(params, copy=True)
        if params.nbytes > _SCATTER_BYTES:
            params = client.scatter(params, broadcast=True, hash=False)
        futures = [
            session.submit(
                _worker.lbfgs_evaluate,
                session.fit_id,
                g,
                self.data_spec,
                self.trainer_spec,
                params,
                *session.data.group_parts(group),
                workers=[self.where[g]],
            )
            for g, group in enumerate(session.data.groups)
        ]
        root, submitted = session.tree_reduce(futures, _worker.add_evaluations)
        evaluation = session.result(root, submitted)
        session.worker_seconds += evaluation.seconds
        session.steps += 1
        self._follow(evaluation.where)
        return evaluation

    def _follow(self, where):
        # A group that ran elsewhere (its worker lost, or its task stolen) is evaluated there
        # from now on. (A copy left on a live worker stays until the fit's end: FitSession.close
        # drops every state of the fit.)
        self.where.update(where)

    def loss_and_gradient(self, params, grad):
        evaluation = self.evaluate(params)
        S = evaluation.weight_sum
        if not S > 0:  # as the core: no weight, no loss and no gradient
            grad[...] = 0
            return 0.0
        W = np.asarray(params[: self.n_coef], np.float64)
        scale = 1.0 / S
        loss = evaluation.loss_sum * scale
        total = evaluation.grad_sum
        if self.alpha != 0:
            loss += 0.5 * self.alpha * float(np.dot(W, W)) * scale
            total[: self.n_coef] += self.alpha * W
        grad[...] = total * scale
        return loss
