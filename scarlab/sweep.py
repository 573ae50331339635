"""Sweeps: a grid of pipeline configurations, its stages executed as Ray tasks (or in this process).

A sweep file holds the keys of a pipeline configuration (:class:`scarlab.pipeline.PipelineConfig`); a list
given for a single-valued key (``datasets`` / ``dataset``, ``models``, ``scenarios``, ``forget_sizes``,
``epochs``, ...) or for a method parameter or training option (``params: {scar: {lr: [0.0005, 0.00025]}}``) is a
grid axis, and every point of the grid is planned by :func:`scarlab.pipeline.plan`. ``methods``,
``forget_classes`` (one split per entry) and ``seeds`` are lists the pipeline expands itself. Stages that several
points share (same run directory: one original per data set × model × training configuration) run once, and one
compare stage summarises every run at the sweep root (``summary.csv``).

Sweep-only keys: ``out`` (the runs root, may be a shared path), ``resources`` (per Ray task:
``num_cpus`` default 1, ``num_gpus`` default 1 for stages with ``device: cuda...`` else 0, ``custom`` Ray
resources such as ``{worker_node: 1}``, and per stage kind overrides such as ``unlearn: {num_gpus: 0.5}``),
``num_cpus`` (size of the local Ray instance), ``address`` (join a running Ray cluster instead) and
``unschedulable_timeout`` (seconds a task may wait while no live node of the cluster can run it).

The stages run through the pipeline's scheduler (:mod:`scarlab.pipeline.schedule`), each :func:`scarlab.pipeline.execute_stage`
in a Ray task submitted once its dependencies have finished; reuse, failure records and blocking follow the
pipeline's rules, so re-running a sweep resumes it. A task whose node is lost is retried once by Ray; one that no
live node can run any more (its resources were on the lost node) is cancelled after ``unschedulable_timeout`` and
recorded as failed, so the sweep ends and a rerun resumes it. The local Ray instance a sweep starts listens on
127.0.0.1 only (:func:`init_ray`). Ray is imported only here, when a sweep runs on it; ``sequential=True`` runs
the same stages in this process, one at a time.
"""
from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ScarlabError
from .pipeline import KINDS, PipelineConfig, StageSpec, config_from_dict, plan
from .pipeline.config import write_yaml
from .pipeline.schedule import RAY_NAMES, RESOURCE_KEYS, Local, PipelineResult, Ray, schedule
from .runs import make_folder, write_json

PLURALS = {"datasets": "dataset", "models": "model", "scenarios": "scenario", "forget_sizes": "forget_size"}
SWEEP_KEYS = ("out", "resources", "num_cpus", "address", "unschedulable_timeout")
RESERVED = {"CPU", "GPU", "memory", "object_store_memory", "num_cpus", "num_gpus"}  # not a custom resource name
LOOPBACK = "127.0.0.1"
UNSCHEDULABLE_TIMEOUT = 300.0
RAY_MISSING = ("scarlab sweep runs its stages on Ray, which is not installed: pip install 'scarlab[ray]' "
               "(or run the same grid in this process with --sequential)")


@dataclass
class SweepConfig:
    grid: dict
    """pipeline keys; a list for a single-valued key, a method parameter or a training option is a grid axis."""
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


def plan_sweep(sc: SweepConfig, remote: bool = True) -> list[StageSpec]:
    """Plan every grid point (validating each), keep each shared stage once, end with one compare stage.

    ``remote``: the stages run on Ray workers, so a ``cuda`` device is checked there, not on this machine
    (a cluster's head node often has no GPU); the device is a location, outside every fingerprint.
    """
    data = {PLURALS.get(k, k): v for k, v in sc.grid.items()}
    return plan(config_from_dict({**data, "out": sc.out}), scalar_axes=True, check_device=not remote)


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


def _check_capacity(total: dict, specs: list[StageSpec], sc: SweepConfig) -> None:
    for spec in specs:
        for key, amount in task_resources(spec, sc).items():
            name = RAY_NAMES.get(key, key)
            if amount > total.get(name, 0):
                what = f"resources.{key} (or resources.{spec.kind}.{key})" if key in RESOURCE_KEYS else \
                    f"resources.custom.{key} (a local Ray instance has no custom resources; use --address)"
                raise ScarlabError(f"stage {spec.label!r} asks for {key}={amount:g} but the Ray instance has "
                                   f"{total.get(name, 0):g} {name}(s); lower {what}"
                                   + (" or raise --num-cpus" if name == "CPU" else ""))


def _ray(sc: SweepConfig, specs: list[StageSpec]) -> Ray:
    """The Ray executor of a sweep: joins the cluster at ``address`` or starts a local instance (unless this
    process is already connected: a notebook, tests) and, on a local instance, checks that it can run every
    stage."""
    try:
        import ray
    except ImportError:
        raise ScarlabError(RAY_MISSING) from None
    owned = not ray.is_initialized()
    if owned:
        try:
            init_ray(sc.address, sc.num_cpus)
        except Exception as exc:  # no cluster at --address, a port in use, ...
            where = f"join the Ray cluster at {sc.address}" if sc.address else "start a local Ray instance"
            raise ScarlabError(f"cannot {where}: {type(exc).__name__}: {exc}") from None
    if not sc.address:  # on a local instance, a request no node can satisfy would wait forever
        try:
            _check_capacity(ray.cluster_resources(), specs, sc)
        except ScarlabError:
            if owned:
                ray.shutdown()
            raise
    return Ray(ray, lambda spec: task_resources(spec, sc), sc.grid.get("threads"), sc.unschedulable_timeout,
               shutdown=owned)


def run_sweep(sc: SweepConfig, sequential: bool = False, progress: bool = True,
              force: bool = False) -> PipelineResult:
    """Plan the whole grid (validating everything first), execute it on Ray (or in-process), summarise; each
    stage's status, times and host also go to ``sweep.json`` at the sweep root."""
    t0 = time.perf_counter()
    specs = plan_sweep(sc, remote=not sequential)
    root = Path(sc.out).expanduser().resolve()
    executor = Local(1, sc.grid.get("threads"), name="sequential") if sequential else _ray(sc, specs)
    with executor:  # made once the cluster can run the stages: a refused request leaves no folder
        make_folder(root, "sweep folder (--out)")
        write_yaml(root / "sweep.yaml", {**sc.grid, "out": sc.out, "resources": sc.resources, "num_cpus": sc.num_cpus,
                                         "address": sc.address, "unschedulable_timeout": sc.unschedulable_timeout},
                   "the configuration of the last `scarlab sweep` in this folder")
        result = schedule(specs, executor, sc, root, what="sweep", progress=progress, force=force, since=t0)
    write_json(root / "sweep.json", {"backend": result.backend, "wall_s": round(result.wall_s, 2), "stages": [
        {**dataclasses.asdict(r), **result.timings.get(r.id, {})} for r in result.stages]})
    return result
