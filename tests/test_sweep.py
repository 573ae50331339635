"""`scarlab sweep`: grid validation and planning (fast, nothing runs), then a small grid on a local 2-CPU Ray
instance — every stage a Ray task, dependencies respected, a second run reuses everything — a failing task
that stops only its own branch while the rest of the sweep completes, a task no node can run that fails instead
of hanging, and a local Ray instance that listens on 127.0.0.1 only."""
from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from scarlab.pipeline import schedule
from scarlab.cli import main
from scarlab.errors import ScarlabError
from scarlab.pipeline import stage_state
from scarlab.runs import RunDir
from scarlab.sweep import init_ray, plan_sweep, run_sweep, sweep_config, task_resources

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install 'scarlab[ray]'; the dev "
                                                   "extra installs it, so CI runs these tests)")
# the small grid: 2 methods x 2 forget classes x 1 seed, tiny epochs; no evaluation in the first sweep
# (each stage notebook costs a kernel start, the bulk of the time on a 2-core machine)
GRID = dict(datasets=["digits"], models=["tinycnn"], methods=["scar", "finetune"], forget_classes=[[0], [1]],
            seeds=[0], epochs=1, unlearn_epochs=1, device="cpu", evaluate=False)


def write(tmp_path, data, name="grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if isinstance(data, dict) else data)
    return path


# ----------------------------------------------------------------------------------- validation and planning
def test_plan_deduplicates_shared_stages_and_merges_compare(tmp_path):
    specs = plan_sweep(sweep_config({**GRID, "evaluate": True, "models": ["tinycnn", "smallcnn"]}, out=tmp_path))
    kinds = [s.kind for s in specs]
    assert len({s.id for s in specs}) == len(specs)  # every stage once
    assert kinds.count("train_original") == 2  # one per dataset x model
    assert kinds.count("split") == 4 and kinds.count("unlearn") == 8 and kinds.count("compare") == 1
    seen = set()
    for s in specs:  # dependency order
        assert set(s.deps + s.after) <= seen, s.id
        seen.add(s.id)
    cmp = specs[-1]
    assert cmp.kind == "compare" and cmp.run_dir == str(tmp_path.resolve())
    assert len(cmp.params["runs"]) == 2 * 2 * (2 + 2)  # per model: 2 splits x (original, retrained, 2 methods)
    assert set(cmp.after) == {s.id for s in specs if s.kind == "evaluate"}
    # a second axis value that shares the original (unlearn_epochs) plans the original once
    specs = plan_sweep(sweep_config({**GRID, "unlearn_epochs": [1, 2]}, out=tmp_path))
    assert [s.kind for s in specs].count("train_original") == 1 and [s.kind for s in specs].count("unlearn") == 8


def test_a_list_for_a_method_parameter_is_a_grid_axis(tmp_path):
    sc = sweep_config({**GRID, "forget_classes": [[0]], "params": {"scar": {"lr": [0.0005, 0.00025]}}}, out=tmp_path)
    specs = plan_sweep(sc)
    scar = [s for s in specs if s.kind == "unlearn" and s.info["method"] == "scar"]
    assert sorted(s.info["params"]["lr"] for s in scar) == [0.00025, 0.0005] and len({s.run_dir for s in scar}) == 2
    assert [s.kind for s in specs].count("train_original") == 1 and [s.kind for s in specs].count("unlearn") == 3


def test_resources_defaults_and_overrides(tmp_path):
    sc = sweep_config({**GRID, "resources": {"num_cpus": 2, "unlearn": {"num_gpus": 0.5}}}, out=tmp_path)
    res = {s.kind: task_resources(s, sc) for s in plan_sweep(sc)}
    assert res["train_original"] == {"num_cpus": 2.0, "num_gpus": 0.0}
    assert res["unlearn"] == {"num_cpus": 2.0, "num_gpus": 0.5}
    sc = sweep_config({**GRID, "device": "cuda"}, out=tmp_path)  # cuda stages ask for a GPU, split never does
    res = {s.kind: task_resources(s, sc) for s in plan_sweep(sc)}
    assert res["train_original"]["num_gpus"] == 1.0 and res["split"]["num_gpus"] == 0.0
    # custom Ray resources (a node started with --resources '{"worker_node": 1}'): everywhere, per kind on top
    sc = sweep_config({**GRID, "resources": {"custom": {"big_disk": 1}, "unlearn": {"custom": {"worker_node": 0.5}}}},
                      out=tmp_path, unschedulable_timeout=7)
    res = {s.kind: task_resources(s, sc) for s in plan_sweep(sc)}
    assert res["unlearn"] == {"num_cpus": 1.0, "num_gpus": 0.0, "big_disk": 1.0, "worker_node": 0.5}
    assert res["split"] == {"num_cpus": 1.0, "num_gpus": 0.0, "big_disk": 1.0}
    assert sc.unschedulable_timeout == 7.0 and sweep_config(GRID).unschedulable_timeout == 300.0


@pytest.mark.parametrize("data, words", [
    ({**GRID, "methodz": ["scar"]}, ["unknown sweep key(s) methodz", "valid:", "datasets", "resources"]),
    ({**GRID, "methods": ["scar", "nope"]}, ["unknown method(s) nope", "registered methods", "scar_self"]),
    ({**GRID, "datasets": ["digits", "mnist"]}, ["grid point dataset=mnist", "unknown dataset 'mnist'"]),
    ({**GRID, "models": ["tinycnn", "nope"]}, ["unknown model 'nope'", "valid choices"]),
    ({**GRID, "forget_classes": [[0], [12]]}, ["out of range"]),
    ({**GRID, "params": {"scar": {"lamda_2": 1}}}, ["unknown parameter(s) lamda_2", "lambda_2"]),
    ({**GRID, "resources": {"gpus": 1}}, ["unknown resources key 'gpus'", "num_cpus, num_gpus"]),
    ({**GRID, "resources": {"unlearn": {"num_cpus": -1}}}, ["resources.unlearn.num_cpus", "non-negative"]),
    ({**GRID, "jobs": 2}, ["jobs", "resources.num_cpus"]),
    ({**GRID, "dataset": "digits"}, ["either datasets or dataset"]),
    ({**GRID, "out": ["a", "b"]}, ["out takes one value"]),
    ({**GRID, "epochs": []}, ["epochs is an empty list"]),
    ({**GRID, "params": {"scar": {"lr": []}}}, ["scar.lr is an empty list"]),
    ({**GRID, "params": {"scar": {"lrr": [0.1, 0.2]}}}, ["unknown parameter(s) lrr for method 'scar'", "lambda_2"]),
    ({**GRID, "threads": [1, 2]}, ["threads takes one value"]),
    ({**GRID, "num_cpus": 0}, ["num_cpus must be a positive integer"]),
    ({**GRID, "resources": {"custom": {"CPU": 1}}}, ["CPU is not a custom resource name", "num_cpus"]),
    ({**GRID, "resources": {"unlearn": {"custom": [1]}}}, ["resources.unlearn.custom must map"]),
    ({**GRID, "resources": {"custom": {"worker_node": -1}}}, ["resources.custom.worker_node", "non-negative"]),
    ({**GRID, "unschedulable_timeout": 0}, ["unschedulable_timeout must be a positive number"]),
])
def test_bad_grid_is_refused_before_anything_runs(tmp_path, data, words):
    out = tmp_path / "never"
    with pytest.raises(ScarlabError) as err:
        run_sweep(sweep_config(data, out=out), sequential=True, progress=False)
    for w in words:
        assert w in str(err.value), str(err.value)
    assert not out.exists()


@pytest.mark.parametrize("text, words", [
    ("methods: [scar\n", ["is not valid YAML"]),
    ("- scar\n- finetune\n", ["must hold a mapping"]),
    ("datasets: [digits]\nmethodz: [scar]\nforget_classes: [0]\n", ["unknown sweep key(s) methodz"]),
])
def test_cli_bad_yaml_is_a_clear_error(tmp_path, capsys, text, words):
    assert main(["sweep", str(write(tmp_path, text)), "--out", str(tmp_path / "x"), "--sequential"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scarlab: error: ") and "Traceback" not in err  # (YAML's own message may add lines)
    for w in words:
        assert w in err, err
    assert not (tmp_path / "x").exists()


def test_without_ray_the_error_names_the_extra_and_sequential(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["sweep", str(write(tmp_path, GRID)), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'scarlab[ray]'" in err and "--sequential" in err
    assert not (tmp_path / "x").exists()


def test_dry_run_lists_each_stage_once(tmp_path, capsys):
    assert main(["sweep", str(write(tmp_path, GRID)), "--out", str(tmp_path / "x"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "9 stage(s); nothing was run" in out and out.count("train original") == 1
    assert "cpu 1 gpu 0" in out and not (tmp_path / "x").exists()


def test_a_lost_task_marks_its_running_run_failed(tmp_path):
    # Ray lost the task (its node died) while the run read "running": on another machine nothing else would
    # ever say that its writer is gone, so the sweep marks it failed; a finished run is left alone
    spec = plan_sweep(sweep_config(GRID, out=tmp_path))[0]
    run = RunDir.create(Path(spec.run_dir), stage=spec.kind, config={})
    assert run.manifest["status"] == "running"
    out = schedule._lost(spec, "NodeDiedError: the node running it died")
    assert out["error"].startswith("NodeDiedError") and out["started"] is None
    assert RunDir(spec.run_dir).manifest["status"] == "failed" and "NodeDiedError" in RunDir(spec.run_dir).error
    schedule._lost(spec, "again")
    assert "NodeDiedError" in RunDir(spec.run_dir).error


# ----------------------------------------------------------------------------------- on Ray
@pytest.fixture(scope="module")
def ray_2cpu():
    """One local Ray instance with 2 CPUs for the module (starting one costs ~10-30 s on a 2-core machine),
    started by the sweep's own init_ray in a temp folder of its own (short: Ray's socket paths must fit);
    run_sweep uses a connection its caller already made."""
    if not HAS_RAY:
        pytest.skip("ray is not installed (pip install 'scarlab[ray]')")
    import ray

    temp = tempfile.mkdtemp(prefix="scr-", dir="/tmp" if os.path.isdir("/tmp") else None)
    auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # no token written to the home folder
    init_ray(num_cpus=2, _temp_dir=temp)
    yield ray
    ray.shutdown()
    if auth is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = auth
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("sweep")


@pytest.fixture(scope="module")
def first_sweep(ray_2cpu, root):
    t0 = time.perf_counter()
    result = run_sweep(sweep_config(GRID, out=root), progress=False)
    print(f"\nsweep on Ray (2 CPUs), first run: {time.perf_counter() - t0:.1f}s ({len(result.stages)} stages)")
    return result


@needs_ray
def test_sweep_on_ray_completes_every_stage_in_dependency_order(first_sweep, root):
    r = first_sweep
    assert r.backend == "ray" and r.ok, r.table().to_string()
    assert [s.status for s in r.stages] == ["complete"] * 9
    specs = {s.id: s for s in plan_sweep(sweep_config(GRID, out=root))}
    records = {}
    for s in r.stages:
        assert RunDir(s.run_dir).status == "complete"
        rec = records[s.id] = RunDir(s.run_dir).manifest["stages"][s.kind]
        assert rec["status"] == "complete" and rec["fingerprint"] == specs[s.id].fingerprint
    assert sorted(s.info["method"] for s in r.stages if s.kind == "unlearn") == ["finetune", "finetune", "scar", "scar"]
    # every stage started after each of its dependencies had finished: by the task's own clock and by the records
    for sid, spec in specs.items():
        for dep in spec.deps:
            assert r.timings[sid]["started"] >= r.timings[dep]["finished"], (sid, dep)
            assert records[sid]["finished"] - records[sid]["seconds"] >= records[dep]["finished"], (sid, dep)
    # and Ray ran independent stages at the same time
    spans = [(t["started"], t["finished"]) for t in r.timings.values()]
    assert any(a[0] < b[1] and b[0] < a[1] for a, b in itertools.combinations(spans, 2))
    log = json.loads((root / "sweep.json").read_text())
    assert log["backend"] == "ray" and {s["status"] for s in log["stages"]} == {"complete"}
    assert all(s["host"] and s["started"] for s in log["stages"])


@needs_ray
def test_second_sweep_reuses_every_stage(first_sweep, root, tmp_path, capsys):
    before = {p: p.stat().st_mtime for p in root.rglob("manifest.json")}
    assert main(["sweep", str(write(tmp_path, GRID)), "--out", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "0 executed, 9 reused, 0 failed, 0 blocked" in out, out
    assert {p: p.stat().st_mtime for p in root.rglob("manifest.json")} == before  # nothing was executed
    assert {s["status"] for s in json.loads((root / "sweep.json").read_text())["stages"]} == {"skipped"}
    again = run_sweep(sweep_config(GRID, out=root), sequential=True, progress=False)  # same plan without Ray
    assert again.backend == "sequential" and {s.status for s in again.stages} == {"skipped"}


@needs_ray
def test_a_failing_task_stops_only_its_branch(first_sweep, root):
    # an absurd lr (1e30) passes validation but the loss becomes NaN inside SCAR's notebook, in its Ray task;
    # evaluating the other runs (new stages here) goes on, SCAR's evaluation is blocked, and the summary lists it
    grid = {**GRID, "forget_classes": [[0]], "evaluate": True, "params": {"scar": {"lr": 1e30}}}
    r = run_sweep(sweep_config(grid, out=root), progress=False)
    by = {(s.kind, s.info.get("method")): s for s in r.stages}
    failed = by[("unlearn", "scar")]
    assert failed.status == "failed" and "became nan" in failed.error
    assert "became nan" in RunDir(failed.run_dir).manifest["error"]
    assert by[("evaluate", "scar")].status == "blocked" and "did not complete" in by[("evaluate", "scar")].error
    assert by[("unlearn", "finetune")].status == "skipped" and by[("train_original", "original")].status == "skipped"
    assert {by[("evaluate", m)].status for m in ("original", "retrained", "finetune")} == {"complete"}
    assert by[("compare", None)].status == "complete" and [s.label for s in r.failed] == [failed.label]
    df = r.summary().set_index("method")
    assert df.loc["scar", "status"] == "failed" and "became nan" in df.loc["scar", "error"]
    assert (df.loc[["original", "retrained", "finetune"], "status"] == "complete").all()
    assert (root / "summary.md").is_file()
    # resuming: the failed stage is not reusable (it runs again), everything else is
    states = {s.id: stage_state(s) for s in plan_sweep(sweep_config(grid, out=root))}
    assert states.pop(failed.id) == "failed" and states.pop(by[("evaluate", "scar")].id) == "missing"
    assert set(states.values()) == {"current"}


@needs_ray
def test_a_request_no_node_can_satisfy_is_refused(ray_2cpu, tmp_path):
    sc = sweep_config({**GRID, "resources": {"unlearn": {"num_cpus": 3}}}, out=tmp_path / "never")
    with pytest.raises(ScarlabError, match=r"unlearn scar s0 CR 0.*num_cpus=3 but the Ray instance has 2 CPU"):
        run_sweep(sc, progress=False)
    assert not (tmp_path / "never").exists() and ray_2cpu.is_initialized()


@needs_ray
def test_the_local_ray_instance_listens_on_loopback_only(first_sweep):
    # every server of the instance the sweep's init_ray started (GCS, raylet, object manager, agents, the
    # workers that ran the stages, this driver's own core worker) binds 127.0.0.1, none 0.0.0.0 / :: / *
    import psutil

    me = psutil.Process()
    listening = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except psutil.Error:  # ended meanwhile
            continue
        listening += [(name, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    names = {n for n, _, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening
    loopback = ("127.0.0.1", "::ffff:127.0.0.1", "::1")
    assert [x for x in listening if x[1] not in loopback] == [], listening
    assert first_sweep.ok and all(t.get("node") for t in first_sweep.timings.values())


@needs_ray
def test_a_task_no_node_can_run_fails_instead_of_hanging(ray_2cpu, tmp_path, monkeypatch):
    # on a cluster (address given: no up-front refusal, an autoscaler might add the node) every stage asks for
    # a resource no live node has, as after losing the only node that had it: each waiting task is cancelled
    # after unschedulable_timeout and recorded failed, its dependants blocked, and the sweep returns
    monkeypatch.setattr(schedule, "POLL_S", 0.2)
    sc = sweep_config({**GRID, "methods": ["finetune"], "forget_classes": [[0]],
                       "resources": {"custom": {"lost_node": 1}}}, out=tmp_path / "root", address="auto",
                      unschedulable_timeout=1)
    t0 = time.perf_counter()
    r = run_sweep(sc, progress=False)
    assert time.perf_counter() - t0 < 60
    failed = [s for s in r.stages if s.status == "failed"]  # the stages that depend on nothing
    assert sorted(s.kind for s in failed) == ["split", "train_original"], r.table().to_string()
    for s in failed:
        assert s.error.startswith("unschedulable: for ") and "lost_node=1" in s.error, s.error
        assert "Rerun the sweep to resume" in s.error
    assert {s.status for s in r.stages if s not in failed} == {"blocked"}
    assert not r.ok and ray_2cpu.is_initialized()
    log = json.loads((tmp_path / "root" / "sweep.json").read_text())
    assert {s["status"] for s in log["stages"]} == {"failed", "blocked"}
