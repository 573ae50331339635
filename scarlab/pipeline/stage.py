"""One stage: its notebook executed by papermill in a kernel of this interpreter, its record, and whether a
previous execution can be reused (:func:`stage_state`)."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

from .. import interrupts
from ..errors import ScarlabError, disk_error
from ..runs import RunDir, clear_run, files_intact, read_json, write_json
from .config import AUDIT_STAGES
from .plan import StageSpec, fingerprint, notebook_hash, notebook_source
from .warm import WarmKernel, WarmKernels


class StageFailed(ScarlabError):
    """A stage's notebook raised; ``message`` is the notebook cell's error (``ename: evalue``)."""

    def __init__(self, stage_id: str, message: str):
        super().__init__(f"{stage_id}: {message}")
        self.stage_id, self.message = stage_id, message


# ============================================================================================ the kernel
def _cache_dir() -> Path:
    return Path(os.environ.get("SCARLAB_CACHE", Path.home() / ".cache" / "scarlab"))


@functools.lru_cache(maxsize=None)
def ensure_kernel() -> str:
    """The name of a Jupyter kernel that runs *this* interpreter (the one scarlab is installed in).

    The ``python3`` kernelspec is used when it starts this interpreter (jupyter_client runs a spec whose
    command is plain ``python`` with ``sys.executable``); otherwise a ``python3`` spec pointing at
    ``sys.executable`` is written under the scarlab cache and put first on ``JUPYTER_PATH``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    plain = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    try:
        exe = KernelSpecManager().get_kernel_spec("python3").argv[0]
        if exe in plain or Path(exe).resolve() == Path(sys.executable).resolve():
            return "python3"
    except (NoSuchKernel, IndexError, OSError):
        pass
    key = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    home = _cache_dir() / "jupyter" / key
    kdir = home / "kernels" / "python3"
    kdir.mkdir(parents=True, exist_ok=True)
    write_json(kdir / "kernel.json", {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                      "display_name": f"Python 3 ({sys.prefix})", "language": "python"})
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(home)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p])
    return "python3"


EXIT_POLL_S = 0.01
"""how often a stage's kernel is asked whether it has exited after its shutdown request (jupyter_client: every 0.1 s;
a warm kernel's answer is a look-up in what its zygote reported)"""


@functools.cache
def _ready_client():
    """jupyter_client's AsyncKernelClient, less 0.2 s of waiting per kernel start. Its ``wait_for_ready`` checks that
    IOPub is connected by waiting up to 0.2 s for any message after the kernel_info reply, then drains IOPub until
    0.2 s pass with nothing: every stage waited those last 0.2 s. Here the drain ends at the kernel's "idle" status
    for the request it answered (ipykernel publishes it after the reply), so a kernel that is ready costs no wait;
    one whose idle status is not seen within 0.2 s is asked again, as jupyter_client does."""
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient

    class _ReadyClient(AsyncKernelClient):
        async def _idle_after(self, msg_id: str, within: float) -> bool:
            end = time.monotonic() + within
            while (left := end - time.monotonic()) > 0:
                try:
                    msg = await self.iopub_channel.get_msg(timeout=left)
                except Empty:
                    return False
                if (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"
                        and msg["parent_header"].get("msg_id") == msg_id):
                    return True
            return False

        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except Empty:
                    reply = None
                if (reply is not None and reply["msg_type"] == "kernel_info_reply"
                        and await self._idle_after(reply["parent_header"].get("msg_id"), 0.2)):
                    self._handle_kernel_info_reply(reply)
                    with contextlib.suppress(Empty):
                        while True:  # anything else already there (none expected)
                            await self.iopub_channel.get_msg(timeout=0)
                    return
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    return _ReadyClient


