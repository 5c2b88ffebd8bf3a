"""Local SGD with model averaging ('sgd' and 'adam' on the cluster), driven from the client.

Every worker trains on its own rows from the common parameters and moments: it shuffles its
rows once per epoch (its own random stream) and runs ``sync_period`` minibatches of its order
per *round*; after each round the parameters and moments are averaged, each worker weighted by
the rows it trained on in the round (a tree reduction on the workers), and the average starts
the next round. A worker's epoch ends with the round that finishes its rows, so that every
epoch ends with an average over everybody. The client submits an epoch's rounds at once (each
round depends on the previous average) and fetches the average once per epoch; the rules
between epochs (schedules, stopping, early stopping, verbose output, the loss curve) are the
local estimators', run on the client.

This is not scikit-learn's sequential algorithm: with several workers the model differs from
the local fit's (it sees the same epochs of data, in another order, with averaged steps). With
one worker holding all the data it *is* the local algorithm: the worker's stream is the
estimator's own, so the same shuffles, split and minibatches give the local fit's model.
Adam's step count is each worker's own; after an average the model keeps the largest.
"""

import copy
import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning

from fastmlp import _stochastic
from fastmlp._arrays import aligned_copy, all_finite
from fastmlp.dask import _worker

# Frames up to the user's line: fit_local_sgd, _fit, fit, scikit-learn's _fit_context wrapper.
_USER_STACKLEVEL = 5


def _moment_names(optimizer):
    return ("ms", "vs") if optimizer.solver == "adam" else ("velocities",)


