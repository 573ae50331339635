"""`scarlab lab`: JupyterLab on the notebooks folder, bound to 127.0.0.1.

JupyterLab runs in its own process group under :func:`scarlab.commands.dashboard.supervise`: Ctrl-C, SIGTERM or
SIGHUP to `scarlab lab` (or its exit) stops the server (SIGTERM to the group, SIGKILL after a grace period), so it
never outlives the command.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LabConfig:
    """Start JupyterLab on notebooks/ (the stage notebooks and explore/), listening on 127.0.0.1 only, with this
    environment's Python as the kernel."""

    port: str = "8888"
    """port, 1-65535."""
    notebooks: str | None = None
    """folder to open; None: this checkout's notebooks/."""
    browser: bool = False
    """also open a browser (otherwise the URL is printed)."""
    dry_run: bool = False
    """print the JupyterLab command instead of running it."""


def register(sub) -> None:
    from . import _common

    p = _common.add_parser(sub, "lab", LabConfig, "open JupyterLab on the notebooks (127.0.0.1 only)")
    p.set_defaults(func=run)


def lab_command(notebooks: str | os.PathLike, port: int = 8888, browser: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "jupyterlab", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.root_dir={Path(notebooks).resolve()}"]
    if not browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # JupyterLab refuses to start as root without it (containers)
    return cmd


def run(args) -> int:
    from ..errors import ScarlabError
    from ..pipeline import NOTEBOOKS, ensure_kernel
    from . import _common
    from .dashboard import check_port, supervise

    cfg, _ = _common.options(args)
    port = check_port(cfg.port)  # before anything starts
    nb = Path(cfg.notebooks).expanduser() if cfg.notebooks else NOTEBOOKS
    if not nb.is_dir():
        raise ScarlabError(f"no notebooks folder at {nb}; pass --notebooks DIR (a scarlab checkout's notebooks/)")
    cmd = lab_command(nb, port, cfg.browser)
    if cfg.dry_run:
        print(" ".join(cmd))
        return 0
    ensure_kernel()  # the python3 kernel must be this interpreter (sets JUPYTER_PATH for the server if needed)
    return supervise(cmd)
