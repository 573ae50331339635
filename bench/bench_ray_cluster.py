"""`scarlab sweep --address` on a real two-node Ray cluster of this machine, with a node lost mid-sweep.

    python bench/bench_ray_cluster.py                 # configs/sweep_digits_cluster.yaml; bench/out/ray_cluster.md
    python bench/bench_ray_cluster.py --kill-after 20 --keep

1. starts a head node (1 CPU) and a worker node (1 CPU, custom resource worker_node: 1), both on 127.0.0.1 only,
   each with its own temp folder; RAY_AUTH_MODE=disabled;
2. runs `scarlab sweep CONFIG --address 127.0.0.1:PORT --out TMP/sweep` (the config sends the unlearning stages
   to worker_node, the rest anywhere); once a stage has run --kill-after seconds on the worker node, every
   process of that node (raylet, workers, their notebook kernels, agents) is killed with SIGKILL;
3. waits for the sweep to end (its lost tasks fail after unschedulable_timeout instead of hanging);
4. starts a new worker node and runs the same command again: completed stages are reused, lost ones run;
5. runs the same grid with --sequential into TMP/sequential and compares the two summary.csv files (every column
   but times, paths and errors).

Every process it started is stopped at the end, even on failure (by PID: `ray stop` would stop every Ray
instance of the machine). Ray rewrites a loopback node address to this machine's network address unless its
"clusters enabled" switch is off, and `ray start --address` refuses to start with that switch off: the head is
started with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, the worker through `ray start` with that rewrite disabled
(see WORKER_START), so that nothing listens on another interface than 127.0.0.1.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
# `ray start` for a node that joins a cluster, with the loopback address kept (Ray would replace 127.0.0.1 by
# the machine's network address, and its switch that prevents this also forbids joining a cluster)
WORKER_START = ("import sys; from ray._private import services; services.resolve_ip_for_localhost = lambda h: h; "
                "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())")
SKIP_COLUMNS = ("run", "error")  # paths and messages; time/* columns are skipped too


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def ray_exe() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.is_file() else (shutil.which("ray") or "ray")


def node_ports() -> list[str]:
    """Ports of a node's agents, chosen free (the defaults are fixed numbers another Ray instance may hold)."""
    return ["--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
            "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port())]


def in_dir(args: list[str], folder: str) -> bool:
    return any(a == folder or a.endswith("=" + folder) or folder + "/" in a for a in args)


def node_processes(folder: str) -> list[psutil.Process]:
    """Every process of the Ray node whose temp folder is ``folder``: those naming it on their command line
    (raylet, GCS, log monitor, ...) and all their descendants (workers, kernels, agents)."""
    found: dict[int, psutil.Process] = {}
    me = os.getpid()
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid != me and p.info["cmdline"] and in_dir(p.info["cmdline"], folder):
                found[p.pid] = p
                for c in p.children(recursive=True):
                    found[c.pid] = c
        except psutil.Error:
            continue
    return list(found.values())


def raylet(folder: str) -> psutil.Process | None:
    for p in node_processes(folder):
        try:
            if p.name() == "raylet":
                return p
        except psutil.Error:
            continue
    return None


def node_id(folder: str) -> str | None:
    p = raylet(folder)
    try:
        args = p.cmdline() if p else []
    except psutil.Error:
        return None
    return next((a.split("=", 1)[1] for a in args if a.startswith("--node_id=")), None)


def kill_node(folder: str) -> list[str]:
    """SIGKILL every process of the node (raylet first), as if its machine had stopped."""
    def not_raylet(p: psutil.Process) -> bool:
        try:
            return p.name() != "raylet"
        except psutil.Error:
            return True

    procs = sorted(node_processes(folder), key=not_raylet)
    killed = []
    for p in procs:
        try:
            name = p.name()
            p.send_signal(signal.SIGKILL)
            killed.append(f"{name}:{p.pid}")
        except psutil.Error:
            continue
    psutil.wait_procs(procs, timeout=10)
    return killed


def listening_elsewhere(folders: list[str]) -> list[str]:
    """Sockets of the cluster's processes that listen on anything but loopback."""
    bad = []
    for folder in folders:
        for p in node_processes(folder):
            try:
                for c in p.net_connections(kind="inet"):
                    if c.status == psutil.CONN_LISTEN and c.laddr.ip not in (LOOPBACK, "::ffff:127.0.0.1", "::1"):
                        bad.append(f"{p.name()}:{p.pid} {c.laddr.ip}:{c.laddr.port}")
            except psutil.Error:
                continue
    return bad


def start_node(cmd: list[str], env: dict, log: Path) -> None:
    with open(log, "a") as fh:
        proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (rc {proc.returncode}); see {log}")


def running_stage(folder: str, prefix: str = "") -> tuple[str, int] | None:
    """(task name, worker PID) of a stage task whose name starts with ``prefix`` running on the node, else None
    (a worker's title is ray::NAME while it runs the task NAME, ray::IDLE between tasks)."""
    for p in node_processes(folder):
        try:
            title = " ".join(p.cmdline())
            if title.startswith("ray::" + prefix) and not title.startswith(("ray::IDLE", "ray::DashboardAgent",
                                                                            "ray::RuntimeEnvAgent", "ray::_")):
                return title[len("ray::"):].strip(), p.pid
        except psutil.Error:
            continue
    return None


def stages_of(out: Path) -> list[dict]:
    try:
        return json.loads((out / "sweep.json").read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return []


def counts(stages: list[dict], nodes: dict) -> dict:
    n = {k: sum(s["status"] == k for s in stages) for k in ("complete", "skipped", "failed", "blocked")}
    where = {}
    for s in stages:
        if s["status"] == "complete":
            label = nodes.get(s.get("node"), "?") if s.get("node") else "the sweep's process"
            where[label] = where.get(label, 0) + 1
    return {"total": len(stages), "executed": n["complete"], "reused": n["skipped"], "failed": n["failed"],
            "blocked": n["blocked"], "where": where}


def summary_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = [c for c in (rows[0].keys() if rows else []) if c not in SKIP_COLUMNS and not c.startswith("time/")]
    return cols, rows


def compare_summaries(a: Path, b: Path) -> tuple[bool, str]:
    if not a.is_file() or not b.is_file():
        return False, f"missing: {a if not a.is_file() else b}"
    cols_a, rows_a = summary_rows(a)
    cols_b, rows_b = summary_rows(b)
    if cols_a != cols_b:
        return False, f"different columns: {sorted(set(cols_a) ^ set(cols_b))}"
    key = ("method", "dataset", "model", "scenario", "forget_classes", "seed")

    def norm(rows):
        return sorted(tuple(r.get(c, "") for c in cols_a) for r in rows)

    ra, rb = norm(rows_a), norm(rows_b)
    metrics = [c for c in cols_a if c not in key and c != "status"]
    if ra == rb:
        return True, f"{len(ra)} rows; {len(cols_a)} columns compared ({', '.join(metrics)})"
    diff = []
    for x, y in zip(ra, rb):
        for c, u, v in zip(cols_a, x, y):
            if u != v:
                diff.append(f"{c}: {u} vs {v}")
    return False, f"{len(ra)} vs {len(rb)} rows; first differences: {'; '.join(diff[:5])}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/sweep_digits_cluster.yaml")
    ap.add_argument("--kill-after", type=float, default=10.0,
                    help="kill the worker node once a stage has run this many seconds on it")
    ap.add_argument("--kill-during", default="unlearn", metavar="PREFIX",
                    help="only a stage whose label starts with this ('' = any stage)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per sweep run, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (runs, Ray logs)")
    ap.add_argument("--report", default=str(ROOT / "bench" / "out" / "ray_cluster.md"))
    args = ap.parse_args(argv)
    config = str(Path(args.config))
    tmp = Path(tempfile.mkdtemp(prefix="scrc-", dir="/tmp" if os.path.isdir("/tmp") else None))  # short: sockets
    head_dir, workers = str(tmp / "h"), []
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    address = f"{LOOPBACK}:{port}"
    lines: list[str] = []
    say = lines.append
    sweep_proc = None
    started_wall, load0 = time.time(), os.getloadavg()[0]
    try:
        # ------------------------------------------------------------------ the cluster
        ray = ray_exe()
        head_cmd = [ray, "start", "--head", "--node-ip-address", LOOPBACK, "--port", str(port), "--num-cpus", "1",
                    "--include-dashboard=false", "--temp-dir", head_dir, "--disable-usage-stats", *node_ports()]
        start_node(head_cmd, {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}, tmp / "ray_start.log")

        def start_worker() -> tuple[str, list[str]]:
            folder = str(tmp / f"w{len(workers) + 1}")
            workers.append(folder)
            cmd = [sys.executable, "-c", WORKER_START, "start", "--address", address, "--node-ip-address", LOOPBACK,
                   "--num-cpus", "1", "--resources", '{"worker_node": 1}', "--temp-dir", folder,
                   "--disable-usage-stats", *node_ports()]
            start_node(cmd, env, tmp / "ray_start.log")
            return folder, cmd

        def show(cmd: list[str]) -> str:
            return " ".join(c if c != WORKER_START else "'<ray start, loopback kept>'" for c in cmd)

        worker_dir, worker_cmd = start_worker()
        nodes = {node_id(head_dir): "head", node_id(worker_dir): "worker 1"}
        exposed = listening_elsewhere([head_dir, worker_dir])
        sweep_cmd = [sys.executable, "-m", "scarlab", "sweep", config, "--address", address, "--out",
                     str(tmp / "sweep")]

        def run(cmd: list[str], label: str, watch: str | None = None) -> dict:
            nonlocal sweep_proc
            log = tmp / f"{label}.log"
            t0 = time.time()
            kill, seen = None, {}
            with open(log, "w") as fh:
                sweep_proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
                while sweep_proc.poll() is None:
                    if time.time() - t0 > args.timeout:
                        sweep_proc.kill()
                        raise RuntimeError(f"{label} did not finish in {args.timeout:.0f}s; see {log}")
                    if watch and kill is None:
                        stage = running_stage(watch, args.kill_during)
                        since = seen.setdefault(stage, time.time()) if stage else None
                        if stage and time.time() - since >= args.kill_after:
                            nid = node_id(watch)
                            exposed.extend(listening_elsewhere([head_dir, *workers]))  # workers, kernels too
                            killed = kill_node(watch)
                            kill = {"at_s": round(time.time() - t0, 1), "stage": stage[0], "node": nid,
                                    "ran_s": round(time.time() - since, 1), "processes": killed}
                            print(f"[bench] killed {nodes.get(nid, nid)} at {kill['at_s']}s while `{stage[0]}` "
                                  f"ran on it ({len(killed)} processes)", flush=True)
                    time.sleep(0.5)
            wall, rc = time.time() - t0, sweep_proc.returncode
            sweep_proc = None
            stages = stages_of(Path(cmd[cmd.index("--out") + 1]))
            res = {"label": label, "cmd": show(cmd), "rc": rc, "wall_s": round(wall, 1), "stages": stages,
                   "kill": kill, "log": str(log)}
            print(f"[bench] {label}: {wall:.0f}s, {counts(stages, nodes)}", flush=True)
            return res

        r1 = run(sweep_cmd, "run1", watch=worker_dir)
        worker2_dir, worker2_cmd = start_worker()
        nodes[node_id(worker2_dir)] = "worker 2"
        r2 = run(sweep_cmd, "run2")
        exposed.extend(listening_elsewhere([head_dir, *workers]))
        seq_cmd = [sys.executable, "-m", "scarlab", "sweep", config, "--sequential", "--out", str(tmp / "sequential")]
        r3 = run(seq_cmd, "sequential")
        same, detail = compare_summaries(tmp / "sweep" / "summary.csv", tmp / "sequential" / "summary.csv")

        # ------------------------------------------------------------------ the report
        say("# `scarlab sweep --address` on a two-node Ray cluster (one machine, 127.0.0.1)")
        say("")
        say(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores (shared; load average at the start "
            f"{load0:.1f}, at the end {os.getloadavg()[0]:.1f}), Ray {_ray_version()}, config `{config}`; the bench "
            f"took {time.time() - started_wall:.0f}s.")
        say("")
        say("Cluster (RAY_AUTH_MODE=disabled; each node its own temp folder):")
        say(f"- head, node {_short(node_id(head_dir))}: `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 {show(head_cmd)}`")
        say(f"- worker 1, node {_short(_key(nodes, 'worker 1'))}: `{show(worker_cmd)}`")
        say(f"- sockets of the cluster's processes (checked after start, before the kill, after run 2) that listen "
            f"on anything but 127.0.0.1: {', '.join(sorted(set(exposed))) if exposed else 'none'}")
        say("")
        say("| run | command | rc | wall s | stages | executed | reused | failed | blocked | executed on |")
        say("|---|---|---|---|---|---|---|---|---|---|")
        for r in (r1, r2, r3):
            c = counts(r["stages"], nodes)
            on = ", ".join(f"{k} {v}" for k, v in sorted(c["where"].items())) or "-"
            say(f"| {r['label']} | `{r['cmd']}` | {r['rc']} | {r['wall_s']} | {c['total']} | {c['executed']} | "
                f"{c['reused']} | {c['failed']} | {c['blocked']} | {on} |")
        say("")
        k = r1["kill"]
        if k:
            say(f"Node kill: worker 1 (node {_short(k['node'])}) at {k['at_s']}s into run 1, while "
                f"`{k['stage']}` had run {k['ran_s']}s on it: SIGKILL to {len(k['processes'])} processes "
                f"({', '.join(k['processes'])}).")
        else:
            say("Node kill: no stage ran on the worker node during run 1; nothing was killed.")
        failed = [s for s in r1["stages"] if s["status"] == "failed"]
        for s in failed:
            say(f"- run 1 failed `{s['label']}`: {str(s.get('error') or '').splitlines()[0][:200]}")
        blocked = [s["label"] for s in r1["stages"] if s["status"] == "blocked"]
        if blocked:
            say(f"- run 1 blocked: {', '.join(blocked)}")
        say("")
        c2 = counts(r2["stages"], nodes)
        again = [s["label"] for s in r2["stages"] if s["status"] == "complete"]
        say(f"Resume: worker 2 started (node {_short(_key(nodes, 'worker 2'))}, same command, new temp folder); "
            f"run 2 executed {c2['executed']} ({', '.join(again) or '-'}), reused {c2['reused']}, failed "
            f"{c2['failed']}, blocked {c2['blocked']}.")
        say("")
        say(f"Summary identical (run 2 vs --sequential, every column but time/*, run, error): "
            f"{'yes' if same else 'no'} — {detail}")
        ok = bool(same and r2["rc"] == 0 and r3["rc"] == 0)
    except Exception as exc:  # noqa: BLE001 - still write what happened, then clean up
        say(f"\nBENCH FAILED: {type(exc).__name__}: {exc}")
        ok = False
    finally:
        if sweep_proc is not None and sweep_proc.poll() is None:
            sweep_proc.kill()
            sweep_proc.wait()
        for folder in [*workers, head_dir]:
            kill_node(folder)
        left = [f"{p.name()}:{p.pid}" for f in [*workers, head_dir] for p in node_processes(f) if p.is_running()]
        say("")
        say(f"Stopped: every process of the cluster (by PID); still running: {', '.join(left) or 'none'}.")
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            say(f"Kept: {tmp}")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(text)
    return 0 if ok else 1


def _short(nid: str | None) -> str:
    return nid[:8] if nid else "?"


def _key(d: dict, value: str):
    return next((k for k, v in d.items() if v == value), None)


def _ray_version() -> str:
    try:
        from importlib.metadata import version
        return version("ray")
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    sys.exit(main())
