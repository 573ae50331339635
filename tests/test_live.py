"""The live lab: pipeline jobs under <runs>/.jobs (scarlab.jobs) queue, report their stages, stop as Ctrl-C twice
does, refuse unsafe configurations; the dashboard's Run page (AppTest) checks with the CLI's validation and
launches; no Run page read-only or beyond loopback. Toy scale: digits, 2 training epochs."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from scarlab import jobs as J
from scarlab.errors import ScarlabError

REPO = Path(__file__).resolve().parents[1]
BASE = {"dataset": "digits", "forget_classes": [3], "methods": ["scar"], "epochs": 2, "evaluate": False}


@pytest.fixture(autouse=True)
def _jupyter_path(monkeypatch):
    """Stage kernels need a kernelspec: the worktree's venv shares the main one's (scarlab.pipeline.ensure_kernel
    writes its own otherwise)."""
    for cand in (REPO / ".venv" / "share" / "jupyter", REPO.parent / "main" / ".venv" / "share" / "jupyter"):
        if cand.is_dir() and "JUPYTER_PATH" not in os.environ:
            monkeypatch.setenv("JUPYTER_PATH", str(cand))
            break


def _manifest(run_dir) -> dict:
    return json.loads((Path(run_dir) / "manifest.json").read_text())


# ----------------------------------------------------------------------------- safety (no subprocess)
def test_unsafe_configurations_are_refused(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    data = tmp_path / "data" / "mini"
    (data / "train" / "a").mkdir(parents=True)
    (data / "test" / "a").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    (outside / "train").mkdir(parents=True)
    (outside / "test").mkdir()
    ok = J.safe_config({**BASE, "dataset": f"imagefolder:{data}"}, root, [tmp_path / "data"])
    assert ok["out"] == str(root.resolve()) and ok["dataset"] == f"imagefolder:{data.resolve()}"
    assert J.safe_config({**BASE, "out": "grid"}, root)["out"] == str(root.resolve() / "grid")
    bad = [({"out": "../x"}, "only inside the runs root"), ({"out": "/tmp/x"}, "only inside the runs root"),
           ({"out": ".jobs"}, "only inside the runs root"), ({"notebooks": "/tmp"}, "cannot be set"),
           ({"data_root": "/tmp"}, "cannot be set"),
           ({"dataset": f"imagefolder:{outside}"}, "outside the allowed data folders"),
           ({"dataset": f"imagefolder:{tmp_path}/data/../elsewhere"}, "'..'"),
           ({"surrogate": f"imagefolder:{outside}"}, "outside the allowed data folders")]
    for extra, message in bad:
        with pytest.raises(ScarlabError, match=message.replace("(", r"\(").replace(".", r"\.")):
            J.safe_config({**BASE, **extra}, root, [tmp_path / "data"])
    assert J.safe_config({**BASE, "original": "mine"}, root)["original"] == str(root.resolve() / "mine")
    for value in ("../mine", str(tmp_path / "elsewhere")):
        with pytest.raises(ScarlabError, match="inside the runs root"):
            J.safe_config({**BASE, "original": value}, root)
    assert J.image_folders([tmp_path / "data"])["datasets"] == [f"imagefolder:{data.resolve()}"]
    with pytest.raises(ScarlabError, match="out"):  # and submit writes nothing then
        J.submit({**BASE, "out": "../x"}, root)
    assert not (root / ".jobs").exists() or not any((root / ".jobs").iterdir())


def test_check_is_the_pipelines_validation(tmp_path):
    """A bad option is the CLI's one line; a good one is the plan with each stage's state and an estimate."""
    with pytest.raises(ScarlabError) as exc:
        J.check({**BASE, "forget_classes": [33]}, tmp_path)
    assert str(exc.value) == "forget class 33 is out of range: digits has classes 0..9"
    plan = J.check({**BASE, "params": {"scar": {"lr": [0.0005, 0.00025]}}}, tmp_path)
    kinds = [s["kind"] for s in plan["stages"]]
    assert kinds.count("unlearn") == 2 and all(s["state"] == "missing" for s in plan["stages"])
    assert plan["estimate"]["seconds"] > 0 and "fixed guess" in plan["estimate"]["note"]
    assert not any(tmp_path.iterdir())  # checking writes nothing


# ----------------------------------------------------------------------------- queue, stepper, stop
def test_jobs_queue_run_in_order_and_stop_marks_the_stage_interrupted(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    grid = {**BASE, "params": {"scar": {"lr": [0.0005, 0.00025], "epochs": 2}}}
    first = J.submit(grid, root, plan=J.check(grid, root))
    second = J.submit(grid, root)  # queued behind the first (and then reuses all it made)
    time.sleep(1.5)
    assert second.refresh().state == "queued"
    first.wait(timeout=300)
    assert first.state == "finished", first.log_tail()
    stages = first.stages()
    assert [s["status"] for s in stages] == ["complete"] * len(stages)
    assert sum(s["kind"] == "unlearn" for s in stages) == 2
    second.wait(timeout=300)
    assert second.state == "finished", second.log_tail()
    assert second.started >= first.ended  # one at a time, in order
    reused = {s["kind"] for s in second.stages() if s["status"] == "skipped"}
    assert {"train_original", "split", "train_retrained", "unlearn"} <= reused
    done = [s["run_dir"] for s in first.stages() if s["kind"] == "unlearn"]
    before = {d: (Path(d) / "manifest.json").stat().st_mtime_ns for d in done}

    third = J.submit({**BASE, "params": {"scar": {"lr": 0.0001, "epochs": 200}}}, root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = third.running_stage()
        if run and run["kind"] == "unlearn" and (Path(run["run_dir"]) / "history.csv").is_file():
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"the third job's unlearning never started: {third.refresh().report()}")
    third.stop(grace=20)
    assert third.state == "stopped", third.report()
    stopped = next(s for s in third.stages() if s["kind"] == "unlearn")
    assert stopped["status"] == "interrupted"
    m = _manifest(stopped["run_dir"])
    assert m["status"] == "failed" and m["error"].startswith("interrupted")  # as Ctrl-C twice marks it
    assert {d: (Path(d) / "manifest.json").stat().st_mtime_ns for d in done} == before  # finished runs untouched
    assert all(_manifest(d)["status"] == "complete" for d in done)
    assert [j.id for j in J.list_jobs(root)] == [first.id, second.id, third.id]
    assert "interrupted" in third.report()


def test_a_queued_job_stops_without_running(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    blocker = J.submit({**BASE, "params": {"scar": {"epochs": 200}}}, root)
    queued = J.submit(BASE, root)
    time.sleep(1.0)
    assert queued.stop().state == "stopped" and queued.started is None
    blocker.stop(grace=20)
    assert blocker.state == "stopped"


def test_dead_worker_reads_failed(tmp_path):
    root = tmp_path / "runs"
    job_dir = root / ".jobs" / "x"
    job_dir.mkdir(parents=True)
    (job_dir / "job.json").write_text(json.dumps({"id": "x", "created": time.time() - 100, "root": str(root)}))
    (job_dir / "state.json").write_text(json.dumps({"state": "running", "pid": 2**22 + 12345, "pgid": 2**22 + 12345}))
    job = J.Job.load(job_dir)
    assert job.state == "failed" and "ended without" in job.error


def test_live_embedding_of_the_snapshots_so_far(digits_scar):
    """The Run page's migration plot: one frame per snapshot written, on PCA axes of the first snapshot."""
    from scarlab_dashboard import data as D
    from scarlab_dashboard import plots as P

    root = digits_scar.parent.resolve()
    emb = D.live_embedding(digits_scar, root)
    assert emb.error is None
    n = len(list((digits_scar / "features").glob("step_*.npz")))
    assert emb.value["step"].nunique() == n > 1
    fig = P.migration_figure(emb.value, None, None, method="scar")
    assert len(fig.frames) == n


