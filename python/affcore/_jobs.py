"""Building blocks for crash-safe batch jobs: atomic file writes, an append-only fsync'd
journal, and a bounded, unordered parallel map over a stream of tasks on worker processes
(or Ray actors).

Nothing here knows about faces; :mod:`affcore.augment` puts it together.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import AffcoreError

TMP_MARK = ".affcore-tmp-"


# -- atomic writes -------------------------------------------------------------------------
def temp_path(path: Path) -> Path:
    """A unique hidden temporary name beside ``path`` (unique per process and call, so that
    two writers of the same file never share a temporary file), ending in ``path``'s suffix
    (for writers that choose the format by it: PIL, OpenCV's video writer)."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, *, fsync: bool) -> Iterator[Path]:
    """``with atomic_path(path, fsync=False) as tmp:`` write the file ``tmp`` (for writers
    that take a file name); it replaces ``path`` only when the block finishes without an
    exception, and is removed otherwise, so ``path`` is never half-written and an
    interrupted write leaves nothing behind. With ``fsync``, the file and then its folder
    are flushed to disk too (for the outputs of batch jobs, which must survive a crash;
    every caller says which it wants). ``path``'s folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path, mode: str = "w", *, fsync: bool, **kwargs):
    """``with atomic_file(path, "w", fsync=False) as f:`` write through the file object
    ``f``, as :func:`atomic_path` (``kwargs`` go to :func:`open`)."""
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def atomic_write_bytes(path, data: bytes, *, fsync: bool) -> Path:
    """Write ``data`` to ``path`` as :func:`atomic_path` does."""
    with atomic_file(path, "wb", fsync=fsync) as f:
        f.write(data)
    return Path(path)


def remove_temp_files(root) -> int:
    """Delete temporary files left by interrupted atomic writes under ``root``."""
    n = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            if TMP_MARK in name:
                try:
                    os.unlink(os.path.join(dirpath, name))
                    n += 1
                except OSError:
                    pass
    return n


# -- journal -------------------------------------------------------------------------------
class Journal:
    """Append-only JSON-lines file of finished work. Each :meth:`append` writes one whole
    line with a single ``write`` and fsyncs it, so after a crash the file holds every
    acknowledged record plus at most one torn last line, which :meth:`open` cuts off."""

    def __init__(self, path):
        self.path = Path(path)
        self.fd = None

    @staticmethod
    def scan(path) -> Iterator[tuple[int, dict]]:
        """(byte offset, record) of every complete, valid line. Stops at the first torn or
        corrupt line (only the last line can be torn)."""
        p = Path(path)
        if not p.exists():
            return
        with open(p, "rb") as f:
            offset = 0
            for line in f:
                if not line.endswith(b"\n"):
                    return
                try:
                    rec = json.loads(line)
                except ValueError:
                    return
                yield offset, rec
                offset += len(line)

    @staticmethod
    def valid_length(path) -> int:
        end = 0
        p = Path(path)
        if not p.exists():
            return 0
        with open(p, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    json.loads(line)
                except ValueError:
                    break
                end += len(line)
        return end

    def open(self) -> "Journal":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        end = self.valid_length(self.path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if os.fstat(self.fd).st_size != end:
            os.ftruncate(self.fd, end)  # drop a torn last line
            os.fsync(self.fd)
        fsync_dir(self.path.parent)
        return self

    def append(self, record: dict) -> None:
        data = (json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True) + "\n").encode()
        n = os.write(self.fd, data)
        while n < len(data):  # regular files write everything; be safe anyway
            n += os.write(self.fd, data[n:])
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.open() if self.fd is None else self

    def __exit__(self, *exc):
        self.close()
        return False


# -- engines -------------------------------------------------------------------------------
class WorkerCrashed(AffcoreError, RuntimeError):
    """The worker running a task died (a crash in native code, out of memory)."""


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when its parent dies (so a ``kill -9`` of
    the job leaves no orphan still writing into the output folder)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent already died before prctl
            os._exit(1)
    except (OSError, AttributeError):
        pass


def _process_initializer(init: Callable, initargs: tuple) -> None:
    _die_with_parent()
    init(*initargs)


class InlineEngine:
    """Runs tasks in this process, one at a time (``workers=0``)."""

    workers = 1

    def __init__(self, fn: Callable, init: Callable, initargs: tuple):
        self.fn = fn
        init(*initargs)

    def submit(self, task):
        f = cf.Future()
        try:
            f.set_result(self.fn(task))
        except Exception as e:  # noqa: BLE001
            f.set_exception(e)
        return f

    def wait(self, handles):
        return list(handles)

    def result(self, handle):
        return handle.result()

    def close(self, cancel: bool = False):
        pass


class ProcessEngine:
    """A pool of ``workers`` processes (``spawn`` or ``forkserver``), each initialised once
    (e.g. loading the face model). A crashed worker breaks the pool; :func:`bounded_map`
    then rebuilds it and retries the tasks that were in flight one at a time."""

    def __init__(self, fn: Callable, init: Callable, initargs: tuple, workers: int, start_method: str = "spawn",
                 env: dict | None = None):
        import multiprocessing

        self.fn, self.init, self.initargs, self.env = fn, init, initargs, dict(env or {})
        self.workers = max(1, int(workers))
        self.ctx = multiprocessing.get_context(start_method)
        self.pool = None
        self._start()

    def _start(self):
        """Start the pool; ``env`` variables not already set are set while the workers
        spawn (they inherit them), then restored."""
        old = {k: os.environ.get(k) for k in self.env}
        for k, v in self.env.items():
            os.environ.setdefault(k, v)
        try:
            self.pool = cf.ProcessPoolExecutor(self.workers, mp_context=self.ctx, initializer=_process_initializer,
                                               initargs=(self.init, self.initargs))
            try:
                self.pool.submit(int, 0).result()  # spawns every worker now, with the variables set
            except cf.process.BrokenProcessPool as e:
                raise WorkerCrashed(f"worker processes failed to start: {e}") from None
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def restart(self):
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._start()

    def submit(self, task):
        return self.pool.submit(self.fn, task)

    def wait(self, handles):
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, handle):
        try:
            return handle.result()
        except cf.process.BrokenProcessPool as e:
            raise WorkerCrashed(str(e) or "a worker process died") from None

    def close(self, cancel: bool = False):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=cancel)
            self.pool = None


class RayEngine:
    """``workers`` Ray actors, each initialised once; tasks go to the actor with the fewest
    in flight. Outputs are written by the actors, so the output folder must be on a file
    system every node sees."""

    def __init__(self, fn: Callable, init: Callable, initargs: tuple, workers: int | None = None,
                 address: str | None = None):
        import ray

        self.ray = ray
        self._owns = False
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            self._owns = True
        if workers is None or workers <= 0:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.workers = int(workers)

        @ray.remote(num_cpus=1, max_restarts=-1)
        class _Actor:
            def __init__(self, init, initargs, fn):
                init(*initargs)
                self.fn = fn

            def run(self, task):
                return self.fn(task)

        self._actor_cls = _Actor
        self.fn, self.init, self.initargs = fn, init, initargs
        self.actors = [_Actor.remote(init, initargs, fn) for _ in range(self.workers)]
        self.load = collections.Counter()
        self.owner = {}

    def submit(self, task):
        i = min(range(len(self.actors)), key=lambda k: (self.load[k], k))
        ref = self.actors[i].run.remote(task)
        self.load[i] += 1
        self.owner[ref] = i
        return ref

    def wait(self, handles):
        done, _ = self.ray.wait(list(handles), num_returns=1)
        return done

    def result(self, handle):
        i = self.owner.pop(handle)
        self.load[i] -= 1
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayActorError as e:
            raise WorkerCrashed(f"Ray actor died: {e}") from None
        except self.ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None

    def restart(self):
        pass  # actors restart themselves (max_restarts=-1)

    def close(self, cancel: bool = False):
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []
        if self._owns:
            self.ray.shutdown()


def bounded_map(engine, tasks: Iterable, max_in_flight: int, on_crash: Callable[[Any, Exception], Any]
                ) -> Iterator[tuple[Any, Any]]:
    """Yield ``(task, result)`` for every task, in completion order, with at most
    ``max_in_flight`` tasks submitted at once: tasks are pulled from the iterable only as
    results come back, so memory stays bounded however long the stream is.

    A task whose worker crashes (the pool breaks) is retried alone on a fresh pool; if it
    crashes again, ``on_crash(task, error)`` gives its result. A task that raises any other
    exception propagates it (the worker function should catch per-task errors itself)."""
    it = iter(tasks)
    in_flight: dict = {}
    retry: collections.deque = collections.deque()
    alone = False  # while retrying after a crash: one task at a time
    exhausted = False
    while True:
        limit = 1 if alone else max_in_flight
        while len(in_flight) < limit:
            if retry:
                task = retry.popleft()
                in_flight[engine.submit(task)] = task
                continue
            if alone:
                alone = False
                limit = max_in_flight
            if exhausted:
                break
            try:
                task = next(it)
            except StopIteration:
                exhausted = True
                break
            in_flight[engine.submit(task)] = task
        if not in_flight:
            return
        for h in engine.wait(list(in_flight)):
            task = in_flight.pop(h)
            try:
                res = engine.result(h)
            except WorkerCrashed as e:
                if alone:  # crashed on its own: it is this task's fault
                    yield task, on_crash(task, e)
                    engine.restart()
                    continue
                # the pool broke; every task in flight is suspect: retry them one by one
                pending = [task] + list(in_flight.values())
                in_flight.clear()
                engine.restart()
                retry.extend(pending)
                alone = True
                break
            yield task, res
