"""`scarlab dashboard`: serve the Streamlit dashboard over a folder of runs, on 127.0.0.1 by default.

Where it listens is decided in one place, :func:`server_settings`: ``--address`` if given, else
``$STREAMLIT_SERVER_ADDRESS`` (the Docker image sets 0.0.0.0, the only address a published container port
reaches), else 127.0.0.1; the port likewise from ``--port``, ``$STREAMLIT_SERVER_PORT``, 8501. `scarlab demo` serves
through the same function.

The app lives in the repository's top-level ``dashboard/`` folder (``app.py``, ``views/``, ``data.py``,
``plots.py``, ``common.py``), installed as the package ``scarlab_dashboard``; ``app_path`` finds its ``app.py``
through that one name (a checkout's editable install and a wheel alike).

Servers never outlive the command: :func:`supervise` starts the server (Streamlit here, JupyterLab for
`scarlab lab`) in its own process group, and on SIGINT, SIGTERM, SIGHUP or any exit of the command sends SIGTERM
to the whole group, then SIGKILL after a grace period. On Linux the server also gets SIGTERM if the command itself
is killed outright (``PR_SET_PDEATHSIG``).
"""
from __future__ import annotations

import atexit
import errno
import importlib.util
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ScarlabError

DEFAULT_ADDRESS, DEFAULT_PORT = "127.0.0.1", 8501
ENV_ADDRESS, ENV_PORT = "STREAMLIT_SERVER_ADDRESS", "STREAMLIT_SERVER_PORT"


@dataclass
class ServeOptions:
    """Where the dashboard listens (resolved by :func:`server_settings`)."""

    port: str | None = None
    """port, 1-65535; None: $STREAMLIT_SERVER_PORT, else 8501."""
    address: str | None = None
    """interface to bind; None: $STREAMLIT_SERVER_ADDRESS, else 127.0.0.1 (0.0.0.0 exposes the runs to your
    network)."""


@dataclass
class DashboardConfig(ServeOptions):
    """Serve the dashboard over a folder of runs: runs, feature migration (UMAP), distances, curves and method
    comparison, read from run directories."""

    runs: str = ""
    """folder holding run directories (searched recursively)."""
    read_only: bool = False
    """show runs only: no Run page (nothing can be launched or stopped from the browser)."""
    allow_remote_run: bool = False
    """keep the Run page on a server bound beyond loopback (--address 0.0.0.0): anyone who reaches the port can then
    launch jobs on this machine. Off: such a server shows no Run page."""
    data: list[str] = field(default_factory=list)
    """folders the Run page may train on: ImageFolder data sets (PATH/train, PATH/test) or folders of them, and
    surrogate folders ($SCARLAB_SHARED_DATA is added when set); nothing outside them is read."""


def register(sub) -> None:
    from . import _common

    p = _common.add_parser(sub, "dashboard", DashboardConfig, "serve the dashboard (Streamlit) over a folder of runs")
    p.set_defaults(func=run)


def run(args) -> int:
    from . import _common

    cfg, _ = _common.options(args)
    if not cfg.runs:
        raise ScarlabError("--runs is required: the folder holding run directories")
    address, port = server_settings(cfg.address, cfg.port)
    return serve(cfg.runs, port, address, block=True, app_args=app_args(cfg.read_only, cfg.allow_remote_run,
                                                                         cfg.data))


def app_args(read_only: bool = False, allow_remote_run: bool = False, data=()) -> list[str]:
    """The app's own arguments (after ``--``) for the Run page's switches; data folders must exist."""
    out = ["--read-only"] if read_only else []
    out += ["--allow-remote-run"] if allow_remote_run else []
    for d in data or ():
        path = Path(d).expanduser().resolve()
        if not path.is_dir():
            raise ScarlabError(f"--data {d}: no such folder")
        out += ["--data", str(path)]
    return out


