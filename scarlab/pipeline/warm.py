"""Warm kernels: every stage still runs in a fresh kernel process of its own, but one started ahead of time.

A stage spends its first seconds starting a Python process and importing torch, pandas, plotly and scarlab
before its notebook does any work — on digits, more than the work itself. :class:`WarmKernels` keeps ``size``
processes ready: each has already imported :data:`PRELOAD` and waits, idle, on its standard input for the
connection file of the stage that takes it; it then becomes that stage's ipykernel (the same ``ipykernel_launcher``
a cold start runs, in the same environment, process group and working directory) and is shut down with the
stage like any other kernel. Taking one starts its replacement in the background, while the stage runs.

Only the import of modules is shared ahead: no notebook code runs before the stage's own, and no kernel serves
two stages. ``SCARLAB_WARM_KERNELS=0`` turns the pool off (every stage starts cold, as before).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .. import interrupts

PRELOAD = ("numpy", "pandas", "plotly.express", "plotly.io", "torch", "tqdm.auto", "sklearn.datasets",
           "sklearn.linear_model", "sklearn.svm", "scarlab.notebook", "scarlab.config", "scarlab.results",
           "scarlab.train", "scarlab.unlearn.stage", "scarlab.evaluate", "ipykernel.kernelapp")
"""What a warm kernel imports before it is taken: what the stage notebooks import at their top (UMAP and numba,
which only the embedding step needs, are left to it)."""


def enabled() -> bool:
    return os.environ.get("SCARLAB_WARM_KERNELS", "1") != "0"


class WarmKernel:
    """One waiting process: ``start(connection_file)`` makes it the kernel of that connection file."""

    def __init__(self, log_dir: Path):
        fd, log = tempfile.mkstemp(prefix="kernel.", suffix=".log", dir=log_dir)
        self.log = Path(log)
        with os.fdopen(fd, "ab") as fh:
            # the same launcher a cold kernel gets (jupyter_client's launch_kernel: its own session, no console)
            from jupyter_client.launcher import launch_kernel
            self.process = launch_kernel([sys.executable, "-m", "scarlab.pipeline.warm"], stdin=subprocess.PIPE,
                                         stdout=fh, stderr=fh)
        interrupts.track_kernel(self.process)  # an abort kills it, waiting or working

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def started(self) -> bool:
        return self.process.stdin.closed

    def start(self, connection_file: str) -> None:
        self.process.stdin.write(connection_file.encode() + b"\n")
        self.process.stdin.close()

    def discard(self) -> None:
        """End a process no stage took (waiting or still importing: it holds nothing)."""
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.close()
        self.process.kill()
        self.process.wait()
        self.log.unlink(missing_ok=True)


class WarmKernels:
    """Up to ``size`` waiting kernel processes, started in the background; a context manager (closing discards
    the ones no stage took)."""

    def __init__(self, size: int):
        self.size = max(0, size)
        self._dir = Path(tempfile.mkdtemp(prefix="scarlab-kernels-"))
        self._ready: list[WarmKernel] = []
        self._starting = 0
        self._cond = threading.Condition()
        self._closed = False

    def __enter__(self) -> "WarmKernels":
        for _ in range(self.size):
            self._spawn()
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._closed = True
            while self._starting:
                self._cond.wait()
            idle, self._ready = self._ready, []
        for k in idle:
            k.discard()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _spawn(self) -> None:
        with self._cond:
            if self._closed or interrupts.STOP.is_set():
                return
            self._starting += 1
        threading.Thread(target=self._start_one, daemon=True, name="scarlab-warm-kernel").start()

    def _start_one(self) -> None:
        kernel = None
        try:
            kernel = WarmKernel(self._dir)
        except OSError:
            pass  # no warm kernel this time: the stage that would take it starts cold
        with self._cond:
            self._starting -= 1
            if kernel is not None:
                self._ready.append(kernel)
            self._cond.notify_all()

    def take(self) -> WarmKernel | None:
        """A waiting kernel (one still starting is waited for: it is ahead of a cold start), and its replacement
        started; None when there is none (the caller starts a kernel cold)."""
        with self._cond:
            while not self._ready and self._starting and not self._closed:
                self._cond.wait()
            kernel, gone = None, 0
            while self._ready and kernel is None:
                kernel = self._ready.pop(0)
                if not kernel.alive():  # died while waiting (killed, out of memory): the next one, or a cold start
                    kernel.discard()
                    kernel, gone = None, gone + 1
        for _ in range(gone + (kernel is not None)):  # the pool keeps its size
            self._spawn()
        return kernel


def _main() -> None:
    """The waiting process: import :data:`PRELOAD`, read one connection file path, become the ipykernel."""
    import importlib
    import runpy

    for name in PRELOAD:
        with contextlib.suppress(Exception):  # a module that fails here fails again, visibly, in the notebook
            importlib.import_module(name)
    connection_file = sys.stdin.readline().strip()
    if not connection_file:
        return  # the pool closed without using it
    sys.stdin.close()
    sys.stdin = open(os.devnull)
    sys.argv = [sys.argv[0], "-f", connection_file]
    runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _main()
