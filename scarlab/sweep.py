"""Sweeps: a grid of pipeline configurations, its stages executed as Ray tasks (or in this process).

A sweep file holds the keys of a pipeline configuration (:class:`scarlab.pipeline.PipelineConfig`); a list
given for a single-valued key (``datasets`` / ``dataset``, ``models``, ``scenarios``, ``forget_sizes``,
``epochs``, ...) is a grid axis, and each point of the grid is planned by :func:`scarlab.pipeline.plan`.
``methods``, ``forget_classes`` (one split per entry) and ``seeds`` are lists the pipeline expands itself.
Stages that several points share (same run directory: one original per data set × model × training
configuration) run once, and one compare stage summarises every run at the sweep root (``summary.csv``).

Sweep-only keys: ``out`` (the runs root, may be a shared path), ``resources`` (per Ray task:
``num_cpus`` default 1, ``num_gpus`` default 1 for stages with ``device: cuda...`` else 0, ``custom`` Ray
resources such as ``{worker_node: 1}``, and per stage kind overrides such as ``unlearn: {num_gpus: 0.5}``),
``num_cpus`` (size of the local Ray instance), ``address`` (join a running Ray cluster instead) and
``unschedulable_timeout`` (seconds a task may wait while no live node of the cluster can run it).

Each stage is :func:`scarlab.pipeline.execute_stage` in a Ray task, submitted once its dependencies have
finished; reuse, failure records and blocking follow the pipeline's rules, so re-running a sweep resumes it.
A task whose node is lost is retried once by Ray; one that no live node can run any more (its resources were
on the lost node) is cancelled after ``unschedulable_timeout`` and recorded as failed, so the sweep ends and a
rerun resumes it. The local Ray instance a sweep starts listens on 127.0.0.1 only (:func:`init_ray`).
Ray is imported only here, when a sweep runs on it; ``sequential=True`` runs the same stages in-process.
"""
from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import itertools
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import interrupts
from .errors import ScarlabError
from .pipeline import (KINDS, PipelineConfig, PipelineResult, StageFailed, StageResult, StageSpec, _env,
                       config_from_dict, execute_stage, fingerprint, plan, stage_state)
from .runs import RunDir, write_json

PLURALS = {"datasets": "dataset", "models": "model", "scenarios": "scenario", "forget_sizes": "forget_size"}
PIPELINE_LISTS = {"methods", "forget_classes", "seeds", "params", "set"}  # expanded by plan() itself
SINGLE = {"out", "notebooks", "data_root", "threads"}  # where things are / how they run: never an axis
SWEEP_KEYS = ("out", "resources", "num_cpus", "address", "unschedulable_timeout")
RESOURCE_KEYS = ("num_cpus", "num_gpus")
RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU"}  # the cluster's names of the two built-in resources
RESERVED = {"CPU", "GPU", "memory", "object_store_memory", "num_cpus", "num_gpus"}  # not a custom resource name
LOOPBACK = "127.0.0.1"
UNSCHEDULABLE_TIMEOUT = 300.0
POLL_S = 5.0  # how often a waiting sweep checks that every running task can still be scheduled
RAY_MISSING = ("scarlab sweep runs its stages on Ray, which is not installed: pip install 'scarlab[ray]' "
               "(or run the same grid in this process with --sequential)")


@dataclass
class SweepConfig:
    grid: dict
    """pipeline keys; a list for a single-valued key is a grid axis."""
    out: str = "runs/sweep"
    """the sweep root (runs, summary.csv, sweep.json); on a cluster, a path every node sees."""
    resources: dict = field(default_factory=dict)
    """per Ray task: num_cpus, num_gpus, and {stage kind: {num_cpus, num_gpus}} overrides."""
    num_cpus: int | None = None
    """CPUs of the local Ray instance the sweep starts; None = all of this machine's."""
    address: str | None = None
    """join this Ray cluster ("auto", "HOST:6379") instead of starting a local instance."""
    unschedulable_timeout: float = UNSCHEDULABLE_TIMEOUT
    """seconds a submitted task may stay unschedulable (no live node has its resources, e.g. its node was
    lost) before it is cancelled and recorded as failed; raise it for clusters whose autoscaler adds nodes."""