def _kernel_manager(log_path: Path, warm: WarmKernel | None = None):
    """An AsyncKernelManager whose kernel writes its own stdout/stderr to ``log_path`` (not our terminal); with
    ``warm``, the kernel is forked from the zygote (:mod:`scarlab.pipeline.warm`) instead of launched. Its client
    and its wait for the kernel's exit skip jupyter_client's fixed waits (:func:`_ready_client`, :data:`EXIT_POLL_S`)."""
    from jupyter_client.manager import AsyncKernelManager

    class _LoggedKernelManager(AsyncKernelManager):
        client_factory = _ready_client()

        async def _async_wait(self, pollinterval: float = EXIT_POLL_S) -> None:
            await super()._async_wait(min(pollinterval, EXIT_POLL_S))

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            if warm is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            # what LocalProvisioner.launch_kernel does with the process it launches, for one forked from the zygote
            # (the same environment, folder and options — nbclient's --HistoryManager.hist_file=:memory: among them:
            # without it every stage added a session to the user's ~/.ipython history; its own session, so its
            # process group is its pid)
            try:
                warm.start(self.connection_file, kw.get("cwd"), kw.get("env"),
                           args=kernel_cmd[kernel_cmd.index("-f") + 2:] if "-f" in kernel_cmd else [])
            except OSError:  # the zygote ended just now (idle, killed): this stage starts its kernel cold
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            p = self.provisioner
            p.process, p.pid, p.cwd = warm.process, warm.process.pid, kw.get("cwd") or os.getcwd()
            p.pgid = warm.process.pid
            self._reconcile_connection_info(p.connection_info)

        async def start_kernel(self, **kw):
            fh = open(log_path, "ab")
            kw.setdefault("stdout", fh)
            kw.setdefault("stderr", fh)
            try:
                out = await super().start_kernel(**kw)
            finally:
                fh.close()  # the kernel process holds its own copy of the descriptor
            process = getattr(self.provisioner, "process", None)
            if process is not None:  # so a second Ctrl-C can kill it
                interrupts.track_kernel(process)
            return out

    return _LoggedKernelManager


# ============================================================================================ records and reuse
def _stages(path: Path) -> dict:
    """The ``stages`` section of a record file (a run's manifest.json, the root's pipeline.json); {} if unreadable."""
    try:
        return read_json(path).get("stages") or {}
    except (OSError, ValueError):
        return {}


def _record(spec: StageSpec) -> dict | None:
    return _stages(Path(spec.record)).get(spec.kind)


def _set_record(spec: StageSpec, entry: dict | None, **fields) -> None:
    """Write the stage's entry (None: remove it) in its record file's ``stages``, and ``fields`` beside them."""
    path = Path(spec.record)
    data = read_json(path) if path.is_file() else {}
    stages = {k: v for k, v in (data.get("stages") or {}).items() if k != spec.kind}
    write_json(path, {**data, **fields, "stages": {**stages, **({spec.kind: entry} if entry else {})}})


def _run_state(run_dir: str) -> list:
    """What the compare stage's result depends on for one run: its evaluation's record, or its status."""
    stages = _stages(Path(run_dir) / "manifest.json")
    rec = stages.get("evaluate")
    state = [rec.get("status"), rec.get("fingerprint")] if rec else [_manifest_status(run_dir), None]
    # an audit adds ulira/* metrics: the summary is made again (without one, the state is what it always was)
    for kind in AUDIT_STAGES.values():  # the online audit's entry as before, an offline one named
        entry = stages.get(kind)
        if entry:
            state += [entry.get("status"), entry.get("fingerprint"), *([kind] if kind != "audit" else [])]
    return state


def effective(spec: StageSpec) -> StageSpec:
    """The spec as it will run now. The compare stage summarises every run of the plan that exists — failed
    ones appear in the summary with their status and error — so its fingerprint covers each run's state."""
    if spec.kind != "compare":
        return spec
    runs = [r for r in spec.params["runs"] if (Path(r) / "manifest.json").is_file()]
    params = {**spec.params, "runs": runs}
    return dataclasses.replace(spec, params=params, fingerprint=fingerprint(
        "compare", {**params, "states": [_run_state(r) for r in runs]}, code=notebook_hash(spec.notebook)))


def stage_state(spec: StageSpec) -> str:
    """``current`` (reusable), ``failed``, ``stale`` (done with another configuration or notebook) or
    ``missing``: the stage's entry in its record file says which, with the run's status and files."""
    if spec.given:  # never executed: usable while complete and intact
        ok = _manifest_status(spec.run_dir) == "complete" and files_intact(spec.run_dir)
        return "current" if ok else "failed"
    spec = effective(spec)
    rec = _record(spec)
    if rec is None:
        return "failed" if _manifest_status(spec.run_dir) == "failed" and spec.creates_run else "missing"
    if rec.get("status") != "complete":
        return "failed"
    if rec.get("fingerprint") != spec.fingerprint:
        return "stale"
    if spec.creates_run and (_manifest_status(spec.run_dir) != "complete" or not files_intact(spec.run_dir)):
        return "failed"
    if not Path(spec.output).is_file():
        return "missing"
    if spec.kind == "shadows" and not _members_intact(spec.params.get("members_file")):
        return "failed"  # a shadow member was removed or damaged since: made again (the others are reused)
    return "current"


