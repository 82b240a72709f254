"""Where a batch's workers run: processes of this machine (``local``) or actors of a Ray cluster
(``ray``). Both run the same :class:`~splatnet.batch.work.Worker` (model loaded once per worker)
under the same :func:`schedule`: each worker holds its clip and the next one (so it decodes the
next while the network runs), a worker that dies (killed, out of memory) loses only the clip it
was on, which is given again up to ``retries`` times to a fresh worker (a new process; for Ray,
the actor restarted by Ray), and a worker left without work takes another's next clip.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from splatnet.batch.job import BatchSpec, ClipTask
from splatnet.batch.work import Worker
from splatnet.errors import SplatnetError, one_line

ENGINES = ("local", "ray")
#: Ray reads it at import: "0" makes a local cluster single-node, on 127.0.0.1.
_RAY_SINGLE_NODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class WorkerStartError(SplatnetError, RuntimeError):
    """A worker could not start (its model or environment failed to load): no clip can run."""


@dataclass
class Event:
    """What :meth:`Pool.wait` saw: a worker finished its clip (``line``) or died (``reason``)."""

    worker: int
    line: dict[str, Any] | None = None
    reason: str | None = None


class Pool:
    """The workers of one engine (interface; see :class:`LocalPool`, :class:`RayPool`)."""

    size: int

    def start(self) -> list[dict[str, Any]]:
        """Start every worker; each one's :meth:`Worker.info`."""
        raise NotImplementedError

    def submit(self, worker: int, task: ClipTask, upcoming: ClipTask | None) -> None:
        raise NotImplementedError

    def wait(self, timeout: float) -> list[Event]:
        raise NotImplementedError

    def restart(self, worker: int) -> dict[str, Any]:
        """A fresh worker in place of a dead one; its info."""
        raise NotImplementedError

    def close(self, abort: bool = False) -> None:
        """Stop the workers: after their current clip, or at once with ``abort`` (an
        interrupted clip leaves no output: writes are atomic)."""
        raise NotImplementedError


def schedule(pool: Pool, tasks: list[ClipTask], *, retries: int,
             on_result: Callable[[ClipTask, dict[str, Any]], None],
             on_dispatch: Callable[[ClipTask, dict[str, Any]], None] | None = None,
             infos: list[dict[str, Any]] | None = None) -> None:
    """Run ``tasks`` on ``pool``'s started workers; ``on_result(task, line)`` for each clip as it
    finishes (``line["attempts"]`` counts the workers it took), ``on_dispatch(task, info)`` as a
    clip is handed to the worker ``info`` describes."""
    pending = collections.deque(tasks)
    current: dict[int, ClipTask] = {}
    upcoming: dict[int, ClipTask] = {}
    attempts: collections.Counter[int] = collections.Counter()
    info = dict(enumerate(infos or [{} for _ in range(pool.size)]))

    def assign(w: int) -> None:
        task = upcoming.pop(w, None)
        if task is None and pending:
            task = pending.popleft()
        if task is None:  # nothing left to start: take another worker's next clip
            other = next(iter(upcoming), None)
            task = None if other is None else upcoming.pop(other)
        if task is None:
            return
        if pending:
            upcoming[w] = pending.popleft()
        current[w] = task
        pool.submit(w, task, upcoming.get(w))
        if on_dispatch is not None:
            on_dispatch(task, info[w])

    for w in range(pool.size):
        assign(w)
    while current:
        for ev in pool.wait(timeout=1.0):
            task = current.pop(ev.worker, None)
            if ev.line is not None and task is not None:
                ev.line["attempts"] = attempts[task.index] + 1
                on_result(task, ev.line)
            elif ev.reason is not None:
                if ev.worker in upcoming:  # never started there: back to the front of the queue
                    pending.appendleft(upcoming.pop(ev.worker))
                if task is not None:
                    attempts[task.index] += 1
                    if attempts[task.index] <= retries:
                        pending.appendleft(task)
                    else:
                        on_result(task, {"clip": task.clip, "output": task.output,
                                         "status": "failed", "attempts": attempts[task.index],
                                         "error": f"{ev.reason}, on each of "
                                                  f"{attempts[task.index]} attempts"})
                info[ev.worker] = pool.restart(ev.worker)
            assign(ev.worker)


