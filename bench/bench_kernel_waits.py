"""A stage's fixed waits: one small stage notebook (02_split on digits) run in warm kernels, alternately with
jupyter_client's own waits and with the stage's (``scarlab.pipeline.stage._ready_client`` and ``EXIT_POLL_S``).

    python bench/bench_kernel_waits.py              # 8 runs of each, interleaved
    python bench/bench_kernel_waits.py --runs 20

jupyter_client's ``wait_for_ready`` drains IOPub after the kernel_info reply until 0.2 s pass with no message, and
its manager checks every 0.1 s whether a kernel told to shut down has exited; the stage's client stops at the
kernel's idle status for the request it answered and checks every EXIT_POLL_S. Both modes run in this one process,
one after the other, each kernel forked from the same zygote (the first run of each is a warm-up, not counted).
Reports each mode's median seconds per stage (papermill's execute_notebook, kernel start to notebook written), the
spread (min-max) and the difference of the medians.

What it cannot say: the seconds depend on the machine and its load (the modes alternate so that both see the same);
a stage that trains for minutes saves the same ~0.3 s, which is then nothing; how much a pipeline or the test suite
saves depends on how many stages it runs one after the other.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SCARLAB_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=8, help="stages per mode (after one warm-up each)")
    args = ap.parse_args()

    from jupyter_client.asynchronous import AsyncKernelClient

    from scarlab.pipeline import NOTEBOOKS, stage
    from scarlab.pipeline.warm import WarmKernels

    ours = (stage._ready_client, stage.EXIT_POLL_S)
    modes = {"jupyter_client's waits": (lambda: AsyncKernelClient, 0.1), "the stage's": ours}
    times: dict[str, list[float]] = {m: [] for m in modes}
    out = Path(tempfile.mkdtemp(prefix="scarlab-waits-"))
    try:
        with WarmKernels() as warm:
            for i in range(args.runs + 1):
                for name, (client, poll) in (modes.items() if i % 2 == 0 else reversed(modes.items())):
                    stage._ready_client, stage.EXIT_POLL_S = client, poll
                    run = out / f"{len(times[name])}-{i}-{name[:3]}"
                    t = time.perf_counter()
                    stage.run_notebook(NOTEBOOKS / "02_split.ipynb", run.with_suffix(".ipynb"),
                                       {"dataset": "digits", "out_dir": str(run)}, warm.take())
                    if i:
                        times[name].append(time.perf_counter() - t)
    finally:
        stage._ready_client, stage.EXIT_POLL_S = ours
    print(f"02_split on digits, {args.runs} stages per mode after a warm-up, interleaved; load {os.getloadavg()[0]:.2f}")
    med = {}
    for name, ts in times.items():
        med[name] = statistics.median(ts)
        print(f"  {name:24s} median {med[name]:.3f} s per stage (min {min(ts):.3f}, max {max(ts):.3f})")
    a, b = med.values()
    print(f"  difference of the medians: {a - b:.3f} s per stage ({b / a:.2f}x the time)")


if __name__ == "__main__":
    main()