def _members_intact(members_file: str | None) -> bool:
    """Every shadow member a shadow stage listed (06_shadows writes ``members_file``) is complete and intact."""
    try:
        members = read_json(Path(members_file)).get("members") or []
    except (OSError, ValueError, TypeError):
        return False
    return all(_manifest_status(m) == "complete" and files_intact(m) for m in members)


def _manifest_status(run_dir: str) -> str | None:
    """The run's status (a ``running`` run whose process is gone reads ``failed``); None without a manifest."""
    try:
        return RunDir(run_dir).status if (Path(run_dir) / "manifest.json").exists() else None
    except (OSError, ValueError):
        return None


# ============================================================================================ execution
def _clear(run_dir: Path) -> None:
    """Remove a previous attempt of a run directory: only scarlab's own files (:func:`scarlab.runs.clear_run`),
    and never while a live process is writing it."""
    if not run_dir.exists():
        return
    holder = RunDir(run_dir).live_holder() if run_dir.is_dir() else None
    if holder:
        raise ScarlabError(f"{run_dir} is being written by process {holder} on this machine; wait for it to finish "
                           "or stop it, then rerun")
    if not run_dir.is_dir():
        raise ScarlabError(f"{run_dir} exists and is not a scarlab run directory; refusing to replace it — "
                           "choose another --out")
    if any(run_dir.iterdir()):
        clear_run(run_dir)


def _lock_path(spec: StageSpec) -> Path:
    """Beside a run directory for the stage that creates it (it is deleted and remade under the lock), else
    inside it (evaluate, compare)."""
    run_dir = Path(spec.run_dir)
    return run_dir.parent / f".{run_dir.name}.lock" if spec.creates_run else run_dir / f".{spec.kind}.lock"


def execute_stage(spec: StageSpec | dict, kernel_name: str | None = None, force: bool = False,
                  say=print, warm: WarmKernels | None = None) -> RunDir:
    """Run one stage's notebook through papermill into its run directory; returns that ``RunDir``.

    A current stage (see :func:`stage_state`) is not run again unless ``force``. The executed notebook is
    kept in the run directory; the stage's record is written last. On failure the run is marked failed with
    the notebook cell's error message and :class:`StageFailed` is raised. Safe to call in another process:
    the stage's lock makes a second caller wait for the first, then reuse its result (``say`` tells it waits).
    """
    spec = StageSpec.from_dict(spec) if isinstance(spec, dict) else spec
    if spec.given:  # a run the user gave is read, never made again (not even with force)
        if stage_state(spec) == "current":
            return _reused(spec)
        raise StageFailed(spec.id, f"the given original {spec.run_dir} is no longer a complete, intact run")
    if not force and stage_state(spec) == "current":
        return _reused(spec)
    with interrupts.stage_lock(_lock_path(spec), spec.label, say=say):
        # another process may have finished this very stage while we waited for its lock
        if not force and stage_state(spec) == "current":
            return _reused(spec)
        return _execute_locked(effective(spec), kernel_name, warm)


def _reused(spec: StageSpec) -> RunDir:
    run = RunDir(spec.run_dir)
    run.reused = True  # the scheduler reports it as reused, and its dependants need not run again
    return run


def run_notebook(source: str | Path, output: str | Path, parameters: dict, kernel: WarmKernel | None = None,
                 kernel_name: str | None = None, log: Path | None = None) -> None:
    """Execute one notebook (``.ipynb``, or a jupytext ``.py``) with papermill into ``output``, in a kernel of this
    interpreter: ``kernel`` (one :meth:`WarmKernels.take` gave: forked from the zygote) or, without it, one started
    cold. The kernel's stdout and stderr go to ``log`` (default: the warm kernel's log, else beside ``output``), not
    our terminal. Papermill's errors propagate (``PapermillExecutionError`` for a cell that raised)."""
    import jupytext
    import papermill

    log = Path(log or (kernel.log if kernel is not None else Path(output).with_suffix(".kernel.log")))
    try:
        papermill.execute_notebook(jupytext.read(source), str(output), parameters=parameters,
                                   kernel_name=kernel_name or ensure_kernel(), language="python",
                                   progress_bar=False, log_output=False, start_timeout=180,
                                   kernel_manager_class=_kernel_manager(log, kernel))
    finally:
        if kernel is not None and not kernel.started:  # papermill failed before it needed a kernel
            kernel.discard()


