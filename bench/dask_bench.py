"""fastmlp.dask against one local fit: the speed-up of data-parallel training, and the share of
its time spent communicating.

Usage: python bench/dask_bench.py [--rows 1000000] [--features 100] [--workers 2]
                                  [--lbfgs-iter 20] [--adam-epochs 2] [--repeats 1]
                                  [--solvers lbfgs adam] [--sync-period N] [--json PATH]

The data (rows x features, float32, two classes from a noisy linear rule) is generated on a
``LocalCluster`` of ``--workers`` single-threaded worker processes and persisted there in 8 blocks
per worker; the local fit gets the same data in memory and runs with one core thread. Both fit
``hidden_layer_sizes=(100,)`` with L-BFGS (``--lbfgs-iter`` iterations) and with Adam
(``--adam-epochs`` epochs, default batch size, ``sync_period`` default). For each fit it prints
the wall time of ``fit``, the speed-up, and for the cluster: the time to validate, persist and
group the partitions, then of the training, and in the training the workers' compute time on
the critical path (the slowest worker of each step, summed) and the rest, the share spent
communicating and scheduling (sending parameters, reductions, waiting for tasks), which also
holds the client's own work (SciPy's L-BFGS update, the stopping rule). With ``--repeats``,
the local and cluster fits alternate and the fastest of each counts (the machine may be shared).
"""

import argparse
import json
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import fastmlp


def _data(client, rows, features, workers):
    import dask.array as da

    chunks = -(-rows // (8 * workers))
    rs = da.random.RandomState(0)
    X = rs.standard_normal((rows, features), chunks=(chunks, features)).astype(np.float32)
    direction = np.random.RandomState(1).standard_normal(features).astype(np.float32)
    noise = rs.standard_normal(rows, chunks=chunks).astype(np.float32)
    y = ((X @ direction) / np.sqrt(features) + 0.5 * noise > 0).astype(np.int64)
    X, y = client.persist([X, y])
    return X, y


def _fit_time(estimator, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        began = time.perf_counter()
        estimator.fit(*args)
        return time.perf_counter() - began


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lbfgs-iter", type=int, default=20)
    parser.add_argument("--adam-epochs", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=1, help="fits of each kind, alternated; the fastest counts"
    )
    parser.add_argument("--solvers", nargs="+", default=["lbfgs", "adam"])
    parser.add_argument(
        "--sync-period", type=int, default=None, help="adam's sync_period (the default if None)"
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    import distributed

    from fastmlp.dask import DaskMLPClassifier

    results = dict(vars(args), fits={})
    with (
        distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        began = time.perf_counter()
        X, y = _data(client, args.rows, args.features, args.workers)
        distributed.wait([X, y])
        X_local, y_local = client.compute([X, y], sync=True)
        print(
            f"data: {args.rows} x {args.features} float32, {X.numblocks[0]} blocks on "
            f"{args.workers} workers, made in {time.perf_counter() - began:.1f} s"
        )
        fits = {
            "lbfgs": dict(solver="lbfgs", max_iter=args.lbfgs_iter),
            "adam": dict(solver="adam", max_iter=args.adam_epochs),
        }
        cluster_only = {} if args.sync_period is None else {"sync_period": args.sync_period}
        for name in args.solvers:
            params = fits[name]
            params = dict(hidden_layer_sizes=(100,), random_state=0, **params)
            local_seconds = cluster_seconds = np.inf
            for _ in range(args.repeats):  # alternated, so that both see the same machine
                local = fastmlp.MLPClassifier(**params)
                with threadpool_limits(1, user_api="openmp"):
                    local_seconds = min(local_seconds, _fit_time(local, X_local, y_local))
                est = DaskMLPClassifier(client=client, **params, **cluster_only)
                seconds = _fit_time(est, X, y)
                if seconds < cluster_seconds:
                    cluster_seconds, cluster_est = seconds, est
            timings = cluster_est._timings
            compute, training = timings["worker_seconds"], timings["train_seconds"]
            row = dict(
                local_seconds=round(local_seconds, 2),
                cluster_seconds=round(cluster_seconds, 2),
                speedup=round(local_seconds / cluster_seconds, 2),
                prepare_seconds=round(timings["prepare_seconds"], 2),
                train_seconds=round(training, 2),
                worker_compute_seconds=round(compute, 2),
                communication_share=round(1 - compute / training, 3),
                steps=timings["steps"],
                groups=timings["partition_groups"],
                local_accuracy=round(float(local.score(X_local, y_local)), 4),
                cluster_accuracy=round(cluster_est.score(X, y), 4),
                n_iter=(local.n_iter_, cluster_est.n_iter_),
            )
            results["fits"][name] = row
            print(
                f"{name:5s}: local {local_seconds:6.2f} s, cluster {cluster_seconds:6.2f} s "
                f"(partitions {row['prepare_seconds']:.2f} s, training {training:.2f} s), "
                f"speed-up {row['speedup']:.2f}x; workers' compute {compute:.2f} s, "
                f"communication and scheduling {100 * row['communication_share']:.1f}% of the "
                f"training over {timings['steps']} steps; accuracy local "
                f"{row['local_accuracy']}, cluster {row['cluster_accuracy']}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
