"""The scheduler: a plan's stages executed in dependency order, by one of two executors.

:func:`schedule` starts a stage once every stage it depends on has completed (``deps``) and every stage it waits
for has finished (``after``). A stage whose dependency failed is ``blocked``; after a Ctrl-C or SIGTERM every stage
not yet started is blocked; a current stage (:func:`scarlab.pipeline.stage_state`) is reused unless a stage it
depends on was just executed, which forces it to run again. A progress bar and one log line per stage tell it.

Executors: :class:`Local` runs each stage in a kernel of this machine, ``jobs`` at a time (`scarlab pipeline`;
``jobs=1`` is `scarlab sweep --sequential`); :class:`Ray` submits each stage as a Ray task with its resource
request (`scarlab sweep`), gives up on a task no live node can run, and cancels every task on a second Ctrl-C.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from .. import interrupts
from ..errors import ScarlabError
from ..runs import RunDir
from .plan import StageSpec
from .stage import StageFailed, ensure_kernel, execute_stage, stage_state
from .warm import WarmKernels
from .warm import enabled as warm_enabled

POLL_S = 5.0  # how often a waiting Ray executor checks that every running task can still be scheduled
RESOURCE_KEYS = ("num_cpus", "num_gpus")
RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU"}  # the cluster's names of the two built-in resources
MARKS = {"complete": "done", "skipped": "reuse", "failed": "FAIL", "blocked": "skip"}


@dataclass
class StageResult:
    id: str
    kind: str
    label: str
    status: str
    """complete (executed now), skipped (reused), failed, or blocked (a dependency failed)."""
    run_dir: str
    seconds: float = 0.0
    error: str | None = None
    info: dict = field(default_factory=dict)


@dataclass
class PipelineResult:
    """What :func:`schedule` returns to `scarlab pipeline` and `scarlab sweep`."""

    config: object
    stages: list[StageResult]
    summary_csv: Path | None
    wall_s: float
    interrupted: bool = False
    """a Ctrl-C / SIGTERM stopped it before every stage ran."""
    timings: dict = field(default_factory=dict)
    """stage id -> {started, finished, host, node} of the stages executed now."""
    backend: str = "local"
    """the executor: local, sequential or ray."""

    @property
    def ok(self) -> bool:
        return not any(s.status in ("failed", "blocked") for s in self.stages)

    def by_status(self, status: str) -> list[StageResult]:
        return [s for s in self.stages if s.status == status]

    @property
    def failed(self) -> list[StageResult]:
        return self.by_status("failed")

    def summary(self):
        """DIR/summary.csv as a DataFrame (None without evaluation)."""
        import pandas as pd
        if not (self.summary_csv and self.summary_csv.is_file()):
            return None
        return pd.read_csv(self.summary_csv, dtype={"forget_classes": str})

    def table(self):
        import pandas as pd
        return pd.DataFrame([dataclasses.asdict(s) for s in self.stages]).drop(columns=["info"])


# ============================================================================================ one stage
@contextlib.contextmanager
def env(**values):
    """Set environment variables (None: leave as is) for the block; restore them afterwards."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is not None:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stage_env(threads: int | None, **values):
    """The environment stage kernels inherit: torch threads, and OpenMP threads that wait passively — spinning
    ones make small models several times slower as soon as another process shares the cores (measured: smallcnn
    training step 0.84 s -> 0.45 s on a busy 2-core machine with PASSIVE); a user's own setting wins."""
    return env(**values, SCARLAB_THREADS=threads, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))


def run_stage(spec: StageSpec | dict, force: bool = False, kernel: str | None = None, say=print,
              warm: WarmKernels | None = None) -> dict:
    """One stage (:func:`scarlab.pipeline.execute_stage`) in whatever process runs it; never raises for a failed
    stage. Returns {started, finished, error, reused, host}."""
    started, error, reused = time.time(), None, False
    try:
        reused = getattr(execute_stage(spec, kernel_name=kernel, force=force, say=say, warm=warm), "reused", False)
    except StageFailed as exc:
        error = exc.message
    except Exception as exc:  # noqa: BLE001 - reported as this stage's failure; the others carry on
        error = f"{type(exc).__name__}: {exc}"
    return {"started": started, "finished": time.time(), "error": error, "reused": reused,
            "host": socket.gethostname()}


