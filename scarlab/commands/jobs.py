"""`scarlab jobs`: the background jobs of a runs root (launched from the dashboard's Run page or
``scarlab.jobs.launch`` in a notebook): list them, show one, stop one. ``--worker DIR`` is the queue runner a
launch starts (not for typing)."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("jobs", help="list, show or stop the background pipeline jobs of a runs root (the dashboard's "
                                    "Run page and scarlab.jobs.launch start them)",
                       description="The jobs under RUNS/.jobs/: one `scarlab pipeline` each, run one at a time in "
                                   "the order they were submitted.")
    p.add_argument("--runs", default="runs", help="the runs root [default: runs]")
    p.add_argument("--show", metavar="JOB", help="print one job's stage stepper and latest progress")
    p.add_argument("--stop", metavar="JOB", help="stop a job as Ctrl-C twice stops `scarlab pipeline`: the running "
                                                 "stage is marked interrupted, finished stages are kept")
    p.add_argument("--worker", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import jobs
    from ..errors import ScarlabError

    if args.worker:
        return jobs.run_worker(args.worker)
    found = {j.id: j for j in jobs.list_jobs(args.runs)}
    for name in (args.show, args.stop):
        if name and name not in found:
            raise ScarlabError(f"no job {name!r} under {args.runs}/{jobs.JOBS_DIR}"
                               + (f"; jobs: {', '.join(found)}" if found else ""))
    if args.stop:
        job = found[args.stop].stop()
        print(f"job {job.id}: {job.state}")
        return 0
    if args.show:
        print(found[args.show].report())
        return 0
    if not found:
        print(f"no jobs under {args.runs}")
    for row in jobs.jobs_table(list(found.values())):
        print(f"{row['job']}  {row['state']:9s} stages {row['stages']:7s} {row['error']}")
    return 0