def server_settings(address: str | None = None, port=None, env: dict | None = None) -> tuple[str, int]:
    """Where the dashboard listens: ``(address, port)``.

    An explicit ``address`` (``--address``) wins, else ``$STREAMLIT_SERVER_ADDRESS`` from ``env`` (default
    ``os.environ``; the Docker image sets 0.0.0.0), else 127.0.0.1: outside a container the default stays loopback.
    The port: ``port`` (``--port``), else ``$STREAMLIT_SERVER_PORT``, else 8501; a bad one is a one-line ScarlabError.
    """
    env = os.environ if env is None else env
    address = (address or "").strip() or (env.get(ENV_ADDRESS) or "").strip() or DEFAULT_ADDRESS
    if port is not None:
        return address, check_port(port)
    if (env.get(ENV_PORT) or "").strip():
        return address, check_port(env[ENV_PORT], f"${ENV_PORT}")
    return address, DEFAULT_PORT


def check_port(value, what: str = "--port") -> int:
    """A TCP port from the command line: an integer from 1 to 65535, else a one-line ScarlabError."""
    text = str(value).strip()
    try:
        port = int(text, 10)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise ScarlabError(f"{what} must be a whole number from 1 to 65535, got {text!r}")
    return port


def url_of(address: str, port: int) -> str:
    """The URL of a server bound to ``address:port`` (IPv6 addresses bracketed)."""
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


def _local(address: str) -> str:
    """The address to reach a server bound to ``address`` from this machine (a wildcard means loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address, address)


# ----------------------------------------------------------------------------- server processes
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def _parent_death_signal():
    """A ``preexec_fn`` that asks Linux to SIGTERM the child when this process dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec():  # runs in the child between fork and exec: no allocation-heavy work
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def start_server(cmd: list[str], env: dict | None = None, **popen) -> subprocess.Popen:
    """``cmd`` started as the leader of a new process group (``start_new_session``), so that
    :func:`stop_server` reaches every process it starts; it dies with this process on Linux."""
    return subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_parent_death_signal(), **popen)


def _signal_group(pgid: int, sig) -> bool:
    """Send ``sig`` to the process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # a group member we may not signal (should not happen): nothing more to do
        return False


def stop_server(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the server's whole process group; SIGKILL to whatever is left after ``grace`` seconds."""
    pgid = proc.pid  # the leader of its own group (start_server)
    if proc.poll() is None or _signal_group(pgid, 0):
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    try:
        proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _signal_group(pgid, signal.SIGKILL)
        proc.wait()
    # processes the server started in its group and left behind
    while _signal_group(pgid, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)


def supervise(cmd: list[str], env: dict | None = None, grace: float = 10.0, poll: float = 0.2) -> int:
    """Run a server until it exits or this process gets SIGINT, SIGTERM or SIGHUP; then (and on any exception)
    stop its whole process group. Returns the server's exit status, or 0 when a signal stopped it."""
    received: list[int] = []

    def handler(signum, frame):  # only note the signal: never raise between fork and bookkeeping
        received.append(signum)

    previous = {}
    for sig in STOP_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread: the finally clause still stops the server
            pass
    proc = None
    try:
        proc = start_server(cmd, env)
        while not received:
            try:
                return proc.wait(poll)
            except subprocess.TimeoutExpired:
                continue
        return 0
    finally:
        if proc is not None:
            stop_server(proc, grace)
        for sig, old in previous.items():
            signal.signal(sig, old)


def app_path() -> Path:
    """The dashboard's ``app.py``: in the folder of the installed package ``scarlab_dashboard``."""
    spec = importlib.util.find_spec("scarlab_dashboard")
    app = Path(spec.origin).parent / "app.py" if spec is not None and spec.origin else None
    if app is None or not app.is_file():
        raise ScarlabError("the dashboard app is not installed (no package scarlab_dashboard with an app.py); "
                           "reinstall scarlab: pip install -e . in a checkout")
    return app


