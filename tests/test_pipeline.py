"""`scarlab pipeline`: planning and validation (fast, nothing runs), then the pipeline end to end on digits
with tiny epochs — a second run reuses every stage, and a failing stage stops only its own branch."""
from __future__ import annotations

import importlib.util
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
    (dict(params={"scar": {"lambda_2": "five"}}), ["scar.lambda_2", "expected a float"]),
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
    assert '"lr": 0.01' in next(s for s in specs if s.kind == "unlearn").params["params_json"]  # typed
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
            assert read_json(Path(s.run_dir) / f"stage_{s.kind}.json")["status"] == "complete"
    unl = [s for s in r.stages if s.kind == "unlearn"]
    assert {s.info["method"] for s in unl} == {"scar", OTHER}
    assert RunDir(unl[0].run_dir).config["params"]["epochs"] == 2  # --unlearn-epochs reached the method
    if HAS_EVALUATE:
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
    # a NaN loss weight passes validation but fails inside the SCAR notebook; the other method is unaffected
    r = run_pipeline(tiny(root, params={"scar": {"lambda_2": "nan"}}), progress=False)
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
    spec = next(s for s in plan(tiny(root, params={"scar": {"lambda_2": "nan"}})) if s.kind == "unlearn"
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
