"""Stopping cleanly and never colliding: Ctrl-C / SIGTERM handling for long commands, per-stage locks, and the
kernel processes a stage starts.

* :func:`graceful` installs the handlers: the first Ctrl-C (or SIGTERM) prints "stopping after the current
  stage (Ctrl-C again to abort)" and sets :data:`STOP`; the second sets :data:`ABORT` and kills every stage
  kernel this process started, so their stages end at once and are marked failed ("interrupted").
* :func:`stage_lock` is an advisory ``flock`` on a stage's lock file holding the owner's PID: a second process that
  reaches the same stage waits for the first (printing who holds it once) instead of deleting its work. The
  kernel releases a lock with its process, so a killed holder never leaves a stale lock behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import threading
import time
from pathlib import Path

STOP = threading.Event()
"""set by the first Ctrl-C / SIGTERM: start no new stage."""
ABORT = threading.Event()
"""set by the second: running stages are killed."""

_KERNELS: set = set()
_LOCK = threading.Lock()


class Interrupted(Exception):
    """Raised where a stage was stopped by the user (second Ctrl-C or SIGTERM)."""


def track_kernel(process) -> None:
    """Remember a kernel process (a ``Popen``) so an abort can kill it; killed at once if already aborting."""
    with _LOCK:
        for p in [p for p in _KERNELS if p.poll() is not None]:  # finished kernels: forget them
            _KERNELS.discard(p)
        _KERNELS.add(process)
    if ABORT.is_set():
        _kill(process)


def _kill(process) -> None:
    with contextlib.suppress(Exception):
        process.kill()


def kill_kernels() -> None:
    with _LOCK:
        for p in list(_KERNELS):
            _kill(p)


@contextlib.contextmanager
def graceful(say=print):
    """Within this block, the first SIGINT/SIGTERM asks to stop after the current stage(s), the second aborts.

    Only the main thread may install handlers; elsewhere (a Ray worker, a notebook thread) this does nothing.
    """
    STOP.clear()
    ABORT.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if not STOP.is_set():
            STOP.set()
            say(f"{name}: stopping after the current stage (Ctrl-C again to abort)")
        else:
            ABORT.set()
            say(f"{name}: aborting; the running stage(s) are marked failed (interrupted)")
            kill_kernels()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def stage_lock(lock: str | os.PathLike, label: str, say=print, poll_s: float = 0.5):
    """Hold the lock file ``lock`` of one stage; waits (telling ``say`` once) while another process holds it."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    told = False
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if ABORT.is_set() or STOP.is_set():
                raise Interrupted(f"{label}: not started (interrupted while waiting for process {holder})")
            if not told:
                say(f"[wait ] {label}: another scarlab process (PID {holder}) is running this stage; waiting for it")
                told = True
            time.sleep(poll_s)
            continue
        if Path(lock).exists() and os.fstat(fd).st_ino == os.stat(lock).st_ino:
            break
        os.close(fd)  # the holder removed the file between our open and flock: take the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)
