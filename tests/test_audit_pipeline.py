"""The U-LiRA audit as pipeline stages: per split a ``shadows`` stage (shadow originals + retrained oracles), per
method variant a ``shadows`` stage (its unlearned shadows), per evaluated run an ``audit`` stage (07_audit) into
the run in place; the reuse rule, --dry-run and validation.

Scale: digits, K = 3, 1 training epoch, SCAR 1 epoch, jobs = 2: 3 shadow originals, 3 retrained oracles and 3
SCAR shadows besides the pipeline's own models; the retrained oracle (K ≥ 6 needed) is not audited. ~100 s with
SCARLAB_THREADS=1 on a shared 2-core machine.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from scarlab.cli import main
from scarlab.errors import ScarlabError
from scarlab.pipeline import PipelineConfig, plan, run_pipeline, validate
from scarlab.runs import read_json

K = 3


def cfg(out, **kw) -> PipelineConfig:
    base = dict(dataset="digits", forget_classes=[0], methods=["scar"], epochs=1, unlearn_epochs=1,
                snapshot_every=1000, shadows=K, device="cpu", out=str(out), jobs=2)
    return PipelineConfig(**{**base, **kw})


# ----------------------------------------------------------------------------------- plan and validation
@pytest.mark.parametrize("k", [1, 2, -1])
def test_too_few_shadows_is_one_line_before_anything_runs(tmp_path, k):
    with pytest.raises(ScarlabError) as err:
        run_pipeline(cfg(tmp_path / "p", shadows=k), progress=False)
    msg = str(err.value)
    assert "\n" not in msg and f"K={k}" in msg and "at least 3" in msg
    assert not (tmp_path / "p").exists()


def test_shadows_need_the_evaluation_and_other_seeds(tmp_path):
    with pytest.raises(ScarlabError, match="evaluate is off"):
        validate(cfg(tmp_path, evaluate=False))
    with pytest.raises(ScarlabError, match="twin"):
        validate(cfg(tmp_path, train_seed=1001))
    assert validate(cfg(tmp_path, shadows=0)).shadows == 0


def test_the_cli_takes_shadows_and_a_bad_k_is_one_line(tmp_path, capsys):
    code = main(["pipeline", "--dataset", "digits", "--forget-classes", "0", "--shadows", "2",
                 "--out", str(tmp_path / "p"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "K=2" in err and "at least 3" in err, err
    assert not (tmp_path / "p").exists()


def test_plan_shadow_and_audit_stages(tmp_path):
    specs = plan(cfg(tmp_path, methods=["scar", "scar_self"], seeds=[0, 1]))
    by_id = {s.id: s for s in specs}
    kinds = [s.kind for s in specs]
    assert kinds.count("shadows") == 3  # the split's, one per method variant (both seeds share it)
    audits = [s for s in specs if s.kind == "audit"]
    # original_eval and 4 unlearn runs; the retrained oracle needs K >= 6: not planned at K = 3
    assert sorted(s.info["method"] for s in audits) == ["original", "scar", "scar", "scar_self", "scar_self"]
    assert not any(Path(s.run_dir).name == "retrained" for s in audits)
    split_shadows = next(s for s in specs if s.kind == "shadows" and s.params["run"] is None)
    assert {by_id[d].kind for d in split_shadows.deps} == {"train_original", "split"}
    assert Path(split_shadows.run_dir).parent.name == "shadow_stages"
    for s in audits:
        assert not s.creates_run and Path(s.output).name == "audit.ipynb"
        assert sorted(by_id[d].kind for d in s.deps) == ["evaluate", "shadows"]
        assert any(by_id[d].kind == "evaluate" and by_id[d].run_dir == s.run_dir for d in s.deps)
    compare = specs[-1]
    assert compare.kind == "compare" and {s.id for s in audits} <= set(compare.after)
    # K = 6: the retrained oracle is audited too
    assert any(s.kind == "audit" and Path(s.run_dir).name == "retrained" for s in plan(cfg(tmp_path, shadows=6)))
    assert not any(s.kind in ("shadows", "audit") for s in plan(cfg(tmp_path, shadows=0)))


def test_notebooks_are_numbered_in_the_order_they_run(tmp_path):
    """No stage waits for (deps or after) a stage whose notebook sorts after its own: notebooks/ lists them in
    the order the pipeline runs them."""
    specs = plan(cfg(tmp_path, methods=["scar"], seeds=[0, 1], shadows=6))
    by_id = {s.id: s for s in specs}
    for s in specs:
        for d in [*s.deps, *s.after]:
            assert Path(by_id[d].notebook).name <= Path(s.notebook).name, f"{s.id} runs after {d}"


# ----------------------------------------------------------------------------------- end to end
def test_pipeline_audits_and_reuses_every_stage(tmp_path, capsys):
    out = tmp_path / "p"
    res = run_pipeline(cfg(out), progress=False)
    bad = [(r.id, r.status, r.error) for r in res.stages if r.status != "complete"]
    assert not bad, bad
    kinds = [r.kind for r in res.stages]
    assert kinds.count("shadows") == 2 and kinds.count("audit") == 2
    unl = next(r for r in res.stages if r.kind == "unlearn").run_dir
    sdir = Path(unl).parent
    for run in (Path(unl), sdir / "original_eval"):
        doc = read_json(run / "audit.json")
        assert doc["k"] == K and Path(doc["shadows"]["folder"]).parent == sdir
        assert (run / "audit.ipynb").is_file() and read_json(run / "manifest.json")["stages"]["audit"]["status"] \
            == "complete"
    assert not (sdir / "retrained" / "audit.json").exists()
    metrics = read_json(Path(unl) / "metrics.json")
    assert 0 <= metrics["ulira/auc"] <= 1 and metrics["ulira/k"] == K and "ulira/eps_mean_high" in metrics
    # one shadow folder (the audit module's layout) holds every member: 3 originals, 3 retrained, 3 SCAR
    folders = list(sdir.glob("shadows__*"))
    assert len(folders) == 1
    members = sorted(p.name.split("__s")[0] for p in folders[0].iterdir() if (p / "manifest.json").is_file())
    assert members.count("original") == K and members.count("retrained") == K and len(members) == 3 * K

    again = run_pipeline(cfg(out), progress=False)
    ran = [(r.id, r.status) for r in again.stages if r.status != "skipped"]
    assert not ran, ran

    capsys.readouterr()
    assert main(["pipeline", "--dataset", "digits", "--forget-classes", "0", "--methods", "scar", "--epochs", "1",
                 "--unlearn-epochs", "1", "--snapshot-every", "1000", "--shadows", str(K), "--device", "cpu",
                 "--out", str(out), "--dry-run"]) == 0
    listing = capsys.readouterr().out
    lines = listing.splitlines()
    assert sum("shadow_stages" in line for line in lines) == 2, listing
    assert sum(line.split()[1] == "audit" for line in lines[:-1]) == 2, listing
    assert all(line.startswith("current") for line in lines[:-1]), listing


# ----------------------------------------------------------------------------------- audit_mode offline
def test_plan_offline_audits_share_the_splits_retrained_shadows(tmp_path):
    specs = plan(cfg(tmp_path, methods=["scar", "scar_self"], seeds=[0, 1], audit_mode="offline"))
    by_id = {s.id: s for s in specs}
    shadows = [s for s in specs if s.kind == "shadows"]
    assert len(shadows) == 1 and shadows[0].params["populations"] == ["retrained"]  # no per-method training
    audits = [s for s in specs if s.kind == "audit_offline"]
    assert not any(s.kind == "audit" for s in specs)
    # every evaluated run, the retrained oracle too (no halves offline, K = 3 is enough)
    assert sorted(s.info["method"] for s in audits) == ["original", "retrained", "scar", "scar", "scar_self",
                                                         "scar_self"]
    for s in audits:
        assert Path(s.output).name == "audit_offline.ipynb" and Path(s.notebook).name == "07_audit_offline.ipynb"
        assert [by_id[d].id for d in s.deps if by_id[d].kind == "shadows"] == [shadows[0].id]
        assert {"rmia_a", "population"} <= set(s.params) and "delta" not in s.params
    assert {s.id for s in audits} <= set(specs[-1].after)
    # the online plan of the same configuration is what it was: the mode is part of each audit stage's identity
    online = plan(cfg(tmp_path, methods=["scar", "scar_self"], seeds=[0, 1]))
    assert [s.kind for s in online].count("shadows") == 3


def test_an_unknown_audit_mode_is_one_line(tmp_path):
    with pytest.raises(ScarlabError) as err:
        validate(cfg(tmp_path, audit_mode="auto"))
    assert "\n" not in str(err.value) and "audit_mode 'auto'" in str(err.value) and "offline" in str(err.value)


def test_offline_pipeline_audits_every_run_from_one_retrained_population(tmp_path):
    import pandas as pd

    out = tmp_path / "p"
    res = run_pipeline(cfg(out, audit_mode="offline"), progress=False)
    bad = [(r.id, r.status, r.error) for r in res.stages if r.status != "complete"]
    assert not bad, bad
    kinds = [r.kind for r in res.stages]
    assert kinds.count("shadows") == 1 and kinds.count("audit_offline") == 3 and "audit" not in kinds
    unl = Path(next(r for r in res.stages if r.kind == "unlearn").run_dir)
    sdir = unl.parent
    for run in (unl, sdir / "original_eval", sdir / "retrained"):
        doc = read_json(run / "audit_offline.json")
        assert doc["mode"] == "offline" and doc["k"] == K and Path(doc["shadows"]["folder"]).parent == sdir
        assert (run / "audit_offline.ipynb").is_file() and not (run / "audit.json").exists()
        assert read_json(run / "manifest.json")["stages"]["audit_offline"]["status"] == "complete"
        assert 0 <= read_json(run / "metrics.json")["ulira/offline/lira/auc"] <= 1
    members = [p.name for p in next(sdir.glob("shadows__*")).iterdir() if (p / "manifest.json").is_file()]
    assert sorted(m.split("__s")[0] for m in members) == ["retrained"] * K  # nothing else was trained
    summary = pd.read_csv(out / "summary.csv")
    assert summary["ulira/offline/lira/auc"].notna().sum() == 3
    again = run_pipeline(cfg(out, audit_mode="offline"), progress=False)
    assert not [(r.id, r.status) for r in again.stages if r.status != "skipped"]


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_every_planned_stage_passes_exactly_its_notebooks_parameters(tmp_path, mode):
    """papermill only warns about a parameter a notebook lacks (the notebook would run on its default): the plan's
    params of every stage are the names of its notebook's parameters cell."""
    import papermill

    names = {}
    for s in plan(cfg(tmp_path, methods=["scar"], shadows=6, audit_mode=mode)):
        if s.kind not in names:
            names[s.kind] = set(papermill.inspect_notebook(s.notebook))
        assert set(s.params) == names[s.kind], (s.id, set(s.params) ^ names[s.kind])
