"""Warm kernels: every stage still runs in a fresh kernel process of its own, but one forked from a process that has
imported the heavy modules already.

A stage would otherwise spend its first seconds starting Python and importing torch, pandas, plotly, sklearn and
scarlab before its notebook does any work — on digits, more than the work itself, and the same CPU again in every
stage. A *zygote* process imports :data:`PRELOAD` once and then forks: each stage's kernel is a copy-on-write child of it
that becomes that stage's ipykernel (the same ``ipykernel_launcher`` a cold start runs, with the stage's environment
and working folder, in a session of its own, its output in the stage's kernel log) and is shut down with the stage
like any other kernel. A fork costs milliseconds of CPU, so stages share one import instead of paying one each. The
zygote is shared too: every pipeline of the user on this machine (a queue of jobs, a sweep's processes, the next
`scarlab pipeline`) forks from the one that is running, over a Unix socket only the user can open, and the first to
find none starts it; it exits after :data:`IDLE_S` seconds without work.

Only the import of modules is shared: no notebook code runs in the zygote, no kernel serves two stages, Python's and
numpy's global random generators are reseeded in each kernel, and a zygote whose scarlab sources or OpenMP settings
changed since it started is replaced (a library read at import would otherwise be stale). ``SCARLAB_WARM_KERNELS=0``
turns it off (and it is off outside Linux): every stage starts cold.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .. import interrupts
from ..notebook import warm_up

PRELOAD = ("numpy", "pandas", "plotly.express", "plotly.io", "torch", "torch._dynamo", "tqdm.auto",
           "sklearn.datasets", "sklearn.linear_model", "sklearn.svm", "scarlab.notebook", "scarlab.config",
           "scarlab.results", "scarlab.train", "scarlab.unlearn.stage", "scarlab.evaluate", "ipykernel.kernelapp",
           "ipykernel.debugger")
"""What the zygote imports before it forks kernels: what the stage notebooks import at their top, and
``torch._dynamo``, which torch imports when a process makes its first optimizer (about 1 s here: every training and
unlearning stage paid it), and ``ipykernel.debugger``, which each kernel imports as it starts (debugpy: ~40 ms); with
``scarlab.notebook`` among them the zygote also draws one figure of each kind (:func:`scarlab.notebook.warm_up`).
UMAP and numba, which only the embedding step needs, are left to it."""

IDLE_S = 300
"""a zygote with no request and no running kernel for this long exits (it does not keep its memory while nothing
runs); the next pipeline starts another."""

_LIBRARY_ENV = ("OMP_", "KMP_", "MKL_", "GOMP_", "OPENBLAS_")
"""environment variables that OpenMP/BLAS read once, when torch loads: a zygote started under other values is
replaced, not forked from."""


_SET_BY_PRELOAD = ("KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK")
"""what importing scikit-learn sets (when unset) in the process that imports it, the zygote included: a pipeline
process that happened to import it first is no reason for a zygote of its own."""


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
    """A connection to the zygote of this interpreter, OpenMP settings and scarlab sources (:func:`_key`): the
    process that imported :data:`PRELOAD` and forks kernels on request (``python -m scarlab.pipeline.warm``).

    One zygote serves every pipeline of the user with that key on this machine, over a Unix socket in a folder only
    the user can open (:func:`_socket_path`): a pipeline connects to the running one or starts it (under a file lock,
    so two pipelines starting at once start one), and it exits on its own after :data:`IDLE_S` idle seconds. Requests
    and replies are JSON lines; a thread connects (while the caller plans) and then collects the replies (forked
    pids, readiness, this connection's kernels' exit statuses)."""

    def __init__(self):
        self.key = _key()
        self.path = _socket_path(self.key)
        self.pid: int | None = None  # the zygote's, once connected
        self.process: subprocess.Popen | None = None  # when this process started it
        self._sock: socket.socket | None = None
        self._cond = threading.Condition()
        self._ready = False
        self._pids: list[int] = []  # replies to fork requests, in order
        self._exits: dict[int, int] = {}
        self._lock = threading.Lock()  # one fork request at a time: replies come in request order
        threading.Thread(target=self._run, daemon=True, name="scarlab-zygote").start()

    # -------------------------------------------------------------------------------- connecting
    def _run(self) -> None:
        try:
            sock = self._connect_or_start()
        except OSError:
            sock = None
        if sock is not None:
            self._read(sock)
        with self._cond:  # the zygote ended (idle, killed) or never started: nothing more will come
            self._ready = None
            self._cond.notify_all()

    def _connect(self) -> tuple[socket.socket, dict] | None:
        """A connection to a running zygote at :attr:`path` and its greeting, or None."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.path))
            sock.settimeout(60)
            line = sock.makefile("rb").readline()  # the greeting: {"ready": true, "pid": ...}
            sock.settimeout(None)
            hello = json.loads(line) if line else {}
            if hello.get("ready"):
                return sock, hello
        except (OSError, ValueError):
            pass
        sock.close()
        return None

    def _connect_or_start(self) -> socket.socket | None:
        got = self._connect()
        if got is None:
            with open(self.path.with_suffix(".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time; the others then find it running
                got = self._connect()
                if got is None:
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()  # a socket its ended zygote left
                    self.process = subprocess.Popen(
                        [sys.executable, "-m", "scarlab.pipeline.warm", str(IDLE_S), str(self.path), *PRELOAD],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        start_new_session=True)
                    threading.Thread(target=self.process.wait, daemon=True).start()  # reaped when it exits
                    while got is None and self.process.poll() is None:
                        time.sleep(0.05)
                        got = self._connect()
        if got is None:
            return None
        self._sock, hello = got
        with self._cond:
            self.pid, self._ready = hello.get("pid"), True
            self._cond.notify_all()
        return self._sock

    def _read(self, sock: socket.socket) -> None:
        for line in sock.makefile("rb"):
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                if "pid" in msg:
                    self._pids.append(msg["pid"])
                elif "exit" in msg:
                    self._exits[msg["exit"]] = msg["status"]
                self._cond.notify_all()

    # -------------------------------------------------------------------------------- using it
    def alive(self) -> bool:
        """Not known to have ended: the connection is open (or being made) and the zygote's process still runs
        (checked too, since the reader thread may not have seen the connection close yet)."""
        if self._ready is None:
            return False
        if self.process is not None and self.process.poll() is not None:
            return False
        return self.pid is None or _running(self.pid)

    def wait_ready(self) -> bool:
        """True once connected (a zygote this process started: once its imports are done); False if there is none."""
        with self._cond:
            while self._ready is False:
                self._cond.wait()
            return bool(self._ready)

    def _send(self, msg: dict) -> None:
        self._sock.sendall((json.dumps(msg) + "\n").encode())

    def fork(self, connection_file: str, log: Path, cwd: str, env: dict, args: list[str] = ()) -> ForkedProcess:
        request = {"connection_file": connection_file, "log": str(log), "cwd": cwd, "env": env, "args": list(args)}
        with self._lock:
            with self._cond:
                if self._ready is not True:
                    raise OSError("the zygote is not running")
                self._send(request)
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
        return None if _running(pid) else -1

    def close(self, stop: bool = False) -> None:
        """Hang up (the zygote stays for the next pipeline until it is idle); ``stop``: ask it to exit now (its
        running kernels carry on, each in its own session)."""
        with contextlib.suppress(OSError, AttributeError):
            if stop and self.wait_ready():
                self._send({"exit": True})
            self._sock.shutdown(socket.SHUT_RDWR)
        with self._cond:
            self._ready = None
            self._cond.notify_all()
        if stop and self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)


def _running(pid: int) -> bool:
    """The process ``pid`` exists and has not ended (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


_ZYGOTE: Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def _key() -> tuple:
    """What a zygote's imports depend on: the interpreter, its import path, the OpenMP/BLAS settings, scarlab's
    sources and what it imports."""
    src = Path(__file__).resolve().parents[1]
    newest = max((p.stat().st_mtime_ns for p in src.rglob("*.py")), default=0)
    libenv = sorted((k, v) for k, v in os.environ.items()
                    if (k.startswith(_LIBRARY_ENV) or k == "PYTHONPATH") and k not in _SET_BY_PRELOAD)
    return sys.executable, tuple(libenv), newest, PRELOAD


def _socket_path(key: tuple) -> Path:
    """Where the zygote of ``key`` listens: a folder of the temporary directory only this user may open (a private
    one of this process when that folder is not so: then nothing is shared)."""
    name = "zygote-" + hashlib.sha256(repr(key).encode()).hexdigest()[:16] + ".sock"
    tmp = Path(tempfile.gettempdir())
    if len(str(tmp)) > 60:  # a Unix socket's path holds about 100 bytes
        tmp = Path("/tmp")
    folder = tmp / f"scarlab-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        folder = Path(tempfile.mkdtemp(prefix="scarlab-", dir=tmp))
    return folder / name


def zygote() -> Zygote | None:
    """This process's connection to its zygote, made (or made again, when :func:`_key` changed or the zygote ended)
    on demand; None when none can be had (stages then start cold). A zygote whose key is no longer this process's is
    asked to exit."""
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is not None and (not _ZYGOTE.alive() or _ZYGOTE.key != _key()):
            _ZYGOTE.close(stop=_ZYGOTE.alive())
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

    def start(self, connection_file: str, cwd: str | None = None, env: dict | None = None,
              args: list[str] = ()) -> None:
        self.process = self.zygote.fork(connection_file, self.log, cwd or os.getcwd(),
                                        dict(os.environ if env is None else env), list(args))
        interrupts.track_kernel(self.process)  # an abort kills it

    def discard(self) -> None:
        """Forget a kernel no stage started: nothing was forked, its empty log file goes (one a cold kernel wrote
        to instead, when the zygote had just ended, stays for the stage's record)."""
        with contextlib.suppress(OSError):
            if self.log.stat().st_size == 0:
                self.log.unlink()


class WarmKernels:
    """Kernels forked from the zygote for a pipeline's stages, any number at once; a context manager. Entering
    connects to the zygote, or starts it (its imports run while the plan is made); leaving removes the kernels' log
    folder."""

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
    """Import the modules ``argv[3:]`` (:data:`PRELOAD`), listen on ``argv[2]`` (:func:`_socket_path`), greet each
    connection, then fork one kernel per request line and tell the connection that asked its pid and, later, its exit
    status (the zygote reaps its kernels); exit when nothing happened (no request, no running kernel) for ``argv[1]``
    seconds (:data:`IDLE_S`) or a connection asks it to. Single-threaded: forking a threaded process is unsafe."""
    import importlib

    for fd in (0, 1):  # nothing is read from or printed to the terminal it was started from
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, fd)
        os.close(devnull)
    idle_s, path, modules = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
    for name in modules:
        with contextlib.suppress(Exception):  # a module that fails here fails again, visibly, in the notebook
            importlib.import_module(name)
    if "scarlab.notebook" in modules:
        with contextlib.suppress(Exception):  # an optional head start: a kernel loads the same when it needs it
            warm_up()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    inode = os.stat(path).st_ino
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears of ended kernels
    conns: dict[socket.socket, bytes] = {}  # each connection -> what it sent that is not yet a whole line
    owner: dict[int, socket.socket] = {}  # each running kernel's pid -> the connection that asked for it

    def tell(conn: socket.socket, msg: dict) -> None:
        if conn in conns:
            try:
                conn.sendall((json.dumps(msg) + "\n").encode())
            except OSError:
                del conns[conn]
                conn.close()

    try:
        while True:
            readable, _, _ = select.select([listener, wake_r, *conns], [], [], idle_s)
            if not readable and not owner:
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
                if pid in owner:
                    tell(owner.pop(pid), {"exit": pid, "status": os.waitstatus_to_exitcode(status)})
            if listener in readable:
                conn, _ = listener.accept()
                uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
                if uid != os.getuid():  # the folder is the user's alone; this is the second lock
                    conn.close()
                else:
                    conns[conn] = b""
                    tell(conn, {"ready": True, "pid": os.getpid()})
            for conn in [c for c in readable if c in conns]:
                chunk = conn.recv(65536)
                if not chunk:  # hung up: its running kernels carry on, each in its own session
                    del conns[conn]
                    conn.close()
                    continue
                pending = conns[conn] + chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    request = json.loads(line)
                    if request.get("exit"):
                        return
                    pid = os.fork()
                    if pid == 0:
                        _become_kernel(request, [listener.fileno(), wake_r, wake_w, *(c.fileno() for c in conns)])
                    owner[pid] = conn
                    tell(conn, {"pid": pid})
                if conn in conns:
                    conns[conn] = pending
    finally:
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:
                os.unlink(path)  # no later client waits on a zygote that is gone


def _become_kernel(request: dict, zygote_fds: list) -> None:
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
        sys.argv = [sys.argv[0], "-f", request["connection_file"], *request.get("args", [])]
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
