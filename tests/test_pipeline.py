"""`scarlab pipeline`: planning and validation (fast, nothing runs), then the pipeline end to end on digits
with tiny epochs — a second run reuses every stage, a failing stage stops only its own branch, and an edited
notebook re-runs its stages."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import time
from pathlib import Path

import pytest

from scarlab.cli import main
from scarlab.errors import ScarlabError
from scarlab.pipeline import (PipelineConfig, StageSpec, config_from_dict, execute_stage, plan, run_pipeline,
                              stage_state)
from scarlab.runs import RunDir, read_json
from scarlab.unlearn import METHODS

HAS_EVALUATE = importlib.util.find_spec("scarlab.evaluate") is not None
# a baseline that needs the retain set when the baselines are registered; otherwise SCAR-self
OTHER = "finetune" if "finetune" in METHODS else "scar_self"


def tiny(out, **kw) -> PipelineConfig:
    base = dict(dataset="digits", forget_classes=[0], methods=["scar", OTHER], epochs=2, unlearn_epochs=2,
                device="cpu", out=str(out), evaluate=HAS_EVALUATE, jobs=2)
    return PipelineConfig(**{**base, **kw})


# ----------------------------------------------------------------------------------- plan and validation
def test_plan_layout_dependencies_and_order(tmp_path):
    specs = plan(tiny(tmp_path, seeds=[0, 1], evaluate=True))
    by_id = {s.id: s for s in specs}
    seen = set()
    for s in specs:  # listed in an order that respects every dependency
        assert set(s.deps + s.after) <= seen, s.id
        seen.add(s.id)
    kinds = [s.kind for s in specs]
    assert kinds.count("train_original") == 1 and kinds.count("train_retrained") == 1
    assert kinds.count("unlearn") == 4 and kinds[-1] == "compare"
    unl = [s for s in specs if s.kind == "unlearn"]
    root = tmp_path.resolve()
    for s in unl:
        rel = Path(s.run_dir).relative_to(root).parts
        assert rel[0] == "digits__tinycnn" and rel[1].startswith("CR-f0__")
        assert rel[2].startswith(f"{s.info['method']}__s{s.info['seed']}__")
        assert {by_id[d].kind for d in s.deps} == {"train_original", "split"}
    # specs are plain data: they survive a round trip (another process, Ray)
    assert StageSpec.from_dict(specs[3].to_dict()) == specs[3]


def test_each_stage_passes_exactly_the_parameters_of_its_notebook(tmp_path):
    import ast

    import jupytext

    from scarlab.pipeline import notebook_source

    for s in plan(tiny(tmp_path, evaluate=True)):
        cells = jupytext.read(notebook_source(s.notebook)).cells
        cell = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
        names = {(node.targets[0] if isinstance(node, ast.Assign) else node.target).id
                 for node in ast.parse(cell.source).body}
        assert set(s.params) == names, s.id


def test_ids_change_with_the_configuration(tmp_path):
    def dirs(cfg):
        return {(s.kind, s.info.get("method")): s.run_dir for s in plan(cfg)}

    a = dirs(tiny(tmp_path))
    assert dirs(tiny(tmp_path)) == a  # deterministic
    b = dirs(tiny(tmp_path, epochs=3))  # training changed: new original, new split id, everything below moves
    assert b[("train_original", "original")] != a[("train_original", "original")]
    assert b[("split", None)] != a[("split", None)]
    c = dirs(tiny(tmp_path, params={"scar": {"lambda_2": 4.0}}))  # one method's parameter: only its run moves
    assert c[("unlearn", "scar")] != a[("unlearn", "scar")]
    assert c[("unlearn", OTHER)] == a[("unlearn", OTHER)]
    assert c[("train_original", "original")] == a[("train_original", "original")]
    # where things run is not what they compute
    assert dirs(tiny(tmp_path, device="auto", jobs=1)) == a


def test_relative_and_absolute_data_paths_are_one_data_set(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    for part in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / "imgs" / part / cls).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "imgs" / part / cls / "0.png")
    (tmp_path / "ood" / "0").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    def ids(data, ood):
        return [s.id for s in plan(tiny(tmp_path / "runs", dataset=f"imagefolder:{data}", methods=["scar"],
                                        surrogate=f"imagefolder:{ood}", model="smallcnn"))]

    assert ids("imgs", "./ood") == ids(tmp_path / "imgs", tmp_path / "ood")


@pytest.mark.parametrize("kw, words", [
    (dict(methods=["scar", "nope"]), ["unknown method", "nope", "registered methods", "scar_self"]),
    (dict(params={"scar": {"lamda_2": 5}}), ["unknown parameter", "lamda_2", "lambda_2"]),
    (dict(params={"scar": {"lambda_2": "five"}}), ["scar.lambda_2", "'five' is not a number"]),
    (dict(params={"nope": {"x": 1}}), ["unknown method 'nope'"]),
    (dict(methods=["scar"], params={"scar_self": {"epochs": 1}}), ["scar_self is not among the methods"]),
    (dict(forget_classes=[10]), ["out of range"]),
    (dict(forget_classes=[]), ["--forget-classes"]),
    (dict(scenario="HR", forget_classes=[]), ["--forget-size"]),
    (dict(surrogate="nowhere"), ["unknown surrogate"]),
])
def test_bad_input_is_refused_before_anything_runs(tmp_path, kw, words):
    out = tmp_path / "never"
    with pytest.raises(ScarlabError) as err:
        run_pipeline(tiny(out, **kw), progress=False)
    for w in words:
        assert w in str(err.value), str(err.value)
    assert not out.exists()


def test_a_list_for_a_method_parameter_or_training_option_is_a_grid_axis(tmp_path):
    specs = plan(tiny(tmp_path, params={"scar": {"lr": [0.0005, 0.00025], "lambda_2": 4.0}}))
    kinds = [s.kind for s in specs]
    assert len({s.id for s in specs}) == len(specs) and kinds[-1] == "compare"
    assert kinds.count("train_original") == 1 and kinds.count("unlearn") == 3  # shared stages once
    scar = [s for s in specs if s.kind == "unlearn" and s.info["method"] == "scar"]
    assert [s.info["params"] for s in scar] == [{"lr": lr, "lambda_2": 4.0, "epochs": 2} for lr in (0.0005, 0.00025)]
    assert [s.params["params"] for s in scar] == [s.info["params"] for s in scar]
    assert len({s.run_dir for s in scar}) == 2  # each point's run in a folder of its own
    assert {s.run_dir for s in specs if s.kind == "unlearn"} <= set(specs[-1].params["runs"])
    specs = plan(tiny(tmp_path, params={"train": {"lr": [0.01, 0.02]}}))  # one original (and all below) per value
    assert sorted(s.params["lr"] for s in specs if s.kind == "train_original") == [0.01, 0.02]
    assert [s.kind for s in specs].count("unlearn") == 4


def test_a_list_valued_parameter_takes_a_list_of_lists_as_its_axis(tmp_path, monkeypatch):
    from scarlab.unlearn.base import MethodSpec

    @dataclasses.dataclass
    class Params:
        epochs: int = 1
        milestones: list[int] = dataclasses.field(default_factory=list)

        def validate(self):
            pass

    monkeypatch.setitem(METHODS, "listy", MethodSpec("listy", print, Params, frozenset({"forget"}), "a test method"))

    def planned(milestones):
        specs = plan(tiny(tmp_path, methods=["listy"], params={"listy": {"milestones": milestones}}))
        return [s.params["params"]["milestones"] for s in specs if s.kind == "unlearn"]

    assert planned([1, 2]) == [[1, 2]] and planned([]) == [[]]
    assert planned([[1], [2, 3]]) == [[1], [2, 3]]


@pytest.mark.parametrize("kw, words", [
    (dict(params={"scar": {"lrr": [0.1, 0.2]}}), ["unknown parameter(s) lrr for method 'scar'", "valid:", "lambda_2"]),
    (dict(params={"scar": {"lr": []}}), ["scar.lr is an empty list"]),
    (dict(params={"train": {"lr": [0.1, -1.0]}}), ["grid point train.lr=-1.0", "train.lr must be positive"]),
    (dict(jobs=[1, 2]), ["jobs takes one value"]),
    (dict(out=["a", "b"]), ["out takes one value"]),
    (dict(epochs=[1, 2]), ["epochs takes one value", "grid axes of `scarlab sweep`"]),
])
def test_bad_grid_axes_are_one_line_before_anything_runs(tmp_path, monkeypatch, kw, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScarlabError) as err:
        run_pipeline(PipelineConfig(**{**vars(tiny(tmp_path / "never")), **kw}), progress=False)
    for w in words:
        assert w in str(err.value), str(err.value)
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []


def test_cli_grid_axis_from_the_yaml_file(tmp_path, capsys):
    yml = tmp_path / "p.yaml"
    yml.write_text("methods: [scar]\nforget_classes: [0]\nparams: {scar: {lr: [0.0005, 0.00025]}}\n")
    assert main(["pipeline", "--config", str(yml), "--set", "scar.lambda_2=4", "--out", str(tmp_path / "p"),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("unlearn scar s0") == 2 and out.count("train original") == 1


def test_no_retain_refuses_methods_that_need_it(tmp_path):
    needy = [m for m, s in METHODS.items() if "retain" in s.needs]
    if not needy:
        pytest.skip("no registered method needs the retain set")
    with pytest.raises(ScarlabError, match="needs the retain set.*work without it: scar"):
        plan(tiny(tmp_path, methods=["scar", needy[0]], retain_available=False))
    assert plan(tiny(tmp_path, methods=["scar"], retain_available=False))


def test_cli_bad_method_is_a_one_line_error(tmp_path, capsys):
    assert main(["pipeline", "--methods", "scar,nope", "--forget-classes", "0", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scarlab: error: unknown method(s) nope; registered methods: scar")
    assert not (tmp_path / "x").exists()


def test_yaml_config_and_cli_precedence(tmp_path):
    from scarlab.cli import build_parser
    from scarlab.commands.pipeline import config_from_args

    yml = tmp_path / "p.yaml"
    yml.write_text("dataset: digits\nmethods: [scar, scar_self]\nforget-classes: [[0], [3]]\nseeds: [0, 1]\n"
                   "params:\n  scar: {lambda_2: 4}\nepochs: 5\n")
    args = build_parser().parse_args(["pipeline", "--config", str(yml), "--epochs", "2", "--set", "scar.lr=0.01",
                                      "--forget-classes", "1", "2", "--forget-classes", "4"])
    cfg = config_from_args(args)
    assert cfg.epochs == 2 and cfg.seeds == [0, 1] and cfg.methods == ["scar", "scar_self"]
    assert cfg.forget_sets() == [[1, 2], [4]]
    assert cfg.params == {"scar": {"lambda_2": 4, "lr": "0.01"}}
    specs = plan(cfg)
    assert sum(s.kind == "split" for s in specs) == 2
    assert next(s for s in specs if s.kind == "unlearn").params["params"] == {"lambda_2": 4.0, "lr": 0.01}  # typed
    with pytest.raises(ScarlabError, match="unknown pipeline option.*methodz"):
        config_from_dict({"methodz": ["scar"]})


# ----------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(scope="module")
def first_run(root):
    t0 = time.perf_counter()
    result = run_pipeline(tiny(root), progress=False)
    result.first_wall = time.perf_counter() - t0
    print(f"\npipeline, first run: {result.first_wall:.1f}s ({len(result.stages)} stages)")
    return result


def test_pipeline_end_to_end(first_run, root):
    r = first_run
    assert r.ok, r.table().to_string()
    assert {s.status for s in r.stages} == {"complete"}
    for s in r.stages:
        if s.kind != "compare":
            run = RunDir(s.run_dir)
            assert run.status == "complete"
            assert run.file("evaluate.ipynb" if s.kind == "evaluate" and "original_eval" not in s.run_dir
                            else "notebook.ipynb").is_file()
            record = run.manifest["stages"][s.kind]  # the run's one status record
            assert record["status"] == "complete" and record["error"] is None
            assert record["output"] in run.manifest["files"]
    unl = [s for s in r.stages if s.kind == "unlearn"]
    assert {s.info["method"] for s in unl} == {"scar", OTHER}
    assert RunDir(unl[0].run_dir).config["params"]["epochs"] == 2  # --unlearn-epochs reached the method
    if HAS_EVALUATE:
        assert read_json(root / "pipeline.json")["stages"]["compare"]["status"] == "complete"  # the root's record
        df = r.summary()
        assert sorted(df["method"]) == sorted(["original", "retrained", "scar", OTHER])
        assert {"forget_classes", "seed"} <= set(df.columns)
        assert (root / "summary.md").is_file() and (root / "compare.ipynb").is_file()


def test_second_run_reuses_every_stage(first_run, root):
    t0 = time.perf_counter()
    again = run_pipeline(tiny(root), progress=False)
    second = time.perf_counter() - t0
    print(f"\npipeline, first run {first_run.first_wall:.1f}s, second run {second:.1f}s "
          f"({len(again.by_status('skipped'))}/{len(again.stages)} stages reused)")
    assert [s.status for s in again.stages] == ["skipped"] * len(again.stages)
    assert second < first_run.first_wall / 3


def test_failing_stage_stops_only_its_branch(first_run, root):
    # an absurd learning rate passes validation (positive, finite) but the loss becomes NaN inside the SCAR notebook;
    # the other method is unaffected
    r = run_pipeline(tiny(root, params={"scar": {"lr": 1e30}}), progress=False)
    status = {(s.kind, s.info.get("method")): s for s in r.stages}
    failed = status[("unlearn", "scar")]
    assert failed.status == "failed" and "became nan" in failed.error
    manifest = RunDir(failed.run_dir).manifest
    assert manifest["status"] == "failed" and "became nan" in manifest["error"]
    assert (Path(failed.run_dir) / "notebook.ipynb").is_file()  # the executed notebook shows the traceback
    assert status[("unlearn", OTHER)].status == "skipped"  # independent branch: reused from the first run
    assert status[("train_original", "original")].status == "skipped"
    if HAS_EVALUATE:
        assert status[("evaluate", "scar")].status == "blocked"
        assert status[("compare", None)].status == "complete"
        df = r.summary().set_index("method")  # the failed run is listed with its status and error
        assert df.loc["scar", "status"] == "failed" and "became nan" in df.loc["scar", "error"]
        assert df.loc[OTHER, "status"] == "complete"
    assert not r.ok and [s.label for s in r.failed] == [failed.label]
    # a failed stage is never reused: the next run executes it again
    spec = next(s for s in plan(tiny(root, params={"scar": {"lr": 1e30}})) if s.kind == "unlearn"
                and s.info["method"] == "scar")
    assert stage_state(spec) == "failed"
    with pytest.raises(ScarlabError, match="became nan"):
        execute_stage(spec.to_dict())


def test_bad_method_parameters_are_refused_at_plan_time(tmp_path):
    for params, match in (({"scar": {"lr": -1.0}}, "scar: lr must be a positive number"),
                          ({"scar": {"epochs": 0}}, "scar: epochs must be a whole number"),
                          ({"train": {"batch_size": 0}}, "train.batch_size must be positive")):
        with pytest.raises(ScarlabError, match=match):
            run_pipeline(tiny(tmp_path / "p", params=params), progress=False)
    assert not (tmp_path / "p").exists()


def test_an_edited_notebook_reruns_its_stages(first_run, root, tmp_path):
    import jupytext
    import nbformat

    from scarlab.pipeline import NOTEBOOKS, notebook_source

    nb = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, nb, ignore=shutil.ignore_patterns("explore", "__pycache__"))
    same = run_pipeline(tiny(root, notebooks=str(nb), evaluate=False), progress=False)  # a copy: same fingerprints
    assert {s.status for s in same.stages} == {"skipped"}
    # the user edits 04 in its jupytext pair: that file, saved last, is what runs, and nothing writes to it
    book = jupytext.read(notebook_source(nb / "04_unlearn.ipynb"))
    book.cells.append(nbformat.v4.new_code_cell('print("edited by the user")'))
    jupytext.write(book, nb / "04_unlearn.py", fmt="py:percent")
    later = (nb / "04_unlearn.ipynb").stat().st_mtime + 10
    os.utime(nb / "04_unlearn.py", (later, later))
    saved = {p.name: p.read_bytes() for p in nb.iterdir() if p.is_file()}
    r = run_pipeline(tiny(root, methods=["scar"], notebooks=str(nb)), progress=False)
    assert r.ok, r.table().to_string()
    by = {(s.kind, s.info.get("method")): s for s in r.stages}
    assert {by[k].status for k in (("train_original", "original"), ("split", None),
                                   ("train_retrained", "retrained"))} == {"skipped"}
    unl = by[("unlearn", "scar")]
    assert unl.status == "complete"
    assert unl.run_dir not in {s.run_dir for s in first_run.stages}  # a new folder: the old run is kept
    assert "edited by the user" in Path(unl.run_dir, "notebook.ipynb").read_text()
    assert RunDir(unl.run_dir).manifest["stages"]["unlearn"]["notebook"] == str(nb / "04_unlearn.py")
    assert {p.name: p.read_bytes() for p in nb.iterdir() if p.is_file()} == saved


# ----------------------------------------------------------------------------------- demo and lab commands
def test_demo_runs_scar_scar_self_and_two_baselines(tmp_path):
    from scarlab.commands.demo import demo_config

    cfg = demo_config(str(tmp_path / "demo"))
    assert cfg.methods == ["scar", "scar_self", "finetune", "negative_gradient"] and cfg.embed
    kinds = [s.kind for s in plan(cfg)]  # validates: every demo method exists and needs nothing withheld
    assert kinds.count("unlearn") == len(cfg.methods) and kinds[-1] == "compare"


def test_lab_binds_localhost_without_browser(capsys):
    assert main(["lab", "--dry-run", "--port", "8899"]) == 0
    out = capsys.readouterr().out
    assert "jupyterlab" in out and "--ip=127.0.0.1" in out and "--port=8899" in out and "--no-browser" in out
    assert "notebooks" in out