# ----------------------------------------------------------------------------- the page
def test_run_page_refused_read_only_and_beyond_loopback(monkeypatch):
    from scarlab.commands.dashboard import app_args
    from scarlab_dashboard import data as D

    monkeypatch.delenv("SCARLAB_READ_ONLY", raising=False)
    assert D.run_page_refusal(["--runs", "x"], "127.0.0.1") is None
    assert "read-only" in D.run_page_refusal(["--read-only"], "127.0.0.1")
    assert "beyond this machine" in D.run_page_refusal([], "0.0.0.0")
    assert "beyond this machine" in D.run_page_refusal([], "")  # streamlit's default binds every interface
    assert D.run_page_refusal(["--allow-remote-run"], "0.0.0.0") is None
    assert app_args(True, False, ()) == ["--read-only"]
    with pytest.raises(ScarlabError, match="no such folder"):
        app_args(False, False, ["/nonexistent/data"])


@pytest.fixture()
def run_app(tmp_path, monkeypatch):
    import streamlit.config
    from streamlit.testing.v1 import AppTest

    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("SCARLAB_RUNS", str(root))
    old = streamlit.config.get_option("server.address")
    streamlit.config.set_option("server.address", "127.0.0.1")
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("views/run.py").run()
    assert not at.exception, [e.value for e in at.exception]
    yield at, root
    streamlit.config.set_option("server.address", old)


