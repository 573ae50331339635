"""`scarlab sweep`: a grid of pipeline configurations, every stage a Ray task (scarlab/sweep.py)."""
from __future__ import annotations

import argparse

from . import _common

EPILOG = """\
CONFIG.yaml holds `scarlab pipeline` keys; a list for a single-valued key is a grid axis:
  datasets: [digits]                 # or dataset: digits; also models, scenarios, forget_sizes, epochs, ...
  models: [tinycnn]
  methods: [scar, finetune]          # the pipeline's own lists: methods, forget_classes, seeds
  forget_classes: [[0], [1]]         # one CR split per entry (scenario: HR takes forget_size instead)
  seeds: [0]
  epochs: 4
  params: {scar: {lambda_2: 5, lr: [0.0005, 0.00025]}}   # a list for a method parameter is an axis too
  out: runs/sweep                    # the runs root; on a cluster a path every node sees
  resources: {num_cpus: 1, num_gpus: 0, unlearn: {num_gpus: 0.5}}   # per Ray task, per stage kind
  # resources: {unlearn: {custom: {worker_node: 1}}}  # only on nodes started with --resources '{"worker_node": 1}'
  unschedulable_timeout: 300         # s a task may wait while no live node can run it (its node was lost)

Stages shared by grid points (one original per data set and model) run once; each starts when the stages it
depends on have finished. Completed stages are reused (same rule as `scarlab pipeline`), so re-running a sweep
resumes it: failed stages run again, the others are kept. DIR/summary.csv lists every run (dashboard: Compare);
DIR/sweep.json records each stage's status, error, start and finish time and host.

Ray is optional: pip install 'scarlab[ray]'. Without --address a local Ray instance is started for the sweep;
it listens on 127.0.0.1 only. On a cluster, every node needs scarlab installed at the same path and the runs
root mounted at the same path; each task gets this shell's SCARLAB_* variables and runs in this folder when its
node has it. A task whose node is lost is retried once elsewhere; one no live node can run is recorded failed
after unschedulable_timeout, and running the sweep again resumes it.

examples:
  scarlab sweep configs/sweep_digits.yaml --num-cpus 4
  scarlab sweep grid.yaml --address auto --out /shared/runs/grid
  scarlab sweep grid.yaml --address 127.0.0.1:6379  # nodes of this machine (ray start --node-ip-address 127.0.0.1)
  scarlab sweep grid.yaml --sequential             # no Ray: the same stages, one at a time in this process
"""


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of pipelines (data sets x models x methods x forget sets x seeds), "
                                     "every stage a Ray task",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
                       description="Expand the grid in CONFIG.yaml into pipeline stages, check every name and value, "
                                   "then execute the stage notebooks as Ray tasks in dependency order (reusing "
                                   "completed stages) and write DIR/summary.csv.")
    p.add_argument("config", metavar="CONFIG.yaml", help="the grid: pipeline keys, lists as axes (see below)")
    p.add_argument("--out", default=None, help="runs root DIR (default: out: in the file, else runs/sweep)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--address", default=None, help="join a running Ray cluster (auto, HOST:PORT) instead")
    p.add_argument("--unschedulable-timeout", type=float, default=None, metavar="S",
                   help="seconds a task may wait while no live node can run it, then it fails (default: "
                        "unschedulable_timeout in the file, else 300)")
    p.add_argument("--sequential", action="store_true", help="no Ray: run the stages one at a time in this process")
    p.add_argument("--dry-run", action="store_true", help="print the stages, their state and resources; run nothing")
    p.add_argument("--force", action="store_true", help="execute every stage, even the reusable ones")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline import stage_state
    from ..schema import load_file
    from ..sweep import plan_sweep, run_sweep, sweep_config, task_resources

    sc = sweep_config(load_file(args.config, "sweep file"), out=args.out, num_cpus=args.num_cpus, address=args.address,
                      unschedulable_timeout=args.unschedulable_timeout)
    if args.dry_run:
        specs = plan_sweep(sc, remote=not args.sequential)
        for s in specs:
            res = task_resources(s, sc)
            custom = "".join(f" {k} {v:g}" for k, v in res.items() if k not in ("num_cpus", "num_gpus"))
            print(f"{stage_state(s):8s} {s.label:34s} cpu {res['num_cpus']:g} gpu {res['num_gpus']:g}{custom}  "
                  f"{s.run_dir}")
        print(f"{len(specs)} stage(s); nothing was run (--dry-run)")
        return 0
    result = run_sweep(sc, sequential=args.sequential, progress=not args.quiet, force=args.force)
    _common.report(result, f"sweep ({result.backend})", ("method", "dataset", "model", "forget_classes", "seed",
                                                         "status", "acc/forget_test", "acc/retain_test", "aus"))
    if result.interrupted:
        print("sweep: interrupted; completed stages are kept and a rerun resumes from them")
        return 130
    return 0 if result.ok else 1