def _execute_locked(spec: StageSpec, kernel_name: str | None, warm: WarmKernels | None = None) -> RunDir:
    from papermill.exceptions import PapermillExecutionError

    run_dir = Path(spec.run_dir)
    if spec.creates_run:
        _clear(run_dir)
    else:
        if _record(spec) is not None:
            _set_record(spec, None)
        Path(spec.output).unlink(missing_ok=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = run_dir.parent / f".{run_dir.name}.{spec.kind}.{os.getpid()}.{time.time_ns()}.ipynb"
    source = notebook_source(spec.notebook)
    t0, error = time.perf_counter(), None
    waiting = warm.take() if warm is not None else None  # a process that has imported torch & co. already
    kernel_log = waiting.log if waiting is not None else tmp.with_suffix(".kernel.log")
    try:
        run_notebook(source, tmp, spec.params, waiting, kernel_name, kernel_log)
    except PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}" if exc.evalue else exc.ename
    except Exception as exc:  # kernel died, timeout, unreadable notebook: still a failed stage, not a crash
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")
    if error is not None and interrupts.ABORT.is_set():
        error = "interrupted: stopped by the user (second Ctrl-C or SIGTERM)"
    seconds = time.perf_counter() - t0
    status = _manifest_status(spec.run_dir)
    if error is None and spec.creates_run and status != "complete":
        error = f"the notebook finished but {run_dir} has status {status!r}"
    try:
        _record_outcome(spec, error, status, seconds, str(source), tmp, kernel_log)
    except OSError as exc:  # a full or read-only disk: one line, the run marked failed, no temporary file left
        error = str(disk_error(exc, run_dir) or f"{type(exc).__name__}: {exc}")
        if spec.creates_run and (run_dir / "manifest.json").is_file():
            RunDir(run_dir).mark_failed(error)
        for f in (tmp, kernel_log):
            with contextlib.suppress(OSError):
                f.unlink()
    if error is not None:
        raise StageFailed(spec.id, error)
    return RunDir(run_dir)


def _record_outcome(spec: StageSpec, error: str | None, status: str | None, seconds: float, source: str,
                    tmp: Path, kernel_log: Path) -> None:
    """After the notebook: the run marked failed on error, the executed notebook moved into place, the kernel log
    kept on failure, and the stage's record written last."""
    run_dir = Path(spec.run_dir)
    # mark failure in the run itself (creating a manifest if the notebook failed before making the run)
    if error is not None and spec.creates_run:
        if status is None:  # failed before the run existed (bad input, missing parent): make it visible
            try:
                RunDir.create(run_dir, stage=spec.kind, config=spec.params, overwrite=True).finish("failed",
                                                                                                error=error)
            except ScarlabError:  # a partial folder RunDir will not replace: record the failure beside it
                run_dir.mkdir(parents=True, exist_ok=True)
                write_json(run_dir / "manifest.json", {"id": run_dir.name, "stage": spec.kind, "status": "failed",
                                                       "error": error, "finished": time.time(), "files": []})
        else:
            RunDir(run_dir).finish("failed", error=error)
    run_dir.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        tmp.replace(spec.output)
    if kernel_log.exists():  # kept only when the stage failed: the kernel's own messages may explain why
        if error is not None and kernel_log.stat().st_size:
            shutil.move(kernel_log, run_dir / f"kernel_{spec.kind}.log")  # a warm kernel's log: another folder
        else:
            kernel_log.unlink()
    output = Path(spec.output).name
    files = {}
    if Path(spec.record).name == "manifest.json":
        files["files"] = sorted(set(RunDir(run_dir).manifest.get("files", [])) | {output})
    _set_record(spec, {"status": "failed" if error else "complete", "error": error, "fingerprint": spec.fingerprint,
                       "seconds": round(seconds, 3), "finished": time.time(), "notebook": source,
                       "output": output}, **files)