def _sockaddr(address: str, port: int) -> tuple:
    """(family, socket address) to bind ``address:port``; a one-line ScarlabError when ``address`` is no IP address
    and no host name that resolves (checked first: a bad address must not read as a port in use)."""
    if re.fullmatch(r"[\d.]+", address):  # digits and dots: an IPv4 address or nothing (no name lookup)
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise ScarlabError(f"address {address!r} is not a valid IP address; pass one of this machine's, such "
                               "as 127.0.0.1 (--address)") from None
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM,
                                                       flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ScarlabError(f"address {address!r} does not resolve ({reason}); pass an IP address or host name of "
                           "this machine, such as 127.0.0.1 (--address)") from None
    return family, sockaddr


def check_listen(address: str, port: int) -> None:
    """That a server can listen on ``address:port`` now; else one ScarlabError line naming the real problem: an
    address that is not valid or does not resolve, one that is not this machine's, a port in use, or no
    permission."""
    family, sockaddr = _sockaddr(address, port)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ScarlabError(f"port {port} on {address} is in use; pass --port with another number") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ScarlabError(f"address {address!r} is not an address of this machine; pass one of its own, "
                                   "such as 127.0.0.1 (--address)") from None
            raise ScarlabError(f"cannot listen on {address} port {port}: {exc.strerror or exc}") from None


def free_port(address: str = "127.0.0.1") -> int:
    family, sockaddr = _sockaddr(address, 0)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(sockaddr)
        return s.getsockname()[1]


def streamlit_command(runs: Path, port: int, address: str = DEFAULT_ADDRESS, app_args: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app_path()), "--server.headless", "true",
            "--server.address", address, "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal", "--", "--runs", str(runs),
            *app_args]


@dataclass
class Server:
    """A dashboard started with ``serve(..., block=False)``: stop it with ``stop()`` (or use ``with``)."""

    url: str
    process: subprocess.Popen

    def stop(self, timeout: float = 10.0) -> None:
        atexit.unregister(self.stop)
        stop_server(self.process, timeout)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_healthy(url: str, process: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    """Poll ``/_stcore/health`` until the server answers ok; raise ScarlabError on exit or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ScarlabError(f"the dashboard exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise ScarlabError(f"the dashboard did not answer at {url} within {timeout:.0f} s")


def serve(runs: str | os.PathLike, port: int | None = None, address: str | None = None, block: bool = True,
          timeout: float = 60.0, quiet: bool = False, app_args: list[str] = ()):
    """Run ``streamlit run dashboard/app.py`` over ``runs`` bound to ``address:port``.

    ``address`` and ``port`` default as :func:`server_settings` says (``$STREAMLIT_SERVER_ADDRESS`` /
    ``$STREAMLIT_SERVER_PORT``, else 127.0.0.1:8501); ``port=0`` picks a free port (the command line accepts
    1-65535 only). ``block=True`` serves until Ctrl-C / SIGTERM and returns the exit status; ``block=False`` waits
    until the server is healthy and returns a :class:`Server` (``.url``, ``.stop()``).
    """
    root = Path(runs).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ScarlabError(f"--runs {root} is a file, not a folder: pass the folder holding run directories")
    if not root.is_dir():
        raise ScarlabError(f"runs folder {root} does not exist; create runs with `scarlab demo` or `scarlab pipeline`")
    if port == 0:
        address = server_settings(address)[0]
        port = free_port(address)
    else:
        address, port = server_settings(address, port)
    check_listen(address, port)
    cmd = streamlit_command(root, port, address, list(app_args))
    env = {**os.environ, "SCARLAB_RUNS": str(root)}
    url = url_of(address, port)
    if block:
        here = _local(address)
        where = (f" (every interface; from this machine {url_of(here, port)}, from a Docker host its published port)"
                 if here != address else "")
        print(f"scarlab dashboard over {root}: {url}{where} (Ctrl-C to stop)", flush=True)
        return supervise(cmd, env)
    out = subprocess.DEVNULL if quiet else None
    proc = start_server(cmd, env, stdout=out, stderr=out)
    server = Server(url, proc)
    atexit.register(server.stop)  # a script that forgets stop() still leaves no server behind
    try:
        wait_healthy(url_of(_local(address), port), proc, timeout)
    except BaseException:
        server.stop()
        raise
    return server
