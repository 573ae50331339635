"""Warm kernels: every stage still runs in a fresh kernel process of its own, but one forked from a process that has
imported the heavy modules already.

A stage would otherwise spend its first seconds starting Python and importing torch, pandas, plotly, sklearn and
scarlab before its notebook does any work — on digits, more than the work itself, and the same CPU again in every
stage. A *zygote* process (one per pipeline process, started with the first pool) imports :data:`PRELOAD` once and
then forks: each stage's kernel is a copy-on-write child of it that becomes that stage's ipykernel (the same
``ipykernel_launcher`` a cold start runs, with the stage's environment and working folder, in a session of its own,
its output in the stage's kernel log) and is shut down with the stage like any other kernel. A fork costs
milliseconds of CPU, so a pipeline's stages share one import instead of paying one each.

Only the import of modules is shared: no notebook code runs in the zygote, no kernel serves two stages, Python's and
numpy's global random generators are reseeded in each kernel, and a zygote whose scarlab sources or OpenMP settings
changed since it started is replaced (a library read at import would otherwise be stale). ``SCARLAB_WARM_KERNELS=0``
turns it off (and it is off outside Linux): every stage starts cold.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .. import interrupts

PRELOAD = ("numpy", "pandas", "plotly.express", "plotly.io", "torch", "torch._dynamo", "tqdm.auto",
           "sklearn.datasets", "sklearn.linear_model", "sklearn.svm", "scarlab.notebook", "scarlab.config",
           "scarlab.results", "scarlab.train", "scarlab.unlearn.stage", "scarlab.evaluate", "ipykernel.kernelapp")
"""What the zygote imports before it forks kernels: what the stage notebooks import at their top, and
``torch._dynamo``, which torch imports when a process makes its first optimizer (about 1 s here: every training and
unlearning stage paid it). UMAP and numba, which only the embedding step needs, are left to it."""

IDLE_S = 300
"""a zygote with no request and no running kernel for this long exits (a long-lived process — the demo serving
its dashboard, a notebook that called ``run_pipeline`` — does not keep its memory); the next pipeline starts
another."""

_LIBRARY_ENV = ("OMP_", "KMP_", "MKL_", "GOMP_", "OPENBLAS_")
"""environment variables that OpenMP/BLAS read once, when torch loads: a zygote started under other values is
replaced, not forked from."""


def enabled() -> bool:
    """On unless ``SCARLAB_WARM_KERNELS=0``; Linux only (the one system it was run on: macOS libraries are not all safe
    to fork after import, Windows cannot fork), elsewhere every stage starts cold."""
    return os.environ.get("SCARLAB_WARM_KERNELS", "1") != "0" and sys.platform.startswith("linux")


# ============================================================================================ pipeline side
class ForkedProcess:
    """The ``Popen`` calls jupyter_client and :mod:`scarlab.interrupts` make on a kernel, for a kernel that is the
    zygote's child, not ours: its exit status comes from the zygote (which reaps it)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, zygote: "Zygote"):
        self.pid, self._zygote, self.returncode = pid, zygote, None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._zygote.exit_status(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class Zygote:
    """The process that imported :data:`PRELOAD` and forks kernels on request (``python -m scarlab.pipeline.warm``).
    Requests and replies are JSON lines on its stdin and stdout; a reader thread collects the replies (forked pids,
    readiness, kernels' exit statuses)."""

    def __init__(self):
        self.key = _key()
        self.process = subprocess.Popen([sys.executable, "-m", "scarlab.pipeline.warm", str(IDLE_S)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        self._cond = threading.Condition()
        self._ready = False
        self._pids: list[int] = []  # replies to fork requests, in order
        self._exits: dict[int, int] = {}
        self._lock = threading.Lock()  # one fork request at a time: replies come in request order
        threading.Thread(target=self._read, daemon=True, name="scarlab-zygote").start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                if "ready" in msg:
                    self._ready = True
                elif "pid" in msg:
                    self._pids.append(msg["pid"])
                elif "exit" in msg:
                    self._exits[msg["exit"]] = msg["status"]
                self._cond.notify_all()
        with self._cond:  # the zygote ended (closed, killed): nothing more will come
            self._ready = None
            self._cond.notify_all()

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> bool:
        """True once the imports are done; False if the zygote died first."""
        with self._cond:
            while self._ready is False:
                self._cond.wait()
            return bool(self._ready)

    def fork(self, connection_file: str, log: Path, cwd: str, env: dict) -> ForkedProcess:
        request = {"connection_file": connection_file, "log": str(log), "cwd": cwd, "env": env}
        with self._lock:
            with self._cond:
                if self._ready is not True:
                    raise OSError("the zygote is not running")
                self.process.stdin.write((json.dumps(request) + "\n").encode())
                self.process.stdin.flush()
                while not self._pids and self._ready:
                    self._cond.wait()
                if not self._pids:
                    raise OSError("the zygote ended before it forked the kernel")
                return ForkedProcess(self._pids.pop(0), self)

    def exit_status(self, pid: int) -> int | None:
        with self._cond:
            if pid in self._exits:
                return self._exits[pid]
            if self._ready is not None:
                return None
        # the zygote is gone, so nobody reports this kernel's end: read the process table
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            return -1 if state == b"Z" else None
        except (OSError, IndexError):
            return -1

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.close()  # the zygote exits at the end of its input; its kernels live on
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_ZYGOTE: Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def _key() -> tuple:
    """What a zygote's imports depend on: the interpreter, the OpenMP/BLAS settings and scarlab's sources."""
    src = Path(__file__).resolve().parents[1]
    newest = max((p.stat().st_mtime_ns for p in src.rglob("*.py")), default=0)
    libenv = sorted((k, v) for k, v in os.environ.items() if k.startswith(_LIBRARY_ENV))
    return sys.executable, tuple(libenv), newest


def zygote() -> Zygote | None:
    """This process's zygote, started (or replaced, when :func:`_key` changed or it died) on demand; None when it
    cannot be started (stages then start cold)."""
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is not None and (not _ZYGOTE.alive() or _ZYGOTE.key != _key()):
            _ZYGOTE.close()
            _ZYGOTE = None
        if _ZYGOTE is None:
            try:
                _ZYGOTE = Zygote()
            except OSError:
                return None
        return _ZYGOTE


@atexit.register
def _close_zygote() -> None:
    if _ZYGOTE is not None:
        _ZYGOTE.close()


class WarmKernel:
    """A kernel still to be forked: ``start(connection_file, cwd, env)`` forks it from the zygote."""

    def __init__(self, zygote: Zygote, log_dir: Path):
        self.zygote, self.process = zygote, None
        fd, log = tempfile.mkstemp(prefix="kernel.", suffix=".log", dir=log_dir)
        os.close(fd)
        self.log = Path(log)

    @property
    def started(self) -> bool:
        return self.process is not None

    def start(self, connection_file: str, cwd: str | None = None, env: dict | None = None) -> None:
        self.process = self.zygote.fork(connection_file, self.log, cwd or os.getcwd(),
                                        dict(os.environ if env is None else env))
        interrupts.track_kernel(self.process)  # an abort kills it

    def discard(self) -> None:
        """Forget a kernel no stage started: nothing was forked, its empty log file goes (one a cold kernel wrote
        to instead, when the zygote had just ended, stays for the stage's record)."""
        with contextlib.suppress(OSError):
            if self.log.stat().st_size == 0:
                self.log.unlink()


class WarmKernels:
    """Kernels forked from this process's zygote for a pipeline's stages, any number at once; a context manager.
    Entering starts the zygote (its imports run while the plan is made); leaving removes the kernels' log folder."""

    def __init__(self):
        self._dir = Path(tempfile.mkdtemp(prefix="scarlab-kernels-"))
        self._zygote: Zygote | None = None

    def __enter__(self) -> "WarmKernels":
        self._zygote = zygote()
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def take(self) -> WarmKernel | None:
        """A kernel to fork once its stage starts one (the zygote's imports are waited for: they are ahead of a cold
        start); None when there is no zygote (the caller starts a kernel cold). A zygote that ended meanwhile (idle
        for :data:`IDLE_S` while the pipeline waited, killed) is replaced for this and the later stages."""
        z = self._zygote
        if z is not None and not z.alive():
            self._zygote = z = zygote()
        if z is None or interrupts.STOP.is_set() or not z.wait_ready():
            return None
        return WarmKernel(z, self._dir)


# ============================================================================================ the zygote
def _main() -> None:
    """Import :data:`PRELOAD`, say ready, then fork one kernel per request line until stdin ends or it sat idle for
    ``argv[1]`` seconds (:data:`IDLE_S`); report each kernel's exit status (the zygote reaps them).
    Single-threaded: forking a threaded process is unsafe."""
    import importlib

    out = os.fdopen(os.dup(1), "w", buffering=1)  # the replies; anything else printed to stdout goes nowhere
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    os.close(devnull)
    for name in PRELOAD:
        with contextlib.suppress(Exception):  # a module that fails here fails again, visibly, in the notebook
            importlib.import_module(name)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears of ended kernels
    out.write(json.dumps({"ready": True}) + "\n")
    idle_s = float(sys.argv[1]) if len(sys.argv) > 1 else IDLE_S
    pending, running = b"", 0
    while True:
        readable, _, _ = select.select([0, wake_r], [], [], idle_s)
        if not readable and not running:
            return  # idle: exit rather than hold the imports' memory
        if wake_r in readable:
            os.read(wake_r, 4096)
        while True:  # reap every kernel that ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            running -= 1
            out.write(json.dumps({"exit": pid, "status": os.waitstatus_to_exitcode(status)}) + "\n")
        if 0 in readable:
            chunk = os.read(0, 65536)
            if not chunk:
                return  # the pipeline closed us (or died): running kernels carry on, each in its own session
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                out.flush()
                pid = os.fork()
                if pid == 0:
                    _become_kernel(json.loads(line), (wake_r, wake_w, out.fileno()))
                running += 1
                out.write(json.dumps({"pid": pid}) + "\n")


def _become_kernel(request: dict, zygote_fds: tuple) -> None:
    """In the forked child: the stage's session, environment, folder, log and fresh random state, then the same
    ``ipykernel_launcher`` a cold kernel runs. Never returns into the zygote's loop."""
    import random
    import runpy

    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in zygote_fds:
            os.close(fd)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(devnull)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]  # what `python -m ipykernel_launcher` started there would have first
        random.seed()
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        sys.argv = [sys.argv[0], "-f", request["connection_file"]]
        runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the kernel's own failure, written to its log
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _main()
