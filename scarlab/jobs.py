"""Background jobs: `scarlab pipeline` launched from the dashboard's Run page (or a notebook cell), queued, watched
and stopped through files under ``<runs root>/.jobs/``.

A job is a folder ``<root>/.jobs/<id>/``:

* ``job.json`` (written once, at submission): id, created, the runs root, the pipeline command line;
* ``config.yaml``: the pipeline configuration (the keys of ``scarlab pipeline --config``; ``out`` inside the root);
* ``plan.json``: the plan the submitter checked (``scarlab pipeline --dry-run --json``), when it did;
* ``state.json`` (the worker's): ``queued`` → ``running`` → ``finished`` / ``failed`` / ``stopped``, with pid, pgid,
  start and end times and the exit status;
* ``events.jsonl``: one line per stage start and end (``scarlab pipeline --events``);
* ``log.txt``: the pipeline's output; ``stop.json``: written by :meth:`Job.stop`.

:func:`submit` starts a *worker*, ``python -m scarlab jobs --worker DIR`` (arguments as a list, never a shell), as the
leader of a new process group (``start_new_session``), so the job survives the page or kernel that started it. The
worker waits for its turn — jobs of one runs root run one at a time, oldest first, under the lock
``.jobs/queue.lock`` — then runs ``python -m scarlab pipeline --config config.yaml --events events.jsonl --quiet`` in
its group: the same planner, scheduler, run folders and reuse as the command line. :meth:`Job.stop` sends SIGINT to
the group twice — what Ctrl-C twice does on the command line (:mod:`scarlab.interrupts`): the running stage's kernel
is killed and the stage marked failed ("interrupted"); completed stages are untouched — then SIGTERM and SIGKILL
after a grace period. A reader never trusts a state file alone: a queued or running job whose worker is gone reads
``failed`` (``stopped`` when a stop was asked).

Nothing here imports the pipeline or the training code (docs/architecture.md): the dashboard reads these files, and
the work happens in the subprocesses. In a notebook::

    from scarlab import jobs
    job = jobs.launch({"dataset": "digits", "forget_classes": [3], "methods": ["scar"],
                       "params": {"scar": {"lr": [0.0005, 0.00025]}}}, runs="runs/lab")
    job.watch()          # prints the stage stepper and the running stage's progress until the job ends
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ScarlabError
from .runs import locked, read_json, replacing, write_json

JOBS_DIR = ".jobs"
STATES = ("queued", "running", "finished", "failed", "stopped")
LIVE = ("queued", "running")
STOP_GRACE_S = 10.0
"""after the two SIGINTs, how long a job has to end before SIGTERM (and as long again before SIGKILL)."""
FALLBACK_S = {"train_original": 60.0, "split": 5.0, "train_retrained": 60.0, "unlearn": 30.0, "evaluate": 20.0,
              "compare": 10.0, "shadows": 600.0, "audit": 30.0, "audit_offline": 10.0}
"""seconds a stage is assumed to take when no run under the root recorded one of its kind (a guess, said so)."""
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
PATH_KEYS = ("dataset", "surrogate")
"""options that may name a folder (``imagefolder:PATH``): only inside the allowed data roots."""
REFUSED_KEYS = ("notebooks", "data_root")
"""options a launched job may not set: they would execute or download elsewhere."""


def _python() -> str:
    return sys.executable


def _now() -> float:
    return time.time()


def jobs_dir(root: str | os.PathLike) -> Path:
    return Path(root).expanduser().resolve() / JOBS_DIR


# ============================================================================================ safety
def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def safe_config(config: dict, root: str | os.PathLike, allowed_data: list | tuple = ()) -> dict:
    """``config`` (pipeline keys) made safe to launch under the runs root ``root``: ``out`` is the root or a folder
    name inside it (default: the root itself, so the root's completed stages are reused); an ``imagefolder:PATH``
    data set or surrogate must lie inside one of ``allowed_data``; an ``original`` run to start from inside the root;
    ``..`` in any path, and ``notebooks`` and ``data_root``, are refused. Returns the config with ``out`` made absolute; one-line ScarlabError otherwise."""
    if not isinstance(config, dict):
        raise ScarlabError(f"a job's configuration must be a mapping of pipeline options, got {type(config).__name__}")
    root_p = Path(root).expanduser().resolve()
    cfg = {str(k).replace("-", "_"): v for k, v in config.items()}
    for key in REFUSED_KEYS:
        if cfg.get(key) not in (None, ""):
            raise ScarlabError(f"{key} cannot be set for a launched job (it would run or read outside the lab)")
    out = cfg.get("out")
    if out in (None, "", "."):
        cfg["out"] = str(root_p)
    else:
        text = str(out)
        if ".." in Path(text).parts or Path(text).is_absolute() or not all(SAFE_NAME.match(p) for p in Path(text).parts):
            resolved = Path(text).expanduser().resolve() if Path(text).is_absolute() else None
            if not (resolved is not None and ".." not in Path(text).parts and _inside(resolved, [root_p])):
                raise ScarlabError(f"out {text!r}: a job writes only inside the runs root {root_p}; give a folder "
                                   "name (letters, digits, . _ -), without '..'")
            cfg["out"] = str(resolved)
        else:
            cfg["out"] = str(root_p / text)
    if Path(cfg["out"]).resolve().is_relative_to(jobs_dir(root_p)):
        raise ScarlabError(f"out {out!r}: {JOBS_DIR}/ holds the job records, not runs")
    original = cfg.get("original")
    if original not in (None, ""):  # a run to start from: inside the root (relative: to the root)
        text = str(original)
        path = Path(text).expanduser()
        path = (path if path.is_absolute() else root_p / path).resolve()
        if ".." in Path(text).parts or not _inside(path, [root_p]):
            raise ScarlabError(f"original {text!r}: a job starts only from a run inside the runs root {root_p}")
        cfg["original"] = str(path)
    allowed = [Path(a).expanduser().resolve() for a in allowed_data]
    for key in PATH_KEYS:
        value = cfg.get(key)
        if not isinstance(value, str) or not value.startswith("imagefolder:"):
            continue
        raw = value.split(":", 1)[1]
        if ".." in Path(raw).parts:
            raise ScarlabError(f"{key} {value!r}: a path with '..' is refused")
        path = Path(raw).expanduser().resolve()
        if not _inside(path, allowed):
            where = ", ".join(map(str, allowed)) or "none (start the dashboard with --data DIR to allow one)"
            raise ScarlabError(f"{key} {value!r} lies outside the allowed data folders: {where}")
        cfg[key] = f"imagefolder:{path}"
    return cfg


def image_folders(allowed_data: list | tuple) -> dict[str, list[str]]:
    """{"datasets": imagefolder:PATH of every ``PATH/train`` + ``PATH/test`` tree, "surrogates": imagefolder:PATH
    of every other folder of sub-folders} found in ``allowed_data`` (each a data set, or a folder of them)."""
    found = {"datasets": [], "surrogates": []}
    for a in allowed_data:
        base = Path(a).expanduser().resolve()
        if not base.is_dir():
            continue
        for p in [base] + sorted(c for c in base.iterdir() if c.is_dir() and not c.name.startswith(".")):
            if (p / "train").is_dir() and (p / "test").is_dir():
                found["datasets"].append(f"imagefolder:{p}")
            elif p != base and any(c.is_dir() for c in p.iterdir()):
                found["surrogates"].append(f"imagefolder:{p}")
    return found


# ============================================================================================ the CLI, as subprocesses
def _scarlab(args: list[str], timeout: float = 300.0, cwd: str | None = None) -> str:
    """``python -m scarlab ARGS`` (a list, no shell); its stdout, or a ScarlabError with its one-line error."""
    try:
        out = subprocess.run([_python(), "-m", "scarlab", *args], capture_output=True, text=True, timeout=timeout,
                             cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ScarlabError(f"scarlab {args[0]} did not answer within {timeout:.0f} s") from None
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
        msg = next((ln.split("scarlab: error: ", 1)[1] for ln in reversed(lines) if "scarlab: error: " in ln),
                   lines[-1] if lines else f"exit status {out.returncode}")
        raise ScarlabError(msg)
    return out.stdout


def describe() -> dict:
    """The pipeline's options and every method's parameters, with help and per-data-set defaults, as
    ``scarlab pipeline --describe`` prints them (the declarations the CLI is generated from)."""
    return json.loads(_scarlab(["pipeline", "--describe"], timeout=120))


def _write_yaml(path: Path, data: dict) -> None:
    import yaml

    with replacing(path) as tmp:
        tmp.write_text(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False))


def check(config: dict, root: str | os.PathLike, allowed_data: list | tuple = ()) -> dict:
    """Validate ``config`` with the pipeline's own validation and plan it (``scarlab pipeline --dry-run --json``):
    ``{"stages": [{id, kind, label, state, run_dir, deps, info}], "root", "dataset", "estimate"}``, where state
    ``current`` means reused. A bad option is a one-line ScarlabError (the CLI's message)."""
    import tempfile

    cfg = safe_config(config, root, allowed_data)
    with tempfile.TemporaryDirectory(prefix="scarlab-check-") as tmp:
        path = Path(tmp) / "config.yaml"
        _write_yaml(path, cfg)
        plan = json.loads(_scarlab(["pipeline", "--config", str(path), "--dry-run", "--json"]))
    plan["config"] = cfg
    plan["estimate"] = estimate(plan, root)
    return plan


# ============================================================================================ time estimates
def measured_times(root: str | os.PathLike, limit: int = 5000) -> dict[tuple, list[float]]:
    """{(kind, dataset, method): [seconds, ...]} of every stage recorded under ``root`` (manifests' ``stages``
    entries that completed, and pipeline.json's compare stage)."""
    root = Path(root).expanduser().resolve()
    out: dict[tuple, list[float]] = {}
    n = 0
    for m in list(root.rglob("manifest.json")) + list(root.rglob("pipeline.json")):
        if JOBS_DIR in m.parts or n >= limit:
            continue
        n += 1
        try:
            doc = read_json(m)
            cfg = read_json(m.parent / "config.json") if (m.parent / "config.json").is_file() else {}
        except (OSError, ValueError):
            continue
        stages = doc.get("stages") if isinstance(doc.get("stages"), dict) else {}
        for kind, rec in stages.items():
            if not isinstance(rec, dict) or rec.get("status") != "complete":
                continue
            secs = rec.get("seconds")
            if isinstance(secs, (int, float)) and not isinstance(secs, bool) and secs >= 0:
                method = cfg.get("method") if kind == "unlearn" else None
                out.setdefault((kind, cfg.get("dataset"), method), []).append(float(secs))
    return out


def estimate(plan: dict, root: str | os.PathLike) -> dict:
    """Seconds the stages of ``plan`` that will run (state not ``current``) should take: per stage the median of
    the same kind of stage recorded under ``root`` (same data set and, for unlearning, method; else same kind on
    any data set), else :data:`FALLBACK_S`. ``{"seconds", "per_stage": {id: (seconds, source)}, "note"}``."""
    times = measured_times(root)
    dataset = plan.get("dataset")
    per, guessed = {}, 0
    for s in plan.get("stages", []):
        if s.get("state") == "current":
            continue
        kind, method = s["kind"], (s.get("info") or {}).get("method") if s["kind"] == "unlearn" else None
        exact = times.get((kind, dataset, method), [])
        loose = [v for (k, _d, m), vs in times.items() if k == kind and (m == method or method is None) for v in vs]
        if exact:
            per[s["id"]] = (statistics.median(exact), f"median of {len(exact)} recorded")
        elif loose:
            per[s["id"]] = (statistics.median(loose), f"median of {len(loose)} recorded on other data sets")
        else:
            per[s["id"]] = (FALLBACK_S.get(kind, 30.0), "no record: fallback guess")
            guessed += 1
    total = sum(v for v, _ in per.values())
    note = (f"{len(per) - guessed} of {len(per)} stage(s) from times recorded under the runs root"
            + (f", {guessed} from a fixed guess (scarlab.jobs.FALLBACK_S)" if guessed else "")
            + "; stages run one after another")
    return {"seconds": total, "per_stage": per, "note": note}


# ============================================================================================ jobs
def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child, not yet reaped) is gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _read(path: Path) -> dict:
    try:
        doc = read_json(path)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _update_state(job_dir: Path, **fields) -> dict:
    """Merge ``fields`` into the job's state.json (under the job's lock: the submitter and the worker both write)."""
    with locked(job_dir / ".state.lock"):
        state = {**_read(job_dir / "state.json"), **fields}
        write_json(job_dir / "state.json", state)
    return state


@dataclass
class Job:
    """One job folder (see the module docstring); :meth:`refresh` re-reads it."""

    dir: Path
    id: str = ""
    root: str = ""
    created: float = 0.0
    argv: list = field(default_factory=list)
    state: str = "queued"
    pid: int | None = None
    pgid: int | None = None
    started: float | None = None
    ended: float | None = None
    returncode: int | None = None
    error: str | None = None
    stop_requested: float | None = None

    @property
    def config_file(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def log_file(self) -> Path:
        return self.dir / "log.txt"

    @property
    def events_file(self) -> Path:
        return self.dir / "events.jsonl"

    @classmethod
    def load(cls, job_dir: str | os.PathLike) -> "Job":
        job_dir = Path(job_dir)
        if not (job_dir / "job.json").is_file():
            raise ScarlabError(f"{job_dir} is not a job folder (no job.json)")
        return cls(job_dir).refresh()

    def refresh(self) -> "Job":
        meta, st = _read(self.dir / "job.json"), _read(self.dir / "state.json")
        self.id, self.root = str(meta.get("id", self.dir.name)), str(meta.get("root", ""))
        self.created, self.argv = float(meta.get("created", 0) or 0), list(meta.get("argv") or [])
        for k in ("state", "pid", "pgid", "started", "ended", "returncode", "error"):
            setattr(self, k, st.get(k, getattr(Job, k, None) if k != "state" else "queued"))
        stop = _read(self.dir / "stop.json")
        self.stop_requested = stop.get("requested")
        if self.state in LIVE and not _pid_alive(self.pid):
            fresh = self.pid is None and _now() - self.created < 30  # the worker has not written its pid yet
            if not fresh:
                self.state = "stopped" if self.stop_requested else "failed"
                self.error = self.error or "the job's worker process ended without recording an outcome"
        return self

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def config(self) -> dict:
        import yaml

        try:
            return yaml.safe_load(self.config_file.read_text()) or {}
        except (OSError, ValueError):
            return {}

    def plan(self) -> list[dict]:
        doc = _read(self.dir / "plan.json")
        return doc.get("stages") if isinstance(doc.get("stages"), list) else []

    def events(self) -> list[dict]:
        out = []
        try:
            text = self.events_file.read_text(encoding="utf-8")
        except OSError:
            return out
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                ev = json.loads(line)
                if isinstance(ev, dict) and isinstance(ev.get("stage"), str):
                    out.append(ev)
        return out

    def stages(self) -> list[dict]:
        """The stepper: each planned stage (then any stage only the events name) with its live status: pending,
        running, complete, skipped (reused), failed, blocked — and "interrupted" for a stage a stop ended."""
        latest: dict[str, dict] = {}
        for ev in self.events():
            latest[ev["stage"]] = {**latest.get(ev["stage"], {}), **ev}
        rows = []
        for s in self.plan():
            ev = latest.pop(s["id"], None)
            rows.append({"id": s["id"], "kind": s["kind"], "label": s.get("label") or s["id"],
                         "run_dir": s.get("run_dir"), "planned": s.get("state"),
                         "status": ev["status"] if ev else "pending", "seconds": (ev or {}).get("seconds"),
                         "error": (ev or {}).get("error"), "started": (ev or {}).get("time")})
        for sid, ev in latest.items():
            rows.append({"id": sid, "kind": ev.get("kind"), "label": ev.get("label") or sid, "run_dir": ev.get("run_dir"),
                         "planned": None, "status": ev["status"], "seconds": ev.get("seconds"),
                         "error": ev.get("error"), "started": ev.get("time")})
        for r in rows:
            if r["status"] == "failed" and str(r.get("error") or "").startswith("interrupted"):
                r["status"] = "interrupted"
            if r["status"] == "running" and not self.live:  # the job ended while it ran (killed outright)
                r["status"] = "interrupted"
        return rows

    def running_stage(self) -> dict | None:
        return next((r for r in self.stages() if r["status"] == "running"), None)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(max(0, self.log_file.stat().st_size - chars))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------------ control
    def stop(self, grace: float = STOP_GRACE_S, wait: bool = True) -> "Job":
        """Stop the job as Ctrl-C twice stops `scarlab pipeline`: SIGINT to its process group (start no new stage),
        SIGINT again (kill the running stage's kernel: the stage is marked failed, "interrupted"), then SIGTERM and
        SIGKILL if it is still there after ``grace`` seconds each. A queued job leaves the queue. Completed stages
        are not touched. ``wait=False`` returns after the two SIGINTs."""
        self.refresh()
        write_json(self.dir / "stop.json", {"requested": _now()})
        if not self.live or not self.pgid:
            return self.refresh()
        pgid = int(self.pgid)
        for _ in range(2):
            if not _signal(pgid, signal.SIGINT):
                break
            time.sleep(0.5)
        if wait:
            escalate(pgid, grace)
        return self.refresh()

    def wait(self, timeout: float | None = None, poll: float = 0.5) -> "Job":
        """Block until the job ends (or ``timeout`` seconds); returns it refreshed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.refresh().live and (deadline is None or time.monotonic() < deadline):
            time.sleep(poll)
        return self

    def watch(self, every: float = 2.0, timeout: float | None = None, plot: bool = False) -> "Job":
        """Show the job until it ends: the stage stepper and the running stage's latest history row (step/epoch,
        losses, forget and retain accuracy), redrawn in place in a notebook (printed on a terminal); ``plot``: also
        a plotly chart of the running stage's history. Interrupting the cell stops watching, not the job."""
        try:
            from IPython.display import clear_output, display
        except ImportError:
            clear_output = display = None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                self.refresh()
                text = self.report()
                if clear_output is not None and _in_notebook():
                    clear_output(wait=True)
                    print(text)
                    if plot:
                        fig = self._history_figure()
                        if fig is not None:
                            display(fig)
                else:
                    print(text + "\n", flush=True)
                if not self.live or (deadline is not None and time.monotonic() > deadline):
                    return self
                time.sleep(every)
        except KeyboardInterrupt:
            print(f"stopped watching; the job goes on (jobs.Job.load({str(self.dir)!r}).stop() stops it)")
            return self

    def report(self) -> str:
        marks = {"pending": "·", "running": "▶", "complete": "✓", "skipped": "↺", "failed": "✗", "blocked": "–",
                 "interrupted": "■"}
        lines = [f"job {self.id}: {self.state}" + (f" ({self.error})" if self.error and not self.live else "")]
        for r in self.stages():
            secs = f"  {r['seconds']:.1f}s" if isinstance(r.get("seconds"), (int, float)) else ""
            lines.append(f"  {marks.get(r['status'], '?')} {r['status']:11s} {r['label']}{secs}")
        run = self.running_stage()
        if run and run.get("run_dir"):
            row = latest_history(run["run_dir"])
            if row:
                lines.append("  latest: " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
        return "\n".join(lines)

    def _history_figure(self):
        run = self.running_stage()
        if not run or not run.get("run_dir"):
            return None
        import pandas as pd
        import plotly.express as px

        try:
            df = pd.read_csv(Path(run["run_dir"]) / "history.csv")
        except (OSError, ValueError):
            return None
        cols = [c for c in df.columns if c.startswith(("probe/acc/", "loss")) and df[c].notna().any()]
        x = "step" if "step" in df.columns else "epoch" if "epoch" in df.columns else None
        return px.line(df, x=x, y=cols, title=run["label"]) if x and cols else None


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


HISTORY_KEYS = {"step": "step", "epoch": "epoch", "probe/acc/forget_train": "forget acc (probe)",
                "probe/acc/retain_test": "retain acc (probe)", "acc/forget_train": "forget acc",
                "acc/retain_test": "retain acc", "loss/forget": "forget loss", "loss/retain": "retain loss",
                "loss": "loss", "loss/total": "total loss", "probe/acc/forget_test": "forget-test acc (probe)",
                "acc/test": "test acc"}
"""the progress columns of a history.csv a job view shows, most telling first, with their names."""


def latest_history(run_dir: str | os.PathLike) -> dict:
    """The last complete row of a run's history.csv (only the progress columns that have a value)."""
    import csv

    path = Path(run_dir) / "history.csv"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]  # a row being written: left out
    if len(lines) < 2:
        return {}
    rows = list(csv.DictReader(lines))
    out = {}
    for row in reversed(rows):
        for k in HISTORY_KEYS:
            if k not in out and row.get(k) not in (None, ""):
                with contextlib.suppress(ValueError):
                    v = float(row[k])
                    out[k] = int(v) if k in ("step", "epoch") else v
        if "step" in out or "epoch" in out:
            break
    return {k: out[k] for k in HISTORY_KEYS if k in out}


def escalate(pgid: int, grace: float = STOP_GRACE_S) -> None:
    """After a stop's SIGINTs: SIGTERM to the group if it is still there after ``grace`` seconds, SIGKILL after as
    long again (a page runs this in a thread, so the Stop button answers at once)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.2)
        if not _group_alive(pgid):
            return
        _signal(pgid, sig)


def _signal(pgid: int, sig) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    """A member of the process group other than a zombie is alive (the leader may be our own unreaped child)."""
    try:
        for d in os.listdir("/proc"):
            if d.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    with open(f"/proc/{d}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[2]) == pgid and fields[0] != "Z":
                        return True
        return False
    except OSError:
        return _signal(pgid, 0)


def list_jobs(root: str | os.PathLike) -> list[Job]:
    """Every job under ``root``, oldest first."""
    d = jobs_dir(root)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        if p.is_dir() and (p / "job.json").is_file():
            with contextlib.suppress(ScarlabError, OSError):
                out.append(Job.load(p))
    return sorted(out, key=lambda j: (j.created, j.id))


def submit(config: dict, root: str | os.PathLike, allowed_data: list | tuple = (), plan: dict | None = None,
           env: dict | None = None) -> Job:
    """Queue ``config`` (pipeline keys; made safe by :func:`safe_config`) as a job under ``root`` and start its
    worker in a new process group; returns at once. ``plan``: what :func:`check` returned (the stepper's stages);
    without it the stepper shows the stages as the pipeline reports them."""
    root_p = Path(root).expanduser().resolve()
    if not root_p.is_dir():
        raise ScarlabError(f"runs root {root_p} does not exist")
    cfg = safe_config(config, root_p, allowed_data)
    base = jobs_dir(root_p)
    base.mkdir(exist_ok=True)
    created = _now()
    job_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(created)) + f"-{time.time_ns() % 10**9:09d}"
    job_dir = base / job_id
    job_dir.mkdir()
    _write_yaml(job_dir / "config.yaml", cfg)
    argv = [_python(), "-m", "scarlab", "pipeline", "--config", str(job_dir / "config.yaml"), "--events",
            str(job_dir / "events.jsonl"), "--quiet"]
    write_json(job_dir / "job.json", {"id": job_id, "created": created, "root": str(root_p), "argv": argv})
    if plan is not None:
        write_json(job_dir / "plan.json", {k: v for k, v in plan.items() if k in ("stages", "root", "dataset")})
    _update_state(job_dir, state="queued")
    worker = [_python(), "-m", "scarlab", "jobs", "--worker", str(job_dir)]
    with open(job_dir / "log.txt", "ab") as log:
        proc = subprocess.Popen(worker, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=str(root_p), env={**os.environ, **(env or {})})
    _update_state(job_dir, pid=proc.pid, pgid=proc.pid)
    _REAPERS.append(proc)  # reaped by later calls: no zombie lingers in a long-lived server
    for p in list(_REAPERS):
        if p.poll() is not None:
            _REAPERS.remove(p)
    return Job.load(job_dir)


_REAPERS: list = []


def launch(config: dict, runs: str | os.PathLike = "runs/lab", allowed_data: list | tuple = ()) -> Job:
    """The notebook's one call: check ``config`` with the pipeline's validation (one-line error on a bad option),
    then queue it as a job under ``runs`` (created if needed) and return the :class:`Job` (``.watch()``,
    ``.stop()``, ``.wait()``). Data folders named by ``imagefolder:`` must lie in ``allowed_data``."""
    root = Path(runs).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    plan = check(config, root, allowed_data)
    return submit(config, root, allowed_data, plan=plan)


# ============================================================================================ the worker
def _earlier_live(job: Job) -> bool:
    """A job of the same root submitted before ``job`` is still queued or running."""
    return any(j.live and (j.created, j.id) < (job.created, job.id) for j in list_jobs(job.root))


def run_worker(job_dir: str | os.PathLike, poll: float = 0.3) -> int:
    """The job's worker (``python -m scarlab jobs --worker DIR``): wait for the queue, run the pipeline in this
    process group, record the outcome. A SIGINT/SIGTERM meant for the group is the pipeline's to handle; here it
    only ends a wait in the queue."""
    job_dir = Path(job_dir).resolve()
    job = Job.load(job_dir)
    signals: list[int] = []

    def note(signum, frame):
        signals.append(signum)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, note)
    _update_state(job_dir, pid=os.getpid(), pgid=os.getpgrp(), state="queued")
    lock_fd = os.open(jobs_dir(job.root) / "queue.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            if signals or (job_dir / "stop.json").is_file():
                _update_state(job_dir, state="stopped", ended=_now(), error="stopped while queued")
                return 130
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(poll)
                continue
            if _earlier_live(job):
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
                time.sleep(poll)
                continue
            break
        _update_state(job_dir, state="running", started=_now())
        with open(job_dir / "log.txt", "ab") as log:
            proc = subprocess.Popen(job.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=job.root)
            rc = proc.wait()
        stopped = bool(signals) or (job_dir / "stop.json").is_file()
        state = "finished" if rc == 0 and not stopped else "stopped" if stopped or rc == 130 else "failed"
        error = None if state == "finished" else _last_error(job) or f"the pipeline exited with status {rc}"
        _update_state(job_dir, state=state, ended=_now(), returncode=rc, error=error)
        return 0
    finally:
        os.close(lock_fd)  # releases the queue


def _last_error(job: Job) -> str | None:
    for line in reversed(job.log_tail(4000).splitlines()):
        if "scarlab: error: " in line:
            return line.split("scarlab: error: ", 1)[1].strip()
        if line.strip().startswith("FAILED "):
            return line.strip()
    return None


def jobs_table(jobs: list[Job]) -> list[dict]:
    """One row per job, newest first: id, state, started, ended, stages done / planned, error."""
    rows = []
    for j in sorted(jobs, key=lambda j: j.created, reverse=True):
        st = j.stages()
        done = sum(r["status"] in ("complete", "skipped") for r in st)
        rows.append({"job": j.id, "state": j.state, "stages": f"{done}/{len(st)}",
                     "started": time.strftime("%H:%M:%S", time.localtime(j.started)) if j.started else "",
                     "seconds": round((j.ended or _now()) - j.started, 1) if j.started else None,
                     "error": j.error or ""})
    return rows


__all__ = ["Job", "check", "describe", "estimate", "launch", "list_jobs", "safe_config", "submit", "run_worker"]
