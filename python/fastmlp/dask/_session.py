"""One fit on the cluster, from the client: its id, its data, waiting for its tasks (Ctrl-C
cancels them; a lost worker that held local-SGD state fails the fit), tree reductions, and the
clean-up of the workers' state."""

import time
import uuid

from distributed import wait

from fastmlp.dask import _worker

# While waiting, look this often whether a worker that the tasks need has left the cluster.
POLL_SECONDS = 0.5


class FitSession:
    """The client's handle on one fit: ``client``, ``data`` (a ClusterData), the fit's id
    (the key of the workers' state) and timings (for the benchmark)."""

    def __init__(self, client, data):
        self.client = client
        self.data = data
        self.fit_id = f"fastmlp-{uuid.uuid4().hex}"
        self.wait_seconds = 0.0  # client time spent waiting for the cluster
        self.worker_seconds = 0.0  # summed per step: the slowest group's compute time
        self.steps = 0

    def submit(self, func, *args, workers=None, strict=False):
        if workers is None:
            return self.client.submit(func, *args, pure=False)
        return self.client.submit(
            func, *args, pure=False, workers=workers, allow_other_workers=not strict
        )

    def tree_reduce(self, futures, add):
        """Pairwise sums of ``futures`` in a fixed order (so that the result does not depend on
        which task finishes first), computed on the workers: (root, every future involved)."""
        level = list(futures)
        submitted = list(futures)
        while len(level) > 1:
            pairs = [self.submit(add, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            submitted += pairs
            level = pairs + ([level[-1]] if len(level) % 2 else [])
        return level[0], submitted

    def result(self, future, pending, watched=None):
        """The value of ``future``; ``pending`` are every future submitted for it (cancelled on
        Ctrl-C or failure). ``watched`` maps group -> the worker whose loss fails the fit."""
        began = time.perf_counter()
        try:
            while True:
                try:
                    wait([future], timeout=POLL_SECONDS)
                    break
                except TimeoutError:
                    if watched:
                        self._check_workers(watched)
            return future.result()
        except BaseException:
            # Ctrl-C, a lost worker or a task's error: nothing of this fit keeps running.
            self.client.cancel(list(pending))
            raise
        finally:
            self.wait_seconds += time.perf_counter() - began

    def _check_workers(self, watched):
        alive = set(self.client.scheduler_info(n_workers=-1)["workers"])
        for group, address in sorted(watched.items()):
            if address not in alive:
                parts = self.data.groups[group].parts
                raise _worker.LostWorkerError(
                    f"fastmlp.dask: the worker {address} that held partitions {parts} (group "
                    f"{group}) left the cluster in the middle of a local-SGD fit; its updates "
                    "since the last average are gone, so the fit stops rather than return a "
                    "different model. Fit again (solver='lbfgs' survives lost workers)."
                )

    def close(self):
        """Drop the fit's state on every worker (best effort: a worker gone has none)."""
        try:
            self.client.run(_worker.forget, self.fit_id, on_error="ignore")
        except Exception:  # noqa: BLE001 - clean-up must not hide the fit's own outcome
            pass
