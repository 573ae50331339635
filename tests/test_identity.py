"""What a result *is*, end to end: the forget set recorded from the split and the method variant as part of a
result's identity, read the same way by summary.csv, the compare notebook and every dashboard page."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from scarlab.results import read_summary
from scarlab_dashboard import app as dashboard_app

from conftest import PAGES, run_nb

DASHBOARD = Path(dashboard_app.__file__)


def _notebook_text(path: Path) -> str:
    """Every text/plain and text/html output of an executed notebook."""
    nb = json.loads(path.read_text())
    out = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            for mime in ("text/plain", "text/html"):
                v = data.get(mime)
                out.append("".join(v) if isinstance(v, list) else (v or ""))
            out.append("".join(o.get("text", [])) if isinstance(o.get("text"), list) else o.get("text", ""))
    return "\n".join(out)


def _pages(root: Path, monkeypatch, pages=PAGES) -> dict[str, tuple[str, list]]:
    """(the text, the tables) each of ``pages`` (default: every dashboard page) shows for the runs under ``root``
    (AppTest), by page."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SCARLAB_RUNS", str(root))
    at = AppTest.from_file(str(DASHBOARD), default_timeout=180)
    at.run()
    shown = {}
    for page in pages:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        parts = [str(getattr(e, "value", "")) for e in (*at.markdown, *at.caption, *at.text, *at.subheader,
                                                         *at.selectbox, *at.multiselect, *at.info, *at.warning)]
        parts += [str(o) for e in (*at.selectbox, *at.multiselect) for o in e.options]
        parts += [df.value.to_csv() for df in at.dataframe]
        parts += [json.dumps(c.proto.spec) if hasattr(c.proto, "spec") else str(c.proto)
                  for c in at.get("plotly_chart")]
        shown[page] = ("\n".join(parts), [df.value for df in at.dataframe])
    return shown


def test_a_retrained_run_from_a_class_3_split_is_class_3_everywhere(tmp_path, digits_original, monkeypatch,
                                                                    warm_kernels):
    """02_split forgets class 3; 03_train_retrained reuses that split with its parameters cell left at the default
    forget_classes=[0]. The split decides: summary.csv, the compare notebook and every dashboard page say 3."""
    from scarlab.config import UnlearnConfig
    from scarlab.evaluate import evaluate_run
    from scarlab.unlearn.stage import run_unlearn

    root = tmp_path / "runs"
    run_nb(warm_kernels, "02_split.ipynb", tmp_path / "split.ipynb", forget_classes=[3], out_dir=str(root / "split"))
    run_nb(warm_kernels, "03_train_retrained.ipynb", tmp_path / "retrained.ipynb", split=str(root / "split"), epochs=2,
           device="cpu", out_dir=str(root / "retrained"))  # forget_classes stays the notebook's [0]
    assert json.loads((root / "retrained" / "config.json").read_text())["forget_classes"] == [3]
    scar = run_unlearn(UnlearnConfig(original=str(digits_original), retrained=str(root / "retrained"),
                                     split=str(root / "retrained"), method="scar", params={"epochs": 1},
                                     snapshot_every=1, device="cpu"), root / "scar", progress=False).path
    for run in (root / "retrained", scar):
        evaluate_run(run, original=digits_original, mia_repeats=1)

    compare = run_nb(warm_kernels, "08_compare.ipynb", tmp_path / "compare.ipynb",
                     runs=[str(root / "retrained"), str(scar)], out_dir=str(root))
    summary = read_summary(root / "summary.csv")
    assert list(summary["forget_classes"]) == ["3", "3"]
    assert list(summary["label"]) == ["retrained · epochs=2", "scar · epochs=1"]
    text = _notebook_text(compare)
    assert "retrained · epochs=2" in text and re.search(r"forget_classes.*\n.*\b3\b", text, re.S)

    for page, (shown, tables) in _pages(root, monkeypatch).items():
        assert "class 0" not in shown, page
        if page == "compare":  # the result table: forget classes as in summary.csv
            assert {str(v) for t in tables if "forget_classes" in t for v in t["forget_classes"]} == {"3"}
        elif page != "run":  # the Run page is the form of a new job: it shows no existing run
            assert "class 3" in shown, page


def test_two_lr_variants_of_scar_are_two_results_everywhere(tmp_path, monkeypatch):
    """The issue's sweep: params {scar: {lr: [0.0005, 0.00025]}} x two forget classes. summary.csv, summary_agg.csv,
    the compare notebook and the dashboard's Compare page show two labelled SCAR variants, never one average."""
    from scarlab.sweep import run_sweep, sweep_config

    root = tmp_path / "sweep"
    grid = dict(dataset="digits", methods=["scar"], forget_classes=[[0], [3]], seeds=[0], epochs=2, unlearn_epochs=1,
                params={"scar": {"lr": [0.0005, 0.00025]}}, device="cpu", snapshot_every=50)
    result = run_sweep(sweep_config(grid, out=root), sequential=True, progress=False)
    assert result.ok, result.table().to_string()
    labels = {"scar · epochs=1 · lr=5e-4", "scar · epochs=1 · lr=2.5e-4"}

    runs = read_summary(root / "summary.csv")
    scar = runs[runs["method"] == "scar"]
    assert set(scar["label"]) == labels and len(scar) == 4
    assert sorted(scar["forget_classes"]) == ["0", "0", "3", "3"]
    agg = pd.read_csv(root / "summary_agg.csv")
    rows = agg[agg["method"] == "scar"]
    assert set(rows["label"]) == labels and list(rows["runs"]) == [2, 2]  # per variant, over both classes
    md = (root / "summary.md").read_text()
    assert all(f"| {label} |" in md for label in labels)

    text = _notebook_text(root / "compare.ipynb")
    assert all(label in text for label in labels)

    compare = _pages(root, monkeypatch, ["compare"])["compare"][0]
    assert all(label in compare for label in labels)