# ============================================================================================ executors
class Local:
    """Runs each stage in a kernel of this machine, ``jobs`` at a time; ``threads``: torch threads per kernel.
    Kernels are forked from this process's zygote (:mod:`scarlab.pipeline.warm`; ``warm``: the caller's, already
    importing)."""

    def __init__(self, jobs: int = 1, threads: int | None = None, name: str = "local",
                 warm: WarmKernels | None = None):
        self.room, self.threads, self.name, self.warm = jobs, threads, name, warm
        self.kernel = ensure_kernel()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "Local":
        self._stack.enter_context(stage_env(self.threads))  # once: threads share this process's environment
        if self.warm is None and warm_enabled():  # a pool of the caller's, or one of its own
            self.warm = self._stack.enter_context(WarmKernels())
        self.pool = self._stack.enter_context(ThreadPoolExecutor(max_workers=self.room))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def submit(self, spec: StageSpec, force: bool, say):
        return self.pool.submit(run_stage, spec, force, self.kernel, say, self.warm)

    def wait(self, running: dict):
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        handle = next(iter(done))
        return handle, handle.result()


@contextlib.contextmanager
def _cwd(path: str | None):
    """Run in ``path`` (the scheduling process's working folder) when this node has it, so that relative paths in
    a stage (``data_root``, ...) mean on a Ray worker what they mean locally."""
    old = os.getcwd()
    moved = bool(path) and os.path.isdir(path) and os.path.realpath(path) != os.path.realpath(old)
    if moved:
        os.chdir(path)
    try:
        yield
    finally:
        if moved:
            os.chdir(old)


def _ray_task(spec: dict, threads: int | None, force: bool, values: dict, cwd: str) -> dict:
    """The Ray task: one stage, and which node of the cluster ran it (nodes of one machine share a host name). Its
    kernel is forked from the Ray worker process's zygote (:mod:`scarlab.pipeline.warm`), which the worker's later
    tasks fork from too."""
    import ray

    warm = WarmKernels() if warm_enabled() else contextlib.nullcontext()
    with stage_env(threads, **values), _cwd(cwd), warm as pool:
        out = run_stage(spec, force, warm=pool)
    out["node"] = ray.get_runtime_context().get_node_id()
    return out


def _ray_request(res: dict) -> dict:
    """A resource dict {num_cpus, num_gpus, custom...} in the cluster's names: {"CPU": 1, "worker_node": 1} (zeros
    dropped)."""
    return {RAY_NAMES.get(k, k): v for k, v in res.items() if v > 0}