# -------------------------------------------------------------------------- local processes
def _local_worker_main(spec: BatchSpec, device: str | None, conn) -> None:
    """A local worker process: build the worker, then run what the pipe brings until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    try:
        worker = Worker(spec, device)
    except BaseException as exc:  # noqa: BLE001 - reported to the driver as one line
        conn.send(("init_failed", one_line(exc)))
        return
    conn.send(("ready", worker.info()))
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:  # the driver is gone
                break
            if msg is None:
                break
            task, upcoming = msg
            conn.send(("done", worker.run(task, upcoming)))
    finally:
        worker.close()


class LocalPool(Pool):
    """Worker processes on this machine, forked from a ``forkserver`` that has imported torch and
    splatnet once (a single-threaded process that has run nothing: no thread or CUDA state is
    forked), so a worker starts in well under a second after the first, and a dead one is
    replaced as fast. With ``device="cuda"`` and several GPUs, worker ``i`` uses GPU
    ``i mod count``."""

    #: Seconds a worker may take to import torch and load its model.
    START_TIMEOUT_S = 600.0

    def __init__(self, spec: BatchSpec, workers: int) -> None:
        import multiprocessing as mp

        self.spec, self.size = spec, workers
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(["torch", "splatnet.batch.work"])
        self._procs: dict[int, Any] = {}
        self._conns: dict[int, Any] = {}

    def _device(self, w: int) -> str | None:
        if self.spec.device != "cuda":
            return None
        import torch

        return f"cuda:{w % max(1, torch.cuda.device_count())}"

    def _spawn(self, w: int) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_local_worker_main, args=(self.spec, self._device(w), child),
                                 name=f"splatnet-batch-{w}", daemon=True)
        proc.start()
        child.close()
        self._procs[w], self._conns[w] = proc, parent

    def _ready(self, w: int) -> dict[str, Any]:
        conn, proc = self._conns[w], self._procs[w]
        deadline = time.monotonic() + self.START_TIMEOUT_S
        while not conn.poll(0.2):
            if not proc.is_alive() and not conn.poll(0):
                raise WorkerStartError(f"worker process {proc.pid} exited while starting "
                                       f"({self._death(w)})")
            if time.monotonic() > deadline:
                raise WorkerStartError(f"worker process {proc.pid} did not start in "
                                       f"{self.START_TIMEOUT_S:.0f} s")
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            raise WorkerStartError(f"worker process {proc.pid} exited while starting "
                                   f"({self._death(w)})") from None
        if kind != "ready":
            raise WorkerStartError(f"a worker could not start: {payload}")
        return payload

    def start(self) -> list[dict[str, Any]]:
        for w in range(self.size):
            self._spawn(w)
        return [self._ready(w) for w in range(self.size)]

    def submit(self, worker: int, task: ClipTask, upcoming: ClipTask | None) -> None:
        try:
            self._conns[worker].send((task, upcoming))
        except (BrokenPipeError, OSError):
            pass  # it died: wait() reports it

    def wait(self, timeout: float) -> list[Event]:
        from multiprocessing.connection import wait

        by_handle: dict[Any, tuple[str, int]] = {}
        for w, conn in self._conns.items():
            by_handle[conn] = ("conn", w)
            by_handle[self._procs[w].sentinel] = ("exit", w)
        events, dead = [], set()
        for handle in wait(list(by_handle), timeout):
            kind, w = by_handle[handle]
            if w in dead:
                continue
            if kind == "conn":
                try:
                    msg = handle.recv()
                except (EOFError, OSError):
                    dead.add(w)
                    continue
                if msg[0] == "done":
                    events.append(Event(w, line=msg[1]))
            elif not self._conns[w].poll(0):  # exited with nothing left to read
                dead.add(w)
        events += [Event(w, reason=self._death(w)) for w in sorted(dead)]
        return events

    def _death(self, w: int) -> str:
        proc = self._procs[w]
        proc.join(timeout=5)
        code = proc.exitcode
        if code is None:
            return f"worker process {proc.pid} stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            why = " (out of memory, or killed)" if name == "SIGKILL" else ""
            return f"worker process {proc.pid} was killed by {name}{why}"
        return f"worker process {proc.pid} exited with code {code}"

    def restart(self, worker: int) -> dict[str, Any]:
        self._conns.pop(worker).close()
        proc = self._procs.pop(worker)
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=5)
        self._spawn(worker)
        return self._ready(worker)

    def close(self, abort: bool = False) -> None:
        for w, conn in self._conns.items():
            try:
                if abort:
                    self._procs[w].terminate()
                else:
                    conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + 30
        for proc in self._procs.values():
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self._conns.values():
            conn.close()
        self._procs.clear()
        self._conns.clear()


# -------------------------------------------------------------------------------- Ray actors
class RayPool(Pool):
    """Worker actors on a Ray cluster: ``address`` joins one (``auto`` or ``HOST:PORT``); None
    starts a local one for the run (and stops it after), unless this process has already
    called ``ray.init``. Each actor reserves ``spec.threads`` CPUs and ``gpus_per_task`` GPUs
    (fractions share a GPU); Ray restarts an actor whose process dies, without limit, and the
    scheduler gives its clip again."""

    def __init__(self, spec: BatchSpec, workers: int, *, address: str | None = None,
                 gpus_per_task: float = 0.0) -> None:
        import sys

        from splatnet._optional import require

        if address is None and "ray" not in sys.modules:
            # A cluster started for this run has one node, this machine: keep Ray's traffic on
            # the loopback interface (Ray's single-node mode) rather than this machine's network
            # address, so nothing of it is reachable from outside.
            os.environ.setdefault(_RAY_SINGLE_NODE, "0")
        if address is None:
            # Ray runs its workers at nice 15 by default; the workers of a run started here are
            # its work, at the priority the local engine's workers have (read when Ray starts).
            os.environ.setdefault("RAY_worker_niceness", "0")
        self.ray = require("ray", "splatnet batch --engine ray", extra="cluster")
        self.spec, self.size = spec, workers
        self.address, self.gpus = address, gpus_per_task
        self._started = False
        self._actors: list[Any] = []
        self._refs: dict[Any, int] = {}

    def start(self) -> list[dict[str, Any]]:
        ray = self.ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if self.address is None:  # a local cluster for this run: this machine's CPUs
                kwargs.update(num_cpus=os.cpu_count() or 1, object_store_memory=256 << 20)
            # A new local cluster turns Ray's token authentication on and logs a notice saying so:
            # a line on every run that asks nothing of the user (docs/cluster.md covers it).
            notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
            level = notice.level
            notice.setLevel(logging.ERROR)
            try:
                ray.init(address=self.address, **kwargs)
            except ConnectionError as exc:
                raise WorkerStartError(f"--address {self.address}: cannot join a Ray cluster "
                                       f"({one_line(exc)})") from None
            finally:
                notice.setLevel(level)
            self._started = True
        actor = ray.remote(Worker).options(num_cpus=self.spec.threads, num_gpus=self.gpus,
                                          max_restarts=-1, max_task_retries=0)
        self._actors = [actor.remote(self.spec) for _ in range(self.size)]
        return [self._info(w) for w in range(self.size)]

    def _info(self, w: int) -> dict[str, Any]:
        """The actor's :meth:`Worker.info`, once it is up (after a restart: once Ray has it
        back; the calls in between are refused as "temporarily unavailable")."""
        errors = self.ray.exceptions
        deadline = time.monotonic() + LocalPool.START_TIMEOUT_S
        while True:
            try:
                return self.ray.get(self._actors[w].info.remote())
            except errors.ActorUnavailableError as exc:
                if time.monotonic() > deadline:
                    raise WorkerStartError(f"a Ray worker did not come back: {_ray_reason(exc)}"
                                           ) from None
                time.sleep(0.5)
            except errors.RayError as exc:
                raise WorkerStartError(f"a Ray worker could not start: {_ray_reason(exc)}"
                                       ) from None

    def submit(self, worker: int, task: ClipTask, upcoming: ClipTask | None) -> None:
        self._refs[self._actors[worker].run.remote(task, upcoming)] = worker

    def wait(self, timeout: float) -> list[Event]:
        ray = self.ray
        if not self._refs:
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:  # and whatever else is done by now
            ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        events = []
        for ref in ready:
            w = self._refs.pop(ref)
            try:
                events.append(Event(w, line=ray.get(ref)))
            except ray.exceptions.RayError as exc:  # the actor died under its clip
                events.append(Event(w, reason=f"worker died ({_ray_reason(exc)})"))
        return events

    def restart(self, worker: int) -> dict[str, Any]:
        return self._info(worker)  # Ray restarts the actor; this waits until it is back

    def close(self, abort: bool = False) -> None:
        for a in self._actors:
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors, self._refs = [], {}
        if self._started:
            self.ray.shutdown()
            self._started = False


def _ray_reason(exc: BaseException) -> str:
    """The gist of a Ray error (its messages run to many lines)."""
    text = " ".join(str(exc).split())
    for key in ("OutOfMemoryError", "out of memory", "OOM"):
        if key in text:
            return "out of memory: " + text[:300]
    return text[:300]