def _amount(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ScarlabError(f"{what} must be a non-negative number, got {value!r}")
    return float(value)


def _custom(value, what: str) -> dict:
    """``custom: {worker_node: 1}``: Ray resources a node was started with (``ray start --resources``)."""
    if not isinstance(value, dict):
        raise ScarlabError(f"{what} must map Ray resource names to amounts, like {{worker_node: 1}}; got {value!r}")
    bad = sorted(str(k) for k in value if not isinstance(k, str) or not k or k in RESERVED)
    if bad:
        raise ScarlabError(f"{what}: {', '.join(bad)} is not a custom resource name (CPUs and GPUs are "
                           "num_cpus / num_gpus)")
    return {k: _amount(v, f"{what}.{k}") for k, v in value.items()}


def _resources(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ScarlabError(f"resources must be a mapping like {{num_cpus: 1, num_gpus: 0}}, got {value!r}")
    out: dict = {}
    for key, v in value.items():
        if key in RESOURCE_KEYS:
            out[key] = _amount(v, f"resources.{key}")
        elif key == "custom":
            out[key] = _custom(v, "resources.custom")
        elif key in KINDS and isinstance(v, dict):
            bad = sorted(set(v) - set(RESOURCE_KEYS) - {"custom"})
            if bad:
                raise ScarlabError(f"unknown resource(s) {', '.join(map(str, bad))} in resources.{key}; valid: "
                                   + ", ".join(RESOURCE_KEYS) + ", custom")
            out[key] = {k: _custom(x, f"resources.{key}.custom") if k == "custom" else
                        _amount(x, f"resources.{key}.{k}") for k, x in v.items()}
        else:
            raise ScarlabError(f"unknown resources key {key!r}; valid: {', '.join(RESOURCE_KEYS)}, custom (Ray "
                               f"resources such as {{worker_node: 1}}), or a stage kind ({', '.join(KINDS)}) "
                               "mapping to those")
    return out


def sweep_config(data: dict, out: str | None = None, num_cpus: int | None = None,
                 address: str | None = None, unschedulable_timeout: float | None = None) -> SweepConfig:
    """A SweepConfig from a sweep file's mapping; the keyword arguments (command-line options) override the
    file's values."""
    data = {str(k).replace("-", "_"): v for k, v in (data or {}).items()}
    if "jobs" in data:
        raise ScarlabError("jobs: a sweep schedules its stages through Ray; set resources.num_cpus per task and "
                           "--num-cpus for the local Ray instance instead")
    names = {f.name for f in dataclasses.fields(PipelineConfig)} - {"jobs"}
    valid = names | set(PLURALS) | set(SWEEP_KEYS) | {"no_retain", "set"}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ScarlabError(f"unknown sweep key(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    for plural, single in PLURALS.items():
        if plural in data and single in data:
            raise ScarlabError(f"give either {plural} or {single}, not both")
    file_out, file_cpus, file_address = (data.pop(k, None) for k in ("out", "num_cpus", "address"))
    if file_out is not None and not isinstance(file_out, str):
        raise ScarlabError(f"out takes one value, a folder path (got {file_out!r})")
    cpus = num_cpus if num_cpus is not None else file_cpus
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1):
        raise ScarlabError(f"num_cpus must be a positive integer, got {cpus!r}")
    address = address or file_address
    wait = data.pop("unschedulable_timeout", None)
    wait = unschedulable_timeout if unschedulable_timeout is not None else wait
    wait = UNSCHEDULABLE_TIMEOUT if wait is None else wait
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait <= 0:
        raise ScarlabError(f"unschedulable_timeout must be a positive number of seconds, got {wait!r}")
    resources = _resources(data.pop("resources", None))
    return SweepConfig(grid=data, out=str(out or file_out or "runs/sweep"), resources=resources, num_cpus=cpus,
                       address=str(address) if address else None, unschedulable_timeout=float(wait))


def grid_points(sc: SweepConfig) -> list[tuple[str, PipelineConfig]]:
    """Every point of the grid: (``"dataset=digits, model=tinycnn"``, its PipelineConfig)."""
    base, axes = {"out": sc.out}, {}
    for key, value in sc.grid.items():
        name = PLURALS.get(key, key)
        if isinstance(value, (list, tuple)) and name not in PIPELINE_LISTS:
            if name in SINGLE:
                raise ScarlabError(f"{key} takes one value, not a list ({value!r})")
            if not value:
                raise ScarlabError(f"{key} is an empty list: give at least one value")
            axes[name] = list(value)
        else:
            base[name] = value
    points = []
    for combo in itertools.product(*axes.values()):
        point = dict(zip(axes, combo))
        desc = ", ".join(f"{k}={v}" for k, v in point.items())
        points.append((desc, config_from_dict({**base, **point})))
    return points


def plan_sweep(sc: SweepConfig, remote: bool = True) -> list[StageSpec]:
    """Plan every grid point (validating each), keep each shared stage once, end with one compare stage.

    ``remote``: the stages run on Ray workers, so a ``cuda`` device is checked there, not on this machine
    (a cluster's head node often has no GPU); the device is a location, outside every fingerprint.
    """
    merged: dict[str, StageSpec] = {}
    compares: list[StageSpec] = []
    points = grid_points(sc)
    for desc, cfg in points:
        device = str(cfg.device)
        try:
            specs = plan(dataclasses.replace(cfg, device="auto") if remote and device.startswith("cuda") else cfg)
        except ScarlabError as exc:
            raise ScarlabError(f"grid point {desc}: {exc}" if len(points) > 1 and desc else str(exc)) from None
        for spec in specs:
            if "device" in spec.params:
                spec.params["device"] = device
            if spec.kind == "compare":
                compares.append(spec)
            elif spec.id not in merged:
                merged[spec.id] = spec
            elif merged[spec.id].fingerprint != spec.fingerprint:
                raise ScarlabError(f"grid points define stage {spec.id} differently ({desc}): an axis changes what "
                                   "it computes without moving its folder (e.g. embed); split the sweep in two")
    specs = list(merged.values())  # each plan is in dependency order, so the merged list is too
    if compares:
        runs = list(dict.fromkeys(r for c in compares for r in c.params["runs"]))
        params = {"runs": runs, "out_dir": compares[0].params["out_dir"]}
        specs.append(dataclasses.replace(compares[0], params=params, fingerprint=fingerprint("compare", params),
                                         deps=[], after=list(dict.fromkeys(a for c in compares for a in c.after))))
    return specs


def task_resources(spec: StageSpec, sc: SweepConfig) -> dict:
    """num_cpus / num_gpus (and custom Ray resources by name) of one stage's Ray task: defaults < resources <
    resources.<kind>."""
    device = spec.params.get("device")
    res = {"num_cpus": 1.0, "num_gpus": 1.0 if str(device).startswith("cuda") else 0.0}
    res.update({k: v for k, v in sc.resources.items() if k in RESOURCE_KEYS})
    if device is None:  # split and compare never touch a GPU
        res["num_gpus"] = 0.0
    kind = sc.resources.get(spec.kind, {})
    res.update({k: v for k, v in kind.items() if k in RESOURCE_KEYS})
    res.update({**sc.resources.get("custom", {}), **kind.get("custom", {})})
    return res


def _ray_request(res: dict) -> dict:
    """A task_resources dict in the cluster's names: {"CPU": 1, "GPU": 0, "worker_node": 1} (zeros dropped)."""
    return {RAY_NAMES.get(k, k): v for k, v in res.items() if v > 0}


def _forwarded_env() -> dict:
    """The SCARLAB_* settings of this process (data cache, ...), given to every task: on a cluster the workers
    do not inherit the environment of the process that runs the sweep. Threads are set per task."""
    return {k: v for k, v in os.environ.items() if k.startswith("SCARLAB_") and k != "SCARLAB_THREADS"}


@contextlib.contextmanager
def _cwd(path: str | None):
    """Run in ``path`` (the sweep's working folder) when this node has it, so that relative paths in a stage
    (``data_root``, ...) mean on a Ray worker what they mean with ``--sequential``."""
    old = os.getcwd()
    moved = bool(path) and os.path.isdir(path) and os.path.realpath(path) != os.path.realpath(old)
    if moved:
        os.chdir(path)
    try:
        yield
    finally:
        if moved:
            os.chdir(old)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _loopback_kept(ray):
    """Ray replaces a loopback node address (127.0.0.1, also the host of an ``--address``) by this machine's
    network address, so that other machines could join, and its servers then listen on every interface. With
    its "clusters enabled" switch off while ``ray.init`` runs (the RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 of
    single-machine platforms), 127.0.0.1 stays 127.0.0.1 and the GCS, raylet, object manager, agents and
    workers bind to loopback only."""
    try:
        from ray._private import ray_constants
    except ImportError:  # another Ray layout: nothing to switch
        yield
        return
    old = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if old is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if old is not None:
            ray_constants.ENABLE_RAY_CLUSTER = old


def init_ray(address: str | None = None, num_cpus: int | None = None, **kw):
    """``ray.init`` as a sweep calls it: join the cluster at ``address`` ("auto", "HOST:PORT"), else start a
    new local instance (RAY_ADDRESS is not consulted) with ``num_cpus`` CPUs whose every server listens on
    127.0.0.1 only. A cluster at a loopback address (one machine, ``ray start --node-ip-address 127.0.0.1``)
    is joined on loopback too. ``kw`` goes to ``ray.init`` (``_temp_dir``, ...)."""
    import ray

    kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR", **kw}
    if address:
        host = address.rsplit(":", 1)[0] if ":" in address else address
        with _loopback_kept(ray) if _is_loopback(host) else contextlib.nullcontext():
            return ray.init(address=address, **kw)
    with _loopback_kept(ray):
        return ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK, **kw)


def _execute(spec: dict, threads: int | None, force: bool, env: dict | None = None, cwd: str | None = None) -> dict:
    """One stage, in whatever process runs it (a Ray worker, or this one); never raises for a failed stage."""
    started, error = time.time(), None
    try:
        # as in run_pipeline: OpenMP threads that wait passively cost little when stages share the cores
        with _env(**{**(env or {}), "SCARLAB_THREADS": threads,
                     "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}), _cwd(cwd):
            execute_stage(spec, force=force)
    except StageFailed as exc:
        error = exc.message
    except Exception as exc:  # noqa: BLE001 - reported as this stage's failure; the sweep carries on
        error = f"{type(exc).__name__}: {exc}"
    return {"started": started, "finished": time.time(), "error": error, "host": socket.gethostname()}


def _execute_task(spec: dict, threads: int | None, force: bool, env: dict, cwd: str) -> dict:
    """The Ray task: one stage, and which node of the cluster ran it (nodes of one machine share a host name)."""
    import ray

    out = _execute(spec, threads, force, env, cwd)
    out["node"] = ray.get_runtime_context().get_node_id()
    return out


class _Sequential:
    """Runs each submitted stage in this process, one at a time (``--sequential``, and the bench's baseline)."""

    name, room = "sequential", 1

    def __init__(self, sc: SweepConfig, force: bool):
        self.threads, self.force = sc.grid.get("threads"), force

    def submit(self, spec: StageSpec):
        return spec.id

    def wait(self, running: dict):
        handle = next(iter(running))
        return handle, _execute(running[handle].to_dict(), self.threads, self.force)

    def close(self):
        pass


class _Ray:
    """Submits each stage as a Ray task with its resource request; joins or starts the Ray instance."""

    name, room = "ray", float("inf")  # Ray queues tasks until their resources are free

    def __init__(self, sc: SweepConfig, force: bool, specs: list[StageSpec]):
        try:
            import ray
        except ImportError:
            raise ScarlabError(RAY_MISSING) from None
        self.ray, self.sc, self.force = ray, sc, force
        self.env, self.cwd = _forwarded_env(), os.getcwd()
        self.requests: dict = {}  # ref -> the task's request in the cluster's resource names
        self.unschedulable: dict = {}  # ref -> since when no live node can run it
        self.given_up: dict = {}  # ref -> the failed result of a task cancelled as unschedulable, not returned yet
        self.aborted = False  # tasks cancelled by a second Ctrl-C / SIGTERM
        self.owned = not ray.is_initialized()  # a caller already connected (a notebook, tests): use that
        if self.owned:
            try:
                init_ray(sc.address, sc.num_cpus)
            except Exception as exc:  # no cluster at --address, a port in use, ...
                where = f"join the Ray cluster at {sc.address}" if sc.address else "start a local Ray instance"
                raise ScarlabError(f"cannot {where}: {type(exc).__name__}: {exc}") from None
        self.fn = ray.remote(_execute_task)
        total = ray.cluster_resources()
        for spec in specs:  # a request no node can satisfy would wait forever
            res = task_resources(spec, sc)
            for key, amount in res.items():
                name = RAY_NAMES.get(key, key)
                if amount > total.get(name, 0) and not sc.address:
                    self.close()
                    what = f"resources.{key} (or resources.{spec.kind}.{key})" if key in RESOURCE_KEYS else \
                        f"resources.custom.{key} (a local Ray instance has no custom resources; use --address)"
                    raise ScarlabError(f"stage {spec.label!r} asks for {key}={amount:g} but the Ray instance has "
                                       f"{total.get(name, 0):g} {name}(s); lower {what}"
                                       + (" or raise --num-cpus" if name == "CPU" else ""))

    def submit(self, spec: StageSpec):
        res = task_resources(spec, self.sc)
        threads = self.sc.grid.get("threads") or max(1, round(res["num_cpus"]))
        custom = {k: v for k, v in res.items() if k not in RESOURCE_KEYS}
        ref = self.fn.options(num_cpus=res["num_cpus"], num_gpus=res["num_gpus"], **({"resources": custom}
                              if custom else {}), max_retries=1, name=spec.label).remote(
            spec.to_dict(), threads, self.force, self.env, self.cwd)
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
            if now - since >= self.sc.unschedulable_timeout:
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)
                self._forget(ref)
                needs = ", ".join(f"{k}={v:g}" for k, v in need.items())
                self.given_up[ref] = _lost(running[ref], f"unschedulable: for {now - since:.0f}s no live node of "
                                           f"the Ray cluster had the resources of this task ({needs}); was its node "
                                           "lost? Rerun the sweep to resume it")

    def close(self):
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


def _lost(spec: StageSpec, error: str) -> dict:
    """The result of a task that Ray lost (its worker or node died, or it could not be scheduled). A run the
    stage had started and left ``running`` is marked failed, so that its folder does not read as in progress
    (on another machine the pipeline cannot see that the writing process is gone)."""
    if spec.creates_run and (Path(spec.run_dir) / "manifest.json").is_file():
        with contextlib.suppress(Exception):
            run = RunDir(spec.run_dir)
            if run.manifest.get("status") == "running":
                run.finish("failed", error=error)
    return {"started": None, "finished": time.time(), "error": error, "host": None}


@dataclass
class SweepResult(PipelineResult):
    timings: dict = field(default_factory=dict)
    """stage id -> {started, finished, host} of the stages executed now."""
    backend: str = "ray"


def run_sweep(sc: SweepConfig, sequential: bool = False, progress: bool = True, force: bool = False) -> SweepResult:
    """Plan the whole grid (validating everything first), execute it on Ray (or in-process), summarise."""
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    specs = plan_sweep(sc, remote=not sequential)
    backend = _Sequential(sc, force) if sequential else _Ray(sc, force, specs)
    root = Path(sc.out).expanduser().resolve()
    by_id = {s.id: s for s in specs}
    results: dict[str, StageResult] = {}
    timings: dict[str, dict] = {}
    running: dict = {}
    bar = tqdm(total=len(specs), desc="sweep", unit="stage", disable=not progress, dynamic_ncols=True)
    log = bar.write if progress else (lambda msg: None)

    def counts() -> str:  # "running" = submitted and unfinished (on Ray: running or queued for resources)
        n = {k: sum(r.status == k for r in results.values()) for k in ("complete", "skipped", "failed", "blocked")}
        return (f"done {n['complete']}, reused {n['skipped']}, running {len(running)}, failed {n['failed']}, "
                f"blocked {n['blocked']}, waiting {len(specs) - len(results) - len(running)}")

    def finish(spec: StageSpec, status: str, out: dict | None = None, error: str | None = None):
        out = out or {}
        seconds = out["finished"] - out["started"] if out.get("started") else 0.0
        results[spec.id] = StageResult(spec.id, spec.kind, spec.label, status, spec.run_dir, round(seconds, 2),
                                       error, spec.info)
        if out:
            timings[spec.id] = {k: out.get(k) for k in ("started", "finished", "host", "node")}
        mark = {"complete": "done", "skipped": "reuse", "failed": "FAIL", "blocked": "skip"}[status]
        rel = Path(spec.run_dir).relative_to(root).as_posix() if spec.run_dir != str(root) else "."
        log(f"[{mark:5s}] {spec.label:34s}{f'{seconds:7.1f}s' if out else ' ' * 8}  {rel}"
            + (f"\n        {error}" if error else ""))
        bar.update(1)
        bar.set_postfix_str(counts())

    notice = log if progress else print  # interrupts are said even without a progress display
    try:
        root.mkdir(parents=True, exist_ok=True)
        _write_yaml(sc, root / "sweep.yaml")
        pending = list(specs)
        with interrupts.graceful(notice):
            while pending or running:
                for spec in list(pending):
                    if len(running) >= backend.room:
                        break
                    if not all(d in results for d in spec.deps + spec.after):
                        continue
                    pending.remove(spec)
                    bad = [d for d in spec.deps if results[d].status in ("failed", "blocked")]
                    if interrupts.STOP.is_set():
                        finish(spec, "blocked", error="not run: interrupted")
                    elif bad:
                        finish(spec, "blocked", error=f"not run: {by_id[bad[0]].label} did not complete")
                    elif not force and stage_state(spec) == "current":
                        finish(spec, "skipped")
                    else:
                        running[backend.submit(spec)] = spec
                bar.set_postfix_str(counts())
                if not running:
                    if pending:
                        raise ScarlabError("sweep plan has a dependency cycle or an unknown dependency")
                    break
                handle, out = backend.wait(running)
                spec = running.pop(handle)
                finish(spec, "failed" if out["error"] else "complete", out, out["error"])
    finally:
        bar.close()
        backend.close()
    stages = [results[s.id] for s in specs]
    wall = time.perf_counter() - t_start
    write_json(root / "sweep.json", {"backend": backend.name, "wall_s": round(wall, 2), "stages": [
        {**dataclasses.asdict(r), **timings.get(r.id, {})} for r in stages]})
    summary = root / "summary.csv"
    cmp = [r for r in stages if r.kind == "compare"]
    ok = cmp and cmp[0].status in ("complete", "skipped") and summary.is_file()
    return SweepResult(sc, stages, summary if ok else None, wall, timings=timings, backend=backend.name,
                       interrupted=interrupts.STOP.is_set())


def _write_yaml(sc: SweepConfig, path: Path) -> None:
    import yaml

    data = {**sc.grid, "out": sc.out, "resources": sc.resources, "num_cpus": sc.num_cpus, "address": sc.address,
            "unschedulable_timeout": sc.unschedulable_timeout}
    path.write_text("# the configuration of the last `scarlab sweep` in this folder\n"
                    + yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False))