class Ray:
    """Submits each stage as a Ray task asking for ``resources(spec)`` ({num_cpus, num_gpus, custom name: amount});
    Ray queues tasks until their resources are free. A task that no live node can run for
    ``unschedulable_timeout`` seconds is cancelled and reported failed. ``shutdown``: end the Ray connection on
    exit (one this sweep started)."""

    name, room = "ray", float("inf")

    def __init__(self, ray, resources, threads: int | None, unschedulable_timeout: float, shutdown: bool = False):
        self.ray, self.resources, self.threads = ray, resources, threads
        self.timeout, self.shutdown = unschedulable_timeout, shutdown
        # the workers do not inherit this process's environment: its SCARLAB_* settings (data cache, ...) go along
        self.env = {k: v for k, v in os.environ.items() if k.startswith("SCARLAB_") and k != "SCARLAB_THREADS"}
        self.cwd = os.getcwd()
        self.fn = ray.remote(_ray_task)
        self.requests: dict = {}  # ref -> the task's request in the cluster's resource names
        self.unschedulable: dict = {}  # ref -> since when no live node can run it
        self.given_up: dict = {}  # ref -> the failed result of a task cancelled as unschedulable, not returned yet
        self.aborted = False  # tasks cancelled by a second Ctrl-C / SIGTERM

    def __enter__(self) -> "Ray":
        return self

    def __exit__(self, *exc) -> None:
        if self.shutdown and self.ray.is_initialized():
            self.ray.shutdown()

    def submit(self, spec: StageSpec, force: bool, say):
        res = self.resources(spec)
        threads = self.threads or max(1, round(res["num_cpus"]))
        custom = {k: v for k, v in res.items() if k not in RESOURCE_KEYS}
        ref = self.fn.options(num_cpus=res["num_cpus"], num_gpus=res["num_gpus"], **({"resources": custom}
                              if custom else {}), max_retries=1, name=spec.label).remote(
            spec.to_dict(), threads, force, self.env, self.cwd)
        self.requests[ref] = _ray_request(res)
        return ref

    def wait(self, running: dict):
        """The next finished task and its result; never waits forever: a task that no live node can run is
        cancelled after unschedulable_timeout and returned as failed."""
        while True:
            if interrupts.ABORT.is_set() and not self.aborted:  # second Ctrl-C / SIGTERM: stop every task now
                self.aborted = True
                for ref in running:
                    with contextlib.suppress(Exception):
                        self.ray.cancel(ref, force=True)
            for ref in [r for r in self.given_up if r in running]:
                return ref, self.given_up.pop(ref)
            ready, _ = self.ray.wait(list(running), num_returns=1, timeout=POLL_S)
            if ready:
                ref = ready[0]
                self._forget(ref)
                try:
                    return ref, self.ray.get(ref)
                except self.ray.exceptions.RayError as exc:  # the worker died (memory, node lost): stage failed
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    if self.aborted:
                        first, exc = "stopped by the user (second Ctrl-C or SIGTERM)", None
                    return ref, _lost(running[ref], f"interrupted: {first}" if exc is None
                                      else f"{type(exc).__name__}: {first}")
            self._give_up_unschedulable(running)

    def _forget(self, ref):
        self.requests.pop(ref, None)
        self.unschedulable.pop(ref, None)

    def _give_up_unschedulable(self, running: dict) -> None:
        """Cancel every task that no live node has been able to run for unschedulable_timeout (its result, a
        failure, goes to given_up)."""
        try:
            nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        except Exception:  # noqa: BLE001 - the GCS is busy or restarting: check again at the next poll
            return
        now = time.time()
        for ref in running:
            if ref in self.given_up:
                continue
            need = self.requests.get(ref, {})
            if any(all(node.get(k, 0) >= v for k, v in need.items()) for node in nodes):
                self.unschedulable.pop(ref, None)
                continue
            since = self.unschedulable.setdefault(ref, now)
            if now - since >= self.timeout:
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)
                self._forget(ref)
                needs = ", ".join(f"{k}={v:g}" for k, v in need.items())
                self.given_up[ref] = _lost(running[ref], f"unschedulable: for {now - since:.0f}s no live node of "
                                           f"the Ray cluster had the resources of this task ({needs}); was its node "
                                           "lost? Rerun the sweep to resume it")


def _lost(spec: StageSpec, error: str) -> dict:
    """The result of a task that Ray lost (its worker or node died, or it could not be scheduled). A run the
    stage had started and left ``running`` is marked failed, so that its folder does not read as in progress
    (on another machine the scheduler cannot see that the writing process is gone)."""
    if spec.creates_run and (Path(spec.run_dir) / "manifest.json").is_file():
        with contextlib.suppress(Exception):
            run = RunDir(spec.run_dir)
            if run.manifest.get("status") == "running":
                run.finish("failed", error=error)
    return {"started": None, "finished": time.time(), "error": error, "reused": False, "host": None}


