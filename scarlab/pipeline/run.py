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
from .schedule import Local, schedule


def run_pipeline(cfg: PipelineConfig, progress: bool = True, force: bool = False, events: str | None = None):
    """Plan ``cfg`` (validating every grid point first), execute every stage that is not current, summarise;
    returns a :class:`scarlab.pipeline.schedule.PipelineResult`.

    Stages run in dependency order, ``cfg.jobs`` at a time; a failed stage blocks only its dependants.
    ``events``: a file that gets one JSON line per stage start and end (``scarlab.jobs`` follows it).
    """

    t0 = time.perf_counter()
    points = grid(cfg)
    specs = plan_points(points)
    first = points[0][1]  # jobs, threads and out are single-valued: the same in every point
    root = Path(first.out).expanduser().resolve()
    make_folder(root, "pipeline folder (--out)")
    write_yaml(root / "pipeline.yaml", dataclasses.asdict(cfg),
               "the configuration of the last `scarlab pipeline` run in this folder")
    threads = first.threads or (max(1, (os.cpu_count() or 1) // first.jobs) if first.jobs > 1 else None)
    with contextlib.ExitStack() as stack:
        tell = None
        if events:
            out = stack.enter_context(open(events, "a", encoding="utf-8"))

            def tell(event: dict) -> None:
                out.write(json.dumps(event) + "\n")
                out.flush()
        executor = stack.enter_context(Local(first.jobs, threads))
        return schedule(specs, executor, cfg, root, what="pipeline",
                        progress=progress, force=force, since=t0, events=tell)
