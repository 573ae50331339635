"""The evaluation stage on real digits runs: expected ordering of original / retrained / SCAR, the files it writes,
the summary table (mean ± std rows, failed runs listed) and the CLI."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from scarlab.cli import main
from scarlab.data import load_dataset, make_split
from scarlab.errors import ScarlabError
from scarlab.evaluate import evaluate_run
from scarlab.results import SUMMARY_KEYS, aggregate, summarize
from scarlab.metrics import aus_with_uncertainty
from scarlab.runs import RunDir, read_json, write_json

STEP_COLUMNS = ["step", "mia/loss_lr/acc", "mia/conf_thr/acc", "probe/acc/forget_train", "probe/acc/retain_test",
                "probe/acc/forget_test"]


@pytest.fixture(scope="module")
def ev(tmp_path_factory, digits_original, digits_retrained, digits_scar):
    """Original (against the CR class-0 split, into a new run), retrained and SCAR evaluated.

    The retrained and SCAR runs are evaluated in copies, so the session's shared fixtures stay untouched.
    """
    root = tmp_path_factory.mktemp("evaluate")
    retr, scar = root / "retrained", root / "scar"
    shutil.copytree(digits_retrained, retr)
    shutil.copytree(digits_scar, scar)
    unlearn_s = RunDir(scar).metrics["time/unlearn_s"]
    out = {
        "original": evaluate_run(digits_original, retrained=retr, split=retr, out=root / "original_eval",
                                 mia_repeats=2),
        "retrained": evaluate_run(retr, original=digits_original, mia_repeats=2),
        "scar": evaluate_run(scar, retrained=retr, mia_repeats=2),  # original from the manifest parents
    }
    return {"root": root, "runs": {"original": root / "original_eval", "retrained": retr, "scar": scar},
            "metrics": out, "unlearn_s": unlearn_s}


def test_expected_ordering(ev):
    o, r, s = (ev["metrics"][k] for k in ("original", "retrained", "scar"))
    assert o["acc/forget_test"] >= 0.9 and o["acc/forget_train"] >= 0.9
    assert r["acc/forget_test"] <= 0.02 and r["acc/forget_train"] <= 0.02
    assert abs(r["aus"] - 1) <= 0.05
    assert s["aus"] > o["aus"]
    assert o["aus"] < 0.6  # (1 − (a_or − a_t)) / (1 + ~1)
    # the retrained oracle is its own reference: indistinguishable; the original is far from it
    assert r["privacy/score"] == pytest.approx(1.0)
    assert o["privacy/score"] < s["privacy/score"]
    # CR: a_or is the original's retain-test accuracy (the authors' choice), the same number for every run
    for m in (o, r, s):
        assert m["aus/a_or"] == pytest.approx(o["acc/retain_test"])
    assert o["aus"] == pytest.approx(1 / (1 + o["acc/forget_test"]))


def test_metrics_json_has_spelled_out_keys(ev):
    keys = ["acc/forget_train", "acc/retain_train", "acc/forget_test", "acc/retain_test", "acc/test", "mia/svc/acc",
            "mia/svc/chance", "mia/svc/member_f1", "mia/svc/precision", "mia/svc/recall", "mia/svc/delta_f1",
            "mia/loss_lr/acc", "mia/loss_lr/auc", "mia/conf_thr/acc", "privacy/score", "privacy/eps", "aus",
            "aus/a_or", "time/evaluate_s"]
    for name, path in ev["runs"].items():
        m = read_json(path / "metrics.json")
        missing = [k for k in keys if k not in m]
        assert not missing, (name, missing)
        assert not {"mia/svc/f1", "mia/svc/f1_std", "mia/svc/delta_acc"} & set(m), name  # the old, ambiguous keys
        # CR on digits: ~133 class-0 train rows (cap 3 × ~45 test rows) vs ~45: chance is the majority share ≈ 0.75
        assert 0.7 <= m["mia/svc/chance"] <= 0.76 and m["mia/svc/n_members"] > 2.5 * m["mia/svc/n_non_members"]
        assert m["mia/svc/delta_f1"] == pytest.approx(abs(m["mia/svc/acc"] * 100 - 50))
        assert m["time/evaluate_s"] > 0
        for k in ("acc/forget_test", "mia/svc/acc", "mia/loss_lr/acc", "aus"):
            assert 0 <= m[k] <= 1.2, (name, k, m[k])
    # evaluation time is never mixed into the unlearning time, which is kept as the run recorded it
    assert read_json(ev["runs"]["scar"] / "metrics.json")["time/unlearn_s"] == ev["unlearn_s"]
    assert "time/unlearn_s" not in read_json(ev["runs"]["original"] / "metrics.json")
    assert RunDir(ev["runs"]["scar"]).manifest["evaluation"]["status"] == "complete"


def test_original_evaluation_run_directory(ev, digits_original, digits_retrained):
    run = RunDir(ev["runs"]["original"])
    assert run.status == "complete" and run.manifest["stage"] == "evaluate"
    assert run.manifest["parents"]["original"] == str(digits_original.resolve())
    cfg = run.config
    assert (cfg["method"], cfg["dataset"], cfg["model"], cfg["scenario"], cfg["forget_classes"]) == \
        ("original", "digits", "tinycnn", "CR", [0])
    split = np.load(run.file("split.npz"))
    assert np.array_equal(split["forget_idx"], np.load(digits_retrained / "split.npz")["forget_idx"])
    assert {"metrics.json", "perclass.json", "split.npz"} <= set(run.manifest["files"])
    # the original run itself is left as it was
    assert "aus" not in RunDir(digits_original).metrics


def test_perclass_matches_a_hand_count(ev):
    pc = read_json(ev["runs"]["scar"] / "perclass.json")
    assert set(pc) == {"class_names", "per_class_test", "per_class_train", "confusion_test"}
    cm = np.array(pc["confusion_test"])
    ds = load_dataset("digits")
    assert pc["class_names"] == ds.classes and cm.shape == (10, 10) and cm.sum() == len(ds.test)
    assert np.array_equal(cm.sum(1), np.bincount(ds.test.labels.numpy(), minlength=10))
    np.testing.assert_allclose(pc["per_class_test"], np.diag(cm) / cm.sum(1))
    assert pc["per_class_test"][0] == pytest.approx(ev["metrics"]["scar"]["acc/forget_test"])


def test_mia_steps_one_row_per_snapshot(ev):
    path = ev["runs"]["scar"]
    snaps = sorted((path / "features").glob("step_*.npz"))
    with open(path / "mia_steps.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(snaps) >= 2 and len(rows) == len(snaps)
    assert list(rows[0]) == STEP_COLUMNS
    assert [int(r["step"]) for r in rows] == [int(np.load(f)["step"]) for f in snaps]
    first, last = rows[0], rows[-1]
    assert float(first["probe/acc/forget_train"]) >= 0.9 and float(last["probe/acc/forget_train"]) <= 0.1
    for r in rows:
        assert 0 <= float(r["mia/loss_lr/acc"]) <= 1 and 0.5 <= float(r["mia/conf_thr/acc"]) <= 1
    assert not (ev["runs"]["retrained"] / "mia_steps.csv").exists()  # no snapshots, no curve


def test_hr_original_evaluation(tmp_path, digits_original):
    ds = load_dataset("digits")
    split = make_split(ds, "HR", forget_size=100, seed=1)
    split.save(tmp_path / "hr.npz")
    m = evaluate_run(digits_original, split=tmp_path / "hr.npz", out=tmp_path / "hr_eval", mia_repeats=1)
    assert np.isnan(m["acc/forget_test"]) and m["acc/retain_test"] == pytest.approx(m["acc/test"])
    a_or, a_t, a_f = m["aus/a_or"], m["acc/test"], m["acc/forget_train"]
    assert m["aus"] == pytest.approx((1 - (a_or - a_t)) / (1 + abs(a_f - a_t)))
    assert np.isnan(m["privacy/score"])  # no retrained oracle given
    # HR attack sets: 100 forget samples vs 100 of a random half of the 450 test images, 1:1, chance 0.5
    assert m["mia/svc/n_members"] == m["mia/svc/n_non_members"] == 100 and m["mia/svc/chance"] == 0.5
    assert RunDir(tmp_path / "hr_eval").config["scenario"] == "HR"


def test_bad_input_is_a_clear_error(tmp_path, ev, digits_original):
    with pytest.raises(ScarlabError, match="original model"):
        evaluate_run(digits_original)  # an original run serves many splits: it needs out=
    other = make_split(load_dataset("digits"), "CR", [1])
    other.save(tmp_path / "cr1.npz")
    with pytest.raises(ScarlabError, match="another split"):
        evaluate_run(ev["runs"]["scar"], split=tmp_path / "cr1.npz")
    with pytest.raises(ScarlabError, match="forgot another split"):
        evaluate_run(digits_original, split=tmp_path / "cr1.npz", retrained=ev["runs"]["retrained"],
                     out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # validated before any run directory is made


def _second_seed(ev, tmp_path):
    """A copy of the SCAR run as 'seed 1' with known, different accuracies (a constructed aggregate case)."""
    dst = tmp_path / "scar_s1"
    shutil.copytree(ev["runs"]["scar"], dst)
    cfg = read_json(dst / "config.json")
    write_json(dst / "config.json", {**cfg, "seed": 1})
    m = read_json(dst / "metrics.json")
    m.update({"acc/retain_test": m["acc/retain_test"] - 0.1, "acc/forget_test": 0.05})
    write_json(dst / "metrics.json", m)
    return dst


def test_summarize_rows_and_mean_std(ev, tmp_path):
    s1 = _second_seed(ev, tmp_path)
    failed = RunDir.create(tmp_path / "failed_run", stage="unlearn", config={"method": "negative_gradient",
                                                                             "dataset": "digits", "seed": 0})
    failed.finish("failed", error="RuntimeError: boom")
    paths = [ev["runs"]["scar"], s1, ev["runs"]["original"], ev["runs"]["retrained"], failed.path,
             tmp_path / "does_not_exist"]
    df = summarize(paths, tmp_path / "summary")
    assert list(df.columns[:9]) == ["label", "method", "variant", "dataset", "model", "scenario", "forget_classes",
                                    "seed", "status"]
    assert set(SUMMARY_KEYS) <= set(df.columns)
    assert list(df["method"][:4]) == ["original", "retrained", "scar", "scar"]  # original, retrained first
    assert len(df) == len(paths)
    ok = df[df["status"] == "complete"]
    assert len(ok) == 4 and set(ok["forget_classes"]) == {"0"} and set(ok["dataset"]) == {"digits"}
    assert df.set_index("run").loc[str(failed.path), "status"] == "failed"
    assert "boom" in df.set_index("run").loc[str(failed.path), "error"]
    assert df.set_index("run").loc[str(tmp_path / "does_not_exist"), "status"] == "missing"

    on_disk = pd.read_csv(tmp_path / "summary" / "summary.csv", dtype={"forget_classes": str})
    assert len(on_disk) == len(paths) and on_disk["forget_classes"].dropna().eq("0").all()
    agg = pd.read_csv(tmp_path / "summary" / "summary_agg.csv")
    assert list(agg["method"]) == ["original", "retrained", "scar"] and list(agg["runs"]) == [1, 1, 2]
    scar_rows, scar_agg = ok[ok["method"] == "scar"], agg[agg["method"] == "scar"].iloc[0]
    rt = scar_rows["acc/retain_test"].to_numpy()
    assert scar_agg["acc/retain_test"] == pytest.approx(rt.mean())
    assert scar_agg["acc/retain_test/std"] == pytest.approx(rt.std(ddof=1))
    expected = aus_with_uncertainty(scar_rows["aus/a_or"], rt, scar_rows["acc/forget_test"], "CR")
    assert scar_agg["aus"] == pytest.approx(expected.nominal_value)
    assert scar_agg["aus/std"] == pytest.approx(expected.std_dev) and expected.std_dev > 0
    assert agg[agg["method"] == "original"].iloc[0]["aus/std"] == 0
    pd.testing.assert_frame_equal(df.attrs["aggregate"].reset_index(drop=True), aggregate(df))

    # chance sits next to the attack accuracy, in the CSVs and in the markdown
    cols = list(df.columns)
    assert cols.index("mia/svc/chance") == cols.index("mia/svc/acc") + 1
    assert "mia/svc/member_f1" in cols and "mia/svc/f1" not in cols
    assert ok["mia/svc/chance"].between(0.7, 0.76).all() and "mia/svc/chance" in agg.columns
    md = (tmp_path / "summary" / "summary.md").read_text()
    assert "| label | dataset | model | scenario | runs |" in md and "±" in md
    head = next(line for line in md.splitlines() if line.startswith("| label"))
    cells = [c.strip() for c in head.strip("|").split("|")]
    assert cells.index("SVC MIA chance %") == cells.index("SVC MIA acc. % (paper's F1, micro)") + 1
    assert "chance" in md.split("| label")[0]  # the caption explains chance levels
    assert "| scar | digits | tinycnn | CR | 2 |" in md
    assert "Runs not included" in md and "failed" in md and "boom" in md and "missing" in md


def test_summarize_nothing_evaluated(tmp_path):
    df = summarize([tmp_path / "nope"], tmp_path / "s")
    assert len(df) == 1 and df["status"][0] == "missing"
    assert "No completed, evaluated runs." in (tmp_path / "s" / "summary.md").read_text()


def test_cli_evaluate_and_summary(ev, tmp_path, capsys, digits_original):
    run = tmp_path / "scar"
    shutil.copytree(ev["runs"]["scar"], run)
    (run / "metrics.json").write_text(json.dumps({"time/unlearn_s": 1.5}))
    rc = main(["evaluate", str(run), str(tmp_path / "missing_run"), "--mia-repeats", "1",
               "--summary", str(tmp_path / "sum")])
    out, err = capsys.readouterr()
    assert rc == 2 and "missing_run" in err  # one bad run is reported, the others are evaluated and summarised
    assert "acc/forget_test" in out and "aus" in out and "time/unlearn_s" in out
    assert read_json(run / "metrics.json")["time/unlearn_s"] == 1.5
    df = pd.read_csv(tmp_path / "sum" / "summary.csv")
    assert list(df["status"]) == ["complete", "missing"]
    assert main(["evaluate", str(digits_original)]) == 2
    assert "--out" in capsys.readouterr().err
