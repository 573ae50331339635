"""Shadow members one at a time: what a member is expected to be (its identity), whether an existing one can be
reused, and making the missing ones in this process or in worker processes (:func:`build`)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScarlabError
from ..runs import RunDir, files_intact
from .targets import UNLEARN_KEYS, Audited, differences, digest, split_identity, train_key


def _member_identity(role: str, path: Path) -> dict:
    """The identity of an existing member, read from its config.json and split.npz (as :func:`expected_identity`
    builds it)."""
    from ..data import Split

    run = RunDir(path)
    cfg = run.config
    if role in ("original", "retrained"):
        ident = {"role": cfg.get("role"), "seed": cfg.get("seed"), "train": train_key(cfg)}
    else:
        ident = {"seed": cfg.get("seed"), "original": Path(str(cfg.get("original") or "")).name,
                 "unlearn": {k: cfg.get(k) for k in UNLEARN_KEYS},
                 "trace": {k: cfg.get(k) for k in ("snapshot_every", "probe_forget", "probe_retain")}}
    if role != "original":
        f = run.file("split.npz")
        ident["split"] = split_identity(Split.load(f)) if f.is_file() else None
    return ident


def shadow_trace(a: Audited) -> dict:
    """How an unlearned shadow snapshots: at the audited run's steps, every forget example, no retain-test points
    (the audit over steps reads only the forget examples' logits)."""
    return {"snapshot_every": int(a.unlearn["snapshot_every"]), "probe_forget": int(len(a.split.forget_idx)),
            "probe_retain": 0}


def expected_identity(role: str, a: Audited, seed: int, original_name: str | None = None) -> dict:
    if role in ("original", "retrained"):
        ident = {"role": role, "seed": seed, "train": train_key(a.train)}
    else:
        ident = {"seed": seed, "original": original_name, "unlearn": dict(a.unlearn), "trace": shadow_trace(a)}
    if role != "original":
        ident["split"] = split_identity(a.split)
    return ident


class Builder:
    """Makes or reuses the members of one shadow folder."""

    def __init__(self, a: Audited, fingerprint: str):
        self.a, self.fp = a, fingerprint
        self.built: list[str] = []
        self.reused: list[str] = []

    def start(self, role: str, path: Path, seed: int, depends: Path | None = None) -> tuple[dict, bool] | None:
        """None when the member at ``path`` is reused; else (its expected identity, whether to overwrite)."""
        expect = expected_identity(role, self.a, seed, depends.name if depends is not None else None)
        if path.exists() and self._reusable(role, path, expect, depends):
            self.reused.append(path.name)
            return None
        overwrite = path.exists()
        if overwrite and not (path / "manifest.json").is_file():
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
                overwrite = False
            else:
                raise ScarlabError(f"{path} is in the way of shadow member {path.name} and is not a scarlab run "
                                   "directory; move it away, then rerun the audit")
        return expect, overwrite

    @staticmethod
    def failure(path: Path, exc: BaseException) -> ScarlabError:
        from concurrent.futures.process import BrokenProcessPool

        if isinstance(exc, BrokenProcessPool):
            return ScarlabError(f"shadow member {path} failed: {worker_died(exc)}")
        msg = str(exc) if isinstance(exc, ScarlabError) else f"{type(exc).__name__}: {exc}"
        return ScarlabError(f"shadow member {path} failed: {msg}. Rerunning the audit resumes: complete members "
                            "are reused and this one is made again")

    def done(self, role: str, path: Path, seed: int, expect: dict, depends: Path | None = None) -> None:
        """Mark a member just made as this folder's (its manifest's ``shadow`` entry)."""
        entry = {"role": role, "seed": seed, "folder_fingerprint": self.fp, "identity": digest(expect)}
        if depends is not None:
            entry["original_created"] = RunDir(depends).manifest.get("created")
        RunDir(path).update_manifest(shadow=entry)
        self.built.append(path.name)

    def _reusable(self, role: str, path: Path, expect: dict, depends: Path | None) -> bool:
        run = RunDir(path)
        if not (path / "manifest.json").is_file():
            return False
        try:
            status = run.status
        except ScarlabError:
            return False  # an unreadable manifest: made again (overwrite checks it is scarlab's)
        if status == "running" and run.live_holder():
            holder = run.live_holder()
            raise ScarlabError(f"shadow member {path} is being written by process {holder}; wait for it (another "
                               "audit?) and rerun")
        if status != "complete" or not files_intact(path):
            return False
        got = _member_identity(role, path)
        if got != expect:
            diff = "; ".join(differences(got, expect)) or "their configurations differ"
            raise ScarlabError(f"shadow member {path} was made with another configuration (fingerprint "
                               f"{digest(got)[:8]} ≠ {digest(expect)[:8]}: {diff}); it belongs to another split, data "
                               "set or method parameters. Remove it or audit with another --shadow-dir")
        if depends is not None:  # made from an earlier version of its shadow original?
            made_from = (run.manifest.get("shadow") or {}).get("original_created")
            if made_from is None or made_from != RunDir(depends).manifest.get("created"):
                return False
        return True


@dataclass
class Member:
    key: str
    """its population's key in ShadowPopulation.seconds (original, retrained or the method key)."""
    role: str
    path: Path
    seed: int
    kind: str
    """'train' or 'unlearn': what make_member runs."""
    cfg: dict
    depends: Path | None = None
    """the shadow original an unlearned member starts from (made first)."""


def make_member(kind: str, cfg: dict, path: str, overwrite: bool, threads: int | None = None) -> None:
    """Make one shadow member: ``run_train`` (kind 'train') or ``run_unlearn`` ('unlearn') with configuration
    ``cfg``. At module level so that a worker process runs it (``jobs`` > 1), with ``threads`` torch threads."""
    from ..config import TrainConfig, UnlearnConfig
    from ..train import run_train
    from ..unlearn.stage import run_unlearn

    if threads:
        import torch

        torch.set_num_threads(threads)
    if kind == "train":
        run_train(TrainConfig(**cfg), path, overwrite=overwrite, progress=False)
    else:
        run_unlearn(UnlearnConfig(**cfg), path, overwrite=overwrite, progress=False)


def build(b: Builder, members: list[Member], jobs: int, bar, seconds: dict) -> None:
    """Make or reuse ``members``: one at a time in this process (jobs = 1), or in ``jobs`` worker processes with
    torch's threads shared out among them, each member as soon as its shadow original is complete. After a failure
    no new member starts; those running finish (and are kept), then the first failure is raised. ``seconds``
    receives the seconds each population (Member.key) took, from its first start to its last finish."""
    spans: dict[str, list[float]] = {}

    def timed(m: Member, t0: float) -> None:
        span = spans.setdefault(m.key, [t0, t0])
        span[0], span[1] = min(span[0], t0), time.perf_counter()
        bar.update(1)

    if jobs <= 1:
        _build_here(b, members, bar, timed)
    else:
        _build_in_workers(b, members, jobs, bar, timed)
    seconds.update({key: end - begin for key, (begin, end) in spans.items()})


def _build_here(b: Builder, members: list[Member], bar, timed) -> None:
    """Make or reuse ``members`` in order, in this process."""
    for m in members:
        t0 = time.perf_counter()
        bar.set_postfix_str(m.path.name)
        started = b.start(m.role, m.path, m.seed, m.depends)
        if started is not None:
            try:
                make_member(m.kind, m.cfg, str(m.path), started[1])
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a member is reported with where to resume
                raise b.failure(m.path, exc) from exc
            b.done(m.role, m.path, m.seed, started[0], m.depends)
        timed(m, t0)


class _Workers:
    """The state of a build in worker processes: members waiting for their original, complete, running (future ->
    (member, expected identity, start time)), and the failures so far."""

    def __init__(self, b: Builder, members: list[Member], pool, threads: int, timed):
        self.b, self.pool, self.threads, self.timed = b, pool, threads, timed
        self.waiting, self.complete, self.running, self.errors = list(members), set(), {}, []

    def start_ready(self) -> None:
        """Start (or reuse) every waiting member whose original is complete; a reused original frees its dependant,
        so repeat until nothing more starts. Nothing starts after a failure."""
        progressed = True
        while progressed and not self.errors:
            progressed = False
            for m in [m for m in self.waiting if m.depends is None or m.depends in self.complete]:
                self.waiting.remove(m)
                progressed, t0 = True, time.perf_counter()
                started = self.b.start(m.role, m.path, m.seed, m.depends)
                if started is None:
                    self.complete.add(m.path)
                    self.timed(m, t0)
                else:
                    future = self.pool.submit(make_member, m.kind, m.cfg, str(m.path), started[1], self.threads)
                    self.running[future] = (m, started[0], t0)

    def finish(self, future) -> None:
        """Record a finished member: marked as the folder's, or its failure (queued members then never start)."""
        m, expect, t0 = self.running.pop(future)
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - reported with where to resume
            self.errors.append(self.b.failure(m.path, exc))
            for queued in [q for q in self.running if q.cancel()]:  # not started yet: never will be
                self.running.pop(queued)
            return
        self.b.done(m.role, m.path, m.seed, expect, m.depends)
        self.complete.add(m.path)
        self.timed(m, t0)


def die_with_parent(audit: int) -> None:
    """A worker's initializer: end this process when the process ``audit`` (the one that made the pool) ends, however
    it ends. Without it a worker outlived an audit stopped with SIGTERM or SIGKILL and went on training its member
    for minutes. Linux: a thread waits on the audit's pidfd and sends this process SIGTERM when it ends (its parent
    is :func:`worker_pool`'s forkserver, which lives as long as its workers do); elsewhere nothing."""
    import os
    import select
    import signal
    import sys
    import threading

    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return
    try:
        fd = os.pidfd_open(audit)
    except ProcessLookupError:  # it ended before the worker started
        os._exit(1)
    except OSError:  # a kernel without pidfds (before Linux 5.3)
        return

    def watch() -> None:
        select.select([fd], [], [])  # readable once the process has ended
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="scarlab-die-with-audit").start()


