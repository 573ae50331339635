"""`scarlab pipeline` as a function: plan, then execute in local kernels through the scheduler."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

from ..runs import make_folder
from .config import PipelineConfig, write_yaml
from .plan import grid, plan_points
from .schedule import Local, schedule, stage_env
from .warm import WarmKernels
from .warm import enabled as warm_enabled


def run_pipeline(cfg: PipelineConfig, progress: bool = True, force: bool = False, events: str | None = None):
    """Plan ``cfg`` (validating every grid point first), execute every stage that is not current, summarise;
    returns a :class:`scarlab.pipeline.schedule.PipelineResult`.

    Stages run in dependency order, ``cfg.jobs`` at a time; a failed stage blocks only its dependants.
    ``events``: a file that gets one JSON line per stage start and end (``scarlab.jobs`` follows it).
    """

    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # the zygote the stage kernels fork from imports torch & co. while the plan is validated and made (seconds)
        jobs, threads = _jobs_threads(cfg.jobs, cfg.threads)
        stack.enter_context(stage_env(threads))
        warm = stack.enter_context(WarmKernels()) if warm_enabled() else None
        points = grid(cfg)
        specs = plan_points(points)
        first = points[0][1]  # jobs, threads and out are single-valued: the same in every point
        root = Path(first.out).expanduser().resolve()
        make_folder(root, "pipeline folder (--out)")
        write_yaml(root / "pipeline.yaml", dataclasses.asdict(cfg),
                   "the configuration of the last `scarlab pipeline` run in this folder")
        tell = None
        if events:
            out = stack.enter_context(open(events, "a", encoding="utf-8"))

            def tell(event: dict) -> None:
                out.write(json.dumps(event) + "\n")
                out.flush()
        executor = stack.enter_context(Local(first.jobs, threads, warm=warm))
        return schedule(specs, executor, cfg, root, what="pipeline",
                        progress=progress, force=force, since=t0, events=tell)


def _jobs_threads(jobs, threads) -> tuple[int, int | None]:
    """Stages at a time and torch threads per stage kernel (``threads``, else the cores shared out among ``jobs``);
    read before validation (which refuses bad values), so anything unusable counts as 1 / None here."""
    jobs = jobs if isinstance(jobs, int) and not isinstance(jobs, bool) and jobs >= 1 else 1
    if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
        return jobs, threads
    return jobs, (max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None)