def test_run_page_form_checks_and_launches(run_app):
    at, root = run_app
    # the form is the declarations: every SCAR parameter with its digits default and help
    lr = at.text_input(key="run_p_scar_lr_digits")
    assert lr.value and "[default:" in lr.help
    at.text_input(key="run_p_scar_lr_digits").set_value("-1")
    at.button(key="run_launch").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "lr" in errors[0] and "\n" not in errors[0], errors
    assert not (root / ".jobs").exists()  # nothing launched on an invalid plan
    at.text_input(key="run_p_scar_lr_digits").set_value("0.0005, 0.00025")
    at.multiselect(key="run_classes_digits").set_value([3])
    at.text_input(key="run_epochs").set_value("2")
    at.button(key="run_check").click().run()
    assert not at.exception and not at.error
    plan = [m.value for m in at.markdown if m.value.startswith("**Plan:**")]
    assert plan and "10 stages, 10 to run" in plan[0], plan
    at.button(key="run_launch").click().run()
    assert not at.exception and not at.error
    jobs = J.list_jobs(root)
    assert len(jobs) == 1 and jobs[0].config()["params"] == {"scar": {"lr": [0.0005, 0.00025]}}
    assert jobs[0].config()["forget_classes"] == [3]
    assert any("Job " in m.value for m in at.markdown)
    jobs[0].stop(grace=20)  # a browser test runs it to the end; here launching is enough


def test_run_page_starts_from_an_existing_original(run_app, digits_original):
    """The originals under the root are offered (an imported one says so); choosing one fills `original`, fixes the
    data set and model to its own, and the plan shows it given, not trained."""
    import shutil

    from scarlab.cli import main

    at, root = run_app
    shutil.copytree(digits_original, root / "trained")
    assert main(["import", str(digits_original / "checkpoints" / "model.pt"), "--dataset", "digits", "--device", "cpu",
                 "--quiet", "--out", str(root / "mine")]) == 0
    at.run()
    pick = at.selectbox(key="run_original")
    shown = pick.options  # as the page words them
    assert len(shown) == 3 and shown[0] == "train a new original", shown
    assert any(o.startswith("mine · tinycnn on digits · imported from model.pt") for o in shown), shown
    assert any(o.startswith("trained · tinycnn on digits · trained, 8 epochs") for o in shown), shown
    pick.set_value(str(root.resolve() / "mine")).run()
    assert at.selectbox(key="run_dataset_given").disabled and at.selectbox(key="run_model_given").value == "tinycnn"
    at.multiselect(key="run_classes_digits").set_value([3])
    at.text_input(key="run_epochs").set_value("2")
    at.button(key="run_check").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    plan = [m.value for m in at.markdown if m.value.startswith("**Plan:**")]
    assert plan and "1 reused" in plan[0] and "the original given" in plan[0], plan
    table = next(d.value for d in at.dataframe if "state" in d.value.columns)
    assert table["state"].tolist()[0] == "given" and (table["state"] == "run").sum() == len(table) - 1
    assert "train original" not in table["stage"].tolist()
    # a trained original lends its recipe: other epochs are the CLI's one line
    at.selectbox(key="run_original").set_value(str(root.resolve() / "trained")).run()
    at.button(key="run_check").click().run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "epochs" in errors[0] and "recipe" in errors[0], errors


def test_run_page_absent_beyond_loopback(run_app, monkeypatch):
    import streamlit.config
    from streamlit.testing.v1 import AppTest

    at, root = run_app
    streamlit.config.set_option("server.address", "0.0.0.0")
    at.switch_page("views/run.py").run()
    assert not at.exception
    assert not at.get("text_input") and "Run experiments" not in [t.value for t in at.title]  # not in navigation
    page = AppTest.from_file(str(REPO / "dashboard" / "views" / "run.py"), default_timeout=60)
    page.run()  # opened directly, the page itself refuses too
    assert not page.exception and any("beyond this machine" in i.value for i in page.info)
    assert not page.get("text_input")
