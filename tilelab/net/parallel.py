"""Run steps and whole networks as Ray tasks: over all cores of one machine or over a cluster.

Every step is checked bit for bit against the golden output of the whole chain
(:attr:`~tilelab.net.lowering.LoweredModel.reference`), so a step does not have to wait for the
hardware outputs of its predecessors: it starts from their golden outputs, and a run's outputs,
records and ``all_bit_exact`` are those of a serial run (a step whose predecessors are bit-exact
sees the same inputs either way).

Each Ray worker is a :class:`Worker` actor that keeps the backends it was handed, keyed by the
hardware they describe, so their simulator processes (:class:`~tilelab.drive.SimServer`) live
across all the steps the worker runs, and a design is built once per node (the build cache in
``~/.cache/tilelab`` is shared by the processes of a node and locked).

Ray is started locally with ``num_cpus=workers`` unless it is running already or an address is
given (``ray.init(address=...)``: the same code on a cluster, whose nodes have tilelab installed).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

from tilelab.net.backends import ExecutionError

__all__ = ["Worker", "WorkerPool", "ray_session"]

#: The object store a locally started Ray gets (bytes): tensors of one network run are small.
LOCAL_OBJECT_STORE = 256 * 1024 * 1024


@contextmanager
def ray_session(workers: int, address: str | None = None):
    """Ray for ``workers`` actors: the running one, one at ``address``, or a local one started here.

    A Ray started here is shut down on exit.

    Raises
    ------
    ExecutionError
        When the cluster has fewer CPUs than ``workers`` (the actors would wait for ever).
    """
    import ray

    started = False
    if not ray.is_initialized():
        if address is not None:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE,
                     logging_level="WARNING", log_to_driver=False)
        started = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if workers > cpus:
            raise ExecutionError(f"workers {workers} exceeds the {cpus} CPUs of the Ray cluster")
        yield ray
    finally:
        if started:
            ray.shutdown()


def _key(backend) -> str:
    return json.dumps([type(backend).__name__, getattr(backend, "sim", None), backend.describe()], sort_keys=True)


class Worker:
    """The body of a Ray actor: runs steps and whole networks on backends it keeps open.

    Backends arrive pickled (no simulator running); the first one of each hardware description
    is kept, so its simulator processes serve every later step of that hardware.
    """

    def __init__(self):
        self._backends = {}

    def _backend(self, backend):
        return self._backends.setdefault(_key(backend), backend)

    def run_step(self, backend, step, *inputs):
        """``(output, stats, wall seconds)`` of one step (as :meth:`Backend.run`)."""
        t0 = time.perf_counter()
        y, stats = self._backend(backend).run(step, list(inputs))
        return y, stats, time.perf_counter() - t0

    def call(self, fn, *args, **kwargs):
        """``fn(self.backend_of, *args, **kwargs)``: a function run on this worker (a sweep point)."""
        return fn(self._backend, *args, **kwargs)

    def close(self):
        for backend in self._backends.values():
            backend.close()
        self._backends = {}


class WorkerPool:
    """``workers`` :class:`Worker` actors, each running one task at a time, longest first.

    Parameters
    ----------
    ray : module
        From :func:`ray_session`.
    workers : int
    """

    def __init__(self, ray, workers: int):
        self.ray = ray
        actor = ray.remote(num_cpus=1)(Worker)
        self.actors = [actor.remote() for _ in range(workers)]

    def map(self, tasks):
        """Run ``tasks`` (``(key, method name, args)``, in the order to start them); yield
        ``(key, result)`` as each finishes. A task's exception is raised here."""
        ray = self.ray
        pending = list(tasks)[::-1]
        running = {}
        idle = list(self.actors)
        while pending or running:
            while pending and idle:
                key, method, args = pending.pop()
                actor = idle.pop()
                running[getattr(actor, method).remote(*args)] = (key, actor)
            ready, _ = ray.wait(list(running), num_returns=1)
            key, actor = running.pop(ready[0])
            idle.append(actor)
            yield key, ray.get(ready[0])

    def close(self):
        """Close every worker's simulators, then end the actors."""
        ray = self.ray
        try:
            ray.get([a.close.remote() for a in self.actors], timeout=60)
        except Exception:  # a worker that died or hangs is ended below anyway
            pass
        for a in self.actors:
            ray.kill(a)
        self.actors = []
