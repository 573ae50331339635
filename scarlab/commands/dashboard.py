"""`scarlab dashboard`: serve the Streamlit dashboard over a folder of runs, on 127.0.0.1 by default.

The app lives in the repository's top-level ``dashboard/`` folder (``app.py``, ``pages/``, ``data.py``,
``plots.py``). ``app_path`` finds it: ``$SCARLAB_DASHBOARD_APP`` if set, else ``dashboard/app.py`` next to the
``scarlab`` package (a checkout or editable install), else a copy installed as ``scarlab/dashboard_app/``
(package data, for wheels).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScarlabError


def register(sub) -> None:
    p = sub.add_parser("dashboard", help="serve the dashboard (Streamlit) over a folder of runs",
                       description="Runs, feature migration (UMAP), distances, curves and method comparison, read "
                                   "from run directories. Binds 127.0.0.1 unless --address says otherwise.")
    p.add_argument("--runs", required=True, help="folder holding run directories (searched recursively)")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--address", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes the runs to your network)")
    p.set_defaults(func=run)


def run(args) -> int:
    return serve(args.runs, args.port, args.address, block=True)


def app_path() -> Path:
    """The dashboard's ``app.py`` (see the module docstring for the search order)."""
    env = os.environ.get("SCARLAB_DASHBOARD_APP")
    candidates = [Path(env)] if env else []
    pkg = Path(__file__).resolve().parents[1]  # .../scarlab
    candidates += [pkg.parent / "dashboard" / "app.py", pkg / "dashboard_app" / "app.py"]
    for c in candidates:
        if c.is_file():
            return c
    raise ScarlabError("the dashboard app is not installed: expected dashboard/app.py next to the scarlab package "
                       f"({candidates[-2]}) or scarlab/dashboard_app/app.py; set SCARLAB_DASHBOARD_APP to its app.py")


def port_free(port: int, address: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def streamlit_command(runs: Path, port: int, address: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app_path()), "--server.headless", "true",
            "--server.address", address, "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal", "--", "--runs", str(runs)]


@dataclass
class Server:
    """A dashboard started with ``serve(..., block=False)``: stop it with ``stop()`` (or use ``with``)."""

    url: str
    process: subprocess.Popen

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

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


def serve(runs: str | os.PathLike, port: int = 8501, address: str = "127.0.0.1", block: bool = True,
          timeout: float = 60.0, quiet: bool = False):
    """Run ``streamlit run dashboard/app.py`` over ``runs`` bound to ``address:port``.

    ``block=True`` serves until Ctrl-C and returns the exit status; ``block=False`` waits until the server is
    healthy and returns a :class:`Server` (``.url``, ``.stop()``). ``port=0`` picks a free port.
    """
    root = Path(runs).expanduser().resolve()
    if not root.is_dir():
        raise ScarlabError(f"runs folder {root} does not exist; create runs with `scarlab demo` or `scarlab pipeline`")
    port = free_port(address) if port == 0 else int(port)
    if not port_free(port, address):
        raise ScarlabError(f"port {port} on {address} is in use; pass --port with another number")
    cmd = streamlit_command(root, port, address)
    env = {**os.environ, "SCARLAB_RUNS": str(root)}
    url = f"http://{address}:{port}"
    if block:
        print(f"scarlab dashboard over {root}: {url} (Ctrl-C to stop)")
        proc = subprocess.Popen(cmd, env=env)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            return 0
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)
    server = Server(url, proc)
    try:
        wait_healthy(url, proc, timeout)
    except BaseException:
        server.stop()
        raise
    return server