# ============================================================================================ the loop
def schedule(specs: list[StageSpec], executor, config, root: Path, what: str = "pipeline", progress: bool = True,
             force: bool = False, since: float | None = None, events=None) -> PipelineResult:
    """Execute ``specs`` (in dependency order, as planned) with ``executor`` (entered by the caller); ``root`` is
    the pipeline root the log lines show paths from, ``since`` the perf_counter time the command started.
    ``events``: called with ``{"stage", "label", "kind", "run_dir", "status", "time"[, "seconds", "error"]}`` when a
    stage starts (status ``running``) and when it ends (complete, skipped, failed, blocked): what a job view
    (:mod:`scarlab.jobs`) follows."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter() if since is None else since
    by_id = {s.id: s for s in specs}
    results: dict[str, StageResult] = {}
    timings: dict[str, dict] = {}
    running: dict = {}
    pending = list(specs)
    bar = tqdm(total=len(specs), desc=what, unit="stage", disable=not progress, dynamic_ncols=True)
    log = bar.write if progress else (lambda msg: None)
    notice = log if progress else print  # interrupts and lock waits are said even without a progress display

    def counts() -> str:  # "running" = submitted and unfinished (on Ray: running or queued for resources)
        n = {k: sum(r.status == k for r in results.values()) for k in MARKS}
        return (f"done {n['complete']}, reused {n['skipped']}, running {len(running)}, failed {n['failed']}, "
                f"blocked {n['blocked']}, waiting {len(pending)}")

    def finish(spec: StageSpec, status: str, out: dict | None = None, error: str | None = None) -> None:
        out = out or {}
        seconds = out["finished"] - out["started"] if out.get("started") else 0.0
        results[spec.id] = StageResult(spec.id, spec.kind, spec.label, status, spec.run_dir, round(seconds, 2),
                                       error, spec.info)
        if out:
            timings[spec.id] = {k: out.get(k) for k in ("started", "finished", "host", "node")}
        tell(spec, status, seconds=round(seconds, 2), error=error)
        where = Path(spec.run_dir)  # a given original may lie outside the root: shown in full
        rel = where.relative_to(root).as_posix() or "." if where.is_relative_to(root) else str(where)
        log(f"[{MARKS[status]:5s}] {spec.label:38s}{f'{seconds:7.1f}s' if out else ' ' * 8}  {rel}"
            + (f"\n        {error}" if error else ""))
        bar.update(1)

    def tell(spec: StageSpec, status: str, **extra) -> None:
        if events is not None:
            with contextlib.suppress(Exception):  # a job view's file must never stop the pipeline
                events({"stage": spec.id, "label": spec.label, "kind": spec.kind, "run_dir": spec.run_dir,
                        "status": status, "time": time.time(), **extra})

    def start(spec: StageSpec) -> None:
        bad = [d for d in spec.deps if results[d].status in ("failed", "blocked")]
        # a stage whose input was just re-made runs again, even if its own record looks current
        upstream_ran = any(results[d].status == "complete" for d in spec.deps)
        if interrupts.STOP.is_set():
            finish(spec, "blocked", error="not run: interrupted")
        elif bad:
            finish(spec, "blocked", error=f"not run: {by_id[bad[0]].label} did not complete")
        elif not force and not upstream_ran and stage_state(spec) == "current":
            finish(spec, "skipped")
        else:
            tell(spec, "running")
            running[executor.submit(spec, force or upstream_ran, notice)] = spec

    def ready(spec: StageSpec) -> bool:
        return all(d in results for d in spec.deps + spec.after)

    try:
        with interrupts.graceful(notice):
            while pending or running:
                for spec in list(pending):
                    if len(running) >= executor.room:
                        break
                    if ready(spec):
                        pending.remove(spec)
                        start(spec)
                bar.set_postfix_str(counts())
                if not running:
                    if pending and not any(ready(s) for s in pending):
                        raise ScarlabError(f"{what} plan has a dependency cycle or an unknown dependency")
                    continue
                handle, out = executor.wait(running)
                spec = running.pop(handle)
                status = "failed" if out["error"] else "skipped" if out.get("reused") else "complete"
                finish(spec, status, out, out["error"])
    finally:
        bar.close()
    stages = [results[s.id] for s in specs]
    summary = Path(root) / "summary.csv"
    ok = any(r.kind == "compare" and r.status in ("complete", "skipped") for r in stages) and summary.is_file()
    return PipelineResult(config, stages, summary if ok else None, time.perf_counter() - t0,
                          interrupted=interrupts.STOP.is_set(), timings=timings, backend=executor.name)