def worker_died(exc: BaseException) -> str:
    """Why a worker process may have died, and what to do: the one message for a broken pool."""
    return (f"a worker process making shadow members died ({exc}): killed, out of memory, or started by a Python "
            "script whose audit call is not under `if __name__ == \"__main__\":` (each worker imports the script "
            "again, and without that guard runs it). Rerunning the audit resumes: complete members are reused; try "
            "fewer --jobs")


WORKER_PRELOAD = ["scarlab.audit.members", "scarlab.train", "scarlab.unlearn.stage"]
"""what the workers' forkserver imports once (torch & co.): each worker is forked from it instead of starting Python
and importing them again (about 3 s of CPU per worker here)."""


def worker_pool(jobs: int, guarded: bool = True):
    """A pool of ``jobs`` worker processes forked from a forkserver of this process that imported
    :data:`WORKER_PRELOAD` (a fresh, single-threaded process: forking it is safe, unlike forking this one, whose
    torch and kernel threads may hold locks); ``guarded``: each worker ends with this process
    (:func:`die_with_parent`)."""
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    if "forkserver" not in mp.get_all_start_methods():  # Windows: each worker starts Python and imports anew
        ctx = mp.get_context("spawn")
    else:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(WORKER_PRELOAD)
    guard = {"initializer": die_with_parent, "initargs": (os.getpid(),)} if guarded else {}
    return ProcessPoolExecutor(jobs, mp_context=ctx, **guard)


def _build_in_workers(b: Builder, members: list[Member], jobs: int, bar, timed) -> None:
    """Make or reuse ``members`` in ``jobs`` worker processes (build)."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    import torch

    threads = max(1, torch.get_num_threads() // jobs)
    with worker_pool(jobs) as pool:
        state = _Workers(b, members, pool, threads, timed)
        try:
            while True:
                state.start_ready()
                if not state.running:
                    break
                bar.set_postfix_str(", ".join(m.path.name for m, *_ in state.running.values()))
                finished, _ = wait(state.running, return_when=FIRST_COMPLETED)
                for f in finished:
                    state.finish(f)
        except BaseException as exc:
            pool.shutdown(wait=True, cancel_futures=True)
            if isinstance(exc, BrokenProcessPool):
                raise ScarlabError(worker_died(exc)) from None
            raise
    if state.errors:
        raise state.errors[0]