def _schedule(n_train, batch_sizes, sync_period):
    """Rounds of one epoch: for each, [(group, first batch, batches, rows)] of active groups."""
    batches = [-(-n // b) for n, b in zip(n_train, batch_sizes, strict=True)]
    rounds = []
    for r in range(max(-(-b // sync_period) for b in batches)):
        first = r * sync_period
        active = []
        for g, (n, size, b) in enumerate(zip(n_train, batch_sizes, batches, strict=True)):
            count = min(sync_period, b - first)
            if count > 0:
                rows = min(n, (first + count) * size) - first * size
                active.append((g, first, count, rows))
        rounds.append(active)
    return rounds


def fit_local_sgd(model, session, data_spec, trainer_spec, sgd_settings, scorer):
    """Train ``model`` (a local estimator, initialised) by local SGD on the session's data.

    ``sgd_settings``: sync_period, batch_size, shuffle; ``scorer``: a weightless copy of the
    model for the workers' early-stopping scores (None without early stopping).
    """
    data, client = session.data, session.client
    params = model.coefs_ + model.intercepts_
    n_layers = len(model.coefs_)
    _stochastic._prepare_optimizer(model, incremental=False)  # a new one, as the local fit
    optimizer = model._optimizer
    names = _moment_names(optimizer)
    early_stopping = model.early_stopping

    sizes = [_worker.split_sizes(data.group_rows(g), model.validation_fraction, early_stopping)
             for g in data.groups]  # fmt: skip
    n_train = [n for n, _ in sizes]
    if early_stopping and sum(v for _, v in sizes) < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' or the size of "
            "your dataset."
        )
    batch_size = sgd_settings["batch_size"]
    if batch_size != "auto" and batch_size > min(n_train):
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
            stacklevel=_USER_STACKLEVEL,
        )
    batch_sizes = [_worker.batch_size_for(batch_size, n) for n in n_train]
    rounds = _schedule(n_train, batch_sizes, sgd_settings["sync_period"])
    total_train = sum(n_train)

    arguments = optimizer.core_arguments()
    for key in ("first", "second"):
        arguments.pop(key)
    # Group 0 shuffles with the estimator's own stream (one group: the local fit's draws);
    # the others with streams seeded from it.
    seeds = copy.deepcopy(model._random_state).randint(np.iinfo(np.int32).max, size=len(sizes))
    specs = [
        _worker.SGDSpec(
            data=data_spec,
            trainer=trainer_spec,
            optimizer=arguments,
            batch_size=batch_size,
            shuffle=sgd_settings["shuffle"],
            stream=copy.deepcopy(model._random_state) if g == 0 else
            np.random.RandomState(seeds[g]),
            early_stopping=early_stopping,
            validation_fraction=model.validation_fraction,
            stratify=is_classifier(model) and model.n_outputs_ == 1,
            scorer=scorer,
        )
        for g in range(len(data.groups))
    ]  # fmt: skip
    owners = {g: group.address for g, group in enumerate(data.groups)}

    # The local estimators record the validation loss where they have the attribute.
    record_loss = hasattr(model, "validation_loss_curve_")
    if early_stopping and record_loss and model.validation_loss_curve_ is None:
        model.validation_loss_curve_ = []
    current = [*params, *(m for name in names for m in getattr(optimizer, name))]
    incoming = current  # the first round's start: sent by the client; later, a future
    first_round = True
    try:
        model.n_iter_ = 0
        for _ in range(model.max_iter):
            summaries = []
            root = None
            for active in rounds:
                total_rows = sum(rows for *_, rows in active)
                futures = []
                for g, first, count, rows in active:
                    step = _worker.Step(
                        new_epoch=first == 0,
                        first_batch=first,
                        n_batches=count,
                        learning_rate=optimizer.core_arguments()["learning_rate"],
                        share=rows / total_rows,
                    )
                    extra = data.group_parts(data.groups[g]) if first_round else []
                    futures.append(session.submit(
                        _worker.sgd_round, session.fit_id, g, owners[g],
                        specs[g] if first_round else None, incoming, step, *extra,
                        workers=[owners[g]], strict=True,
                    ))  # fmt: skip
                first_round = False
                # Only the summaries and the last average are held: each round's results are
                # released as soon as the next round has started from their average.
                root, _ = session.tree_reduce(futures, _worker.add_rounds)
                summaries.append(session.submit(_worker.round_summary, root))
                incoming = root
            session.result(summaries[-1], [*summaries, root], watched=owners)
            assert root is not None  # an epoch has at least one round
            averaged = root.result()
            current = averaged.arrays
            steps = client.gather(summaries)
            session.worker_seconds += sum(s[3] for s in steps)
            session.steps += len(steps)
            # Each group's loss sum over the epoch (its last round's), added in group order.
            epoch_losses = {}
            for losses, *_ in steps:
                epoch_losses.update(losses)
            accumulated = sum(epoch_losses[g] for g in sorted(epoch_losses))
            optimizer.epoch_done(max(s[2] for s in steps))

            model.n_iter_ += 1
            model.loss_ = accumulated / total_train
            model.t_ += total_train
            model.loss_curve_.append(model.loss_)
            if model.verbose:
                print(f"Iteration {model.n_iter_:d}, loss = {model.loss_:.8f}")
            _set_state(model, current, n_layers, names)
            if not (early_stopping or np.isfinite(model.loss_)):
                if not all_finite(model.coefs_ + model.intercepts_):
                    raise ValueError(_stochastic.NON_FINITE_WEIGHTS)
            score = None
            if early_stopping:
                score, loss = _validation(session, owners, root, n_layers, model.alpha)
                if record_loss:
                    model.validation_loss_curve_.append(loss)
            _update_no_improvement_count(model, early_stopping, score)
            optimizer.iteration_ends(model.t_)
            if _stochastic._stalled(model, early_stopping):
                break
            if model.n_iter_ == model.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({model.max_iter:d}) reached and "
                    "the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=_USER_STACKLEVEL,
                )
    except KeyboardInterrupt:
        # The workers' tasks are cancelled; the model keeps the last epoch's average.
        warnings.warn("Training interrupted by user.", stacklevel=_USER_STACKLEVEL)
    _set_state(model, current, n_layers, names)
    if early_stopping:
        model.coefs_ = model._best_coefs
        model.intercepts_ = model._best_intercepts


def _set_state(model, arrays, n_layers, names):
    dtype = model.coefs_[0].dtype
    arrays = [aligned_copy(a, dtype) for a in arrays]
    model.coefs_ = arrays[:n_layers]
    model.intercepts_ = arrays[n_layers : 2 * n_layers]
    moments = arrays[2 * n_layers :]
    for i, name in enumerate(names):
        setattr(model._optimizer, name, moments[2 * n_layers * i : 2 * n_layers * (i + 1)])


def _validation(session, owners, averaged, n_layers, alpha):
    """(score, loss) of the averaged model on the workers' validation rows, combined."""
    futures = [
        session.submit(
            _worker.validation_stats, session.fit_id, g, owner, averaged, n_layers,
            workers=[owner], strict=True,
        )
        for g, owner in owners.items()
    ]  # fmt: skip
    for future in futures:
        session.result(future, futures, watched=owners)
    results = [r for r in session.client.gather(futures) if r is not None]
    score = _worker.combine_scores([stats for stats, _ in results])
    return score, _worker.combine_validation_losses([loss for _, loss in results], alpha)


def _update_no_improvement_count(model, early_stopping, score):
    """The local estimators' bookkeeping and rule, with the validation score that the workers
    computed standing in for the model's own scoring of held-out rows."""
    if early_stopping:
        vars(model)["_score"] = lambda X, y, sample_weight=None: score
        try:
            model._update_no_improvement_count(True, None, None, None)
        finally:
            del vars(model)["_score"]
    else:
        model._update_no_improvement_count(False, None, None, None)
