"""The dashboard: embeddings from real tiny runs, every page through Streamlit's AppTest, the plot builders,
and robustness to empty, partial and malformed run folders."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scarlab_dashboard import app as dashboard_app
from scarlab_dashboard import data as D
from scarlab_dashboard import plots as P

from conftest import PAGES, copy_run  # the app's pages; AppTest served on loopback (conftest says so)

REPO = Path(__file__).resolve().parents[1]
APP = Path(dashboard_app.__file__)
NG = "negative_gradient · epochs=2"  # labels of dash_root's runs: 2 (8) epochs is not the method's (digits') default
RETRAINED = "retrained · epochs=8"


# ----------------------------------------------------------------------------- fixtures: real runs, embedded
@pytest.fixture(scope="module")
def dash_root(tmp_path_factory, digits_embedded):
    """A runs root of copies of the session's real digits runs (their reducers already fitted: ``digits_embedded``)
    plus a second method, embedded with ``run_embed`` and evaluated (metrics with AUS, perclass.json,
    mia_steps.csv)."""
    from scarlab.config import UnlearnConfig
    from scarlab.embed import run_embed
    from scarlab.evaluate import evaluate_run
    from scarlab.unlearn.stage import run_unlearn

    root = tmp_path_factory.mktemp("dash_runs")
    orig = copy_run(digits_embedded["original"], root / "digits_original")
    retr = copy_run(digits_embedded["retrained"], root / "digits_retrained_cr0")
    scar = copy_run(digits_embedded["scar"], root / "digits_scar_cr0", {"original": orig, "retrained": retr})
    cfg = UnlearnConfig(original=str(orig), retrained=str(retr), split=str(retr), method="negative_gradient",
                        params={"epochs": 2}, snapshot_every=2, device="cpu")
    ng = run_unlearn(cfg, root / "digits_negative_gradient_cr0", progress=False).path
    for run in (scar, ng):
        run_embed(run, progress=False)
    for run in (retr, scar, ng):
        evaluate_run(run, original=orig, mia_repeats=1)
    return {"root": root, "original": orig, "retrained": retr, "scar": scar, "ng": ng}


@pytest.fixture()
def app(dash_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SCARLAB_RUNS", str(dash_root["root"]))
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    _ok(at)
    return at


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


PLAIN_ELEMENTS = {"text", "code", "json", "arrow_data_frame", "dataframe", "plotly_chart", "table"}
MARKDOWN_KEYS = {"body", "label", "help", "caption", "placeholder"}


def _nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def _strings(d, keys=None):
    """Every string in a proto dict (only those under ``keys`` when given; selectbox options are data, not
    Markdown)."""
    if isinstance(d, dict):
        for k, v in d.items():
            if isinstance(v, str):
                if keys is None or k in keys:
                    yield v
            else:
                yield from _strings(v, keys)
    elif isinstance(d, list):
        for v in d:
            if isinstance(v, str):
                if keys is None:
                    yield v
            else:
                yield from _strings(v, keys)


def _rendered(at) -> tuple[list[str], list[str], list[str]]:
    """(strings Streamlit renders as Markdown, strings shown as plain text or code, every string) of the page."""
    from google.protobuf.json_format import MessageToDict

    markdown, plain, everything = [], [], []
    for node in _nodes(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        d = MessageToDict(proto, preserving_proto_field_name=True)
        everything += list(_strings(d))
        if getattr(node, "type", None) in PLAIN_ELEMENTS:
            plain += list(_strings(d))
        else:
            markdown += list(_strings(d, MARKDOWN_KEYS))
    return markdown, plain, everything


def _shown(at) -> str:
    """Every string on the page with Markdown escapes and invisible word joiners removed (what a reader sees)."""
    return re.sub(r"\\(.)", r"\1", " ".join(_rendered(at)[2])).replace("\u2060", "")


def _chart_specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _points(trace: dict) -> int:
    return len(P.decode_array(trace.get("x")))


# ----------------------------------------------------------------------------- embedding
def test_umaps_uncached_compiles_are_cached_on_disk():
    """The umap-learn functions scarlab.embed caches still exist and take numba's disk cache (the installed umap-learn
    renamed or un-jitted one if this fails: update UMAP_JIT_CACHED)."""
    import importlib

    from scarlab import embed as E

    assert E._cache_umap_compiles()
    for name in E.UMAP_JIT_CACHED:
        module, attr = name.split(":")
        assert type(getattr(importlib.import_module(module), attr)._cache).__name__ == "FunctionCache", name


def test_exact_neighbours_are_umaps_own():
    """scarlab.embed._exact_knn gives umap-learn the neighbours it would compute itself for a small fit (its numba
    metric over every pair, then its own sort), duplicated points (ties) included."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.metrics import pairwise_distances
    from umap.distances import euclidean
    from umap.utils import fast_knn_indices

    from scarlab import embed as E

    x = load_digits().data[:200].astype(np.float32)
    x = np.concatenate([x, x[:50]])
    k = E.UMAP_SETTINGS["n_neighbors"]
    dmat = pairwise_distances(x, metric=euclidean)
    theirs = fast_knn_indices(dmat, k)
    idx, dist = E._exact_knn(x)
    assert np.array_equal(np.sort(dmat, axis=1)[:, :k], dist)  # the same distances, bit for bit
    assert np.array_equal(dmat[np.arange(len(x))[:, None], theirs], dist)
    assert np.array_equal(np.sort(idx, axis=1), np.sort(theirs, axis=1))  # the same neighbours (duplicates tie)


def test_embedding_contract(dash_root):
    import pyarrow.parquet as pq

    scar = dash_root["scar"]
    emb = pd.read_parquet(scar / "embedding.parquet")
    for col in ("step", "point", "group", "index", "label", "pred", "target", "x", "y", "dist_own", "dist_target"):
        assert col in emb.columns
    steps = sorted(int(f.stem.split("_")[1]) for f in (scar / "features").glob("step_*.npz"))
    assert sorted(emb["step"].unique()) == steps
    with np.load(scar / "features" / f"step_{steps[-1]:06d}.npz") as z:
        n = len(z["labels"])
        last = emb[emb["step"] == steps[-1]].sort_values("point")
        assert len(last) == n and (last["pred"].to_numpy() == z["preds"]).all()
    assert np.isfinite(emb[["x", "y"]].to_numpy()).all()
    # one reducer per original, fitted once, shared by every method that descends from it
    info = json.loads((dash_root["original"] / "umap.json").read_text())
    metas = [json.loads(pq.read_schema(r / "embedding.parquet").metadata[b"scarlab"]) for r in
             (dash_root["scar"], dash_root["ng"])]
    assert metas[0]["reducer_key"] == metas[1]["reducer_key"] == info["key"]
    assert Path(metas[0]["reducer_run"]) == dash_root["original"].resolve()
    # both methods start from the same model: their step-0 maps coincide
    e0 = [pd.read_parquet(r / "embedding.parquet").query("step == 0").sort_values("point")[["x", "y"]].to_numpy()
          for r in (dash_root["scar"], dash_root["ng"])]
    np.testing.assert_allclose(e0[0], e0[1], atol=1e-3)  # same features; BLAS chunking differs
    # the oracle: one step, the same probe points, aligned to the original's map
    oracle = pd.read_parquet(dash_root["retrained"] / "embedding.parquet")
    assert oracle["step"].nunique() == 1 and len(oracle) == n
    assert (np.sort(oracle["index"].to_numpy()) == np.sort(last["index"].to_numpy())).all()
    ometa = json.loads(pq.read_schema(dash_root["retrained"] / "embedding.parquet").metadata[b"scarlab"])
    assert ometa["axes"] == "aligned to original"
    # thumbnails: one PNG per probe point
    thumbs = pd.read_parquet(scar / "thumbs.parquet")
    assert len(thumbs) == n and thumbs["png"].str.startswith("iVBOR").all()  # base64 of the PNG signature
    assert not (dash_root["original"] / "umap.joblib").exists()  # no pickle anywhere


def test_reducer_reused_and_cli(dash_root, capsys):
    from scarlab.cli import main

    ref = dash_root["original"] / "umap_reference.npz"
    before = ref.stat().st_mtime_ns
    assert main(["embed", str(dash_root["scar"])]) == 0
    assert "embedded" in capsys.readouterr().out
    assert ref.stat().st_mtime_ns == before  # transform only: the original's reducer was not refitted


def test_embed_refuses_a_run_without_snapshots(tmp_path, dash_root):
    from scarlab.embed import run_embed
    from scarlab.errors import ScarlabError

    bad = copy_run(dash_root["ng"], tmp_path / "no_snaps")
    shutil.rmtree(bad / "features")
    with pytest.raises(ScarlabError, match="snapshots"):
        run_embed(bad, progress=False)


def test_reducer_transform_places_reference_points_near_their_fit(dash_root):
    from scarlab.embed import reducer_for

    red = reducer_for(dash_root["original"])
    xy = red.transform(red.features[:200])
    span = np.ptp(red.xy, axis=0).max()
    # a reference point's nearest neighbour is itself: it lands close to its own fitted coordinates
    assert np.median(np.linalg.norm(xy - red.xy[:200], axis=1)) < 0.1 * span


# ----------------------------------------------------------------------------- pages (AppTest)
def test_runs_page_lists_every_run(app, dash_root):
    table = app.dataframe[0].value
    for name in ("digits_original", "digits_retrained_cr0", "digits_scar_cr0", "digits_negative_gradient_cr0"):
        assert name in set(table["run"])
    scar = table.set_index("run").loc["digits_scar_cr0"]
    assert (scar["method"], scar["label"], scar["forget"]) == ("scar", "scar", "class 0")
    assert "complete" in scar["status"] and scar["aus"] == pytest.approx(
        json.loads((dash_root["scar"] / "metrics.json").read_text())["aus"])
    # an original is evaluated into runs of its own (original_eval), never in place: complete, as summary.csv says
    assert "complete" in table.set_index("run").loc["digits_original", "status"]
    app.selectbox(key="runs_detail").set_value("digits_scar_cr0").run()
    _ok(app)


def test_migration_page_points_frames_and_widgets(app, dash_root):
    app.switch_page("views/migration.py").run()
    _ok(app)
    app.selectbox(key="migration_label").set_value("scar").run()
    _ok(app)
    emb = pd.read_parquet(dash_root["scar"] / "embedding.parquet")
    oracle = pd.read_parquet(dash_root["retrained"] / "embedding.parquet")
    steps = sorted(emb["step"].unique())
    n = emb["point"].nunique()
    (spec,) = _chart_specs(app)
    assert len(spec["frames"]) == len(steps)
    assert [f["name"] for f in spec["frames"]] == [str(s) for s in steps]
    assert sum(_points(t) for t in spec["data"]) == 2 * n + len(oracle)  # original | unlearned | oracle
    for f in spec["frames"]:
        assert sum(_points(t) for t in f["data"]) == n
    assert spec["layout"]["sliders"][0]["active"] == len(steps) - 1
    assert any(m.label.startswith("forget accuracy") for m in app.metric)

    # move the step slider: the middle panel starts at that step
    slider = app.select_slider[0]
    slider.set_value(steps[0]).run()
    _ok(app)
    (spec,) = _chart_specs(app)
    assert spec["layout"]["sliders"][0]["active"] == 0
    # the images of the picked forget samples (no selection on the chart in AppTest)
    assert len(app.get("image")) == min(8, len(emb[(emb["step"] == steps[0]) & (emb["group"] == 0)]))

    # switch method: the comparable run of the other method is shown
    app.selectbox(key="migration_label").set_value(NG).run()
    _ok(app)
    assert app.selectbox(key=f"migration_run_{NG}").value == "digits_negative_gradient_cr0"
    ng_steps = pd.read_parquet(dash_root["ng"] / "embedding.parquet")["step"].nunique()
    (spec,) = _chart_specs(app)
    assert len(spec["frames"]) == ng_steps
    # toggling the oracle panel drops its points
    app.checkbox(key="migration_oracle").uncheck().run()
    _ok(app)
    (spec,) = _chart_specs(app)
    assert sum(_points(t) for t in spec["data"]) == 2 * n


def test_distances_page(app, dash_root):
    app.switch_page("views/distances.py").run()
    _ok(app)
    app.selectbox(key="distances_label").set_value("scar").run()
    _ok(app)
    specs = _chart_specs(app)
    assert len(specs) == 5
    mean = specs[0]
    steps = sorted(pd.read_parquet(dash_root["scar"] / "embedding.parquet")["step"].unique())
    lines = [t for t in mean["data"] if t.get("mode") == "lines+markers"]
    assert lines and all(len(P.decode_array(t["x"])) == len(steps) for t in lines)
    app.select_slider[0].set_value(steps[0]).run()
    _ok(app)
    options = app.selectbox(key="distances_label").options
    assert NG in options
    sample_box = [s for s in app.selectbox if s.key and s.key.startswith("dist_sample_")][0]
    sample_box.set_value(sample_box.options[-1]).run()
    _ok(app)


def test_curves_page_overlays_methods(app, dash_root):
    app.switch_page("views/migration.py").run()
    app.selectbox(key="migration_label").set_value("scar").run()
    app.switch_page("views/curves.py").run()
    _ok(app)
    chosen = app.multiselect(key="curves_runs").value
    assert set(chosen) == {"digits_scar_cr0", "digits_negative_gradient_cr0"}  # every method, same forget set
    (spec,) = _chart_specs(app)
    names = {t["name"] for t in spec["data"]}
    assert {"scar", NG} <= names  # the runs' labels: unique here, so nothing is added
    metrics = app.multiselect(key="curves_metrics").value
    assert "probe/acc/forget_train" in metrics and "mia/loss_lr/acc" in metrics
    app.multiselect(key="curves_metrics").set_value(["probe/acc/retain_test"]).run()
    _ok(app)
    (spec,) = _chart_specs(app)
    assert len(spec["data"]) == 2


def test_compare_page(app, dash_root):
    from scarlab.results import METRIC, pm

    app.switch_page("views/compare.py").run()
    _ok(app)
    table = app.dataframe[0].value
    assert table["label"].iloc[0] == RETRAINED and set(table["label"]) == {RETRAINED, "scar", NG}
    assert METRIC["time/unlearn_s"].label in table.columns
    cols = list(table.columns)  # the SVC attack's chance level stands next to its accuracy
    assert cols.index(METRIC["mia/svc/chance"].label) == cols.index(METRIC["mia/svc/acc"].label) + 1
    aus = json.loads((dash_root["scar"] / "metrics.json").read_text())["aus"]
    assert table.set_index("label").loc["scar", METRIC["aus"].label] == pm("aus", aus, 0.0)  # one run: ± 0
    app.selectbox(key="compare_metric").set_value("acc/forget_test").run()
    _ok(app)
    app.toggle(key="compare_by_forget").set_value(True).run()
    _ok(app)
    assert list(app.dataframe[0].value["forget"]) == ["class 0"] * 3
    assert len(_chart_specs(app)) == 3


def _edit(run: Path, name: str, **changes) -> None:
    d = json.loads((run / name).read_text())
    d.update(changes)
    (run / name).write_text(json.dumps(d))


def test_variants_are_separate_results(tmp_path, dash_root, monkeypatch):
    """Two learning rates of SCAR are two rows of the Compare page (labelled by their variant), never one average;
    pickers and legends name runs by that label too."""
    from scarlab.results import METRIC, pm

    root = tmp_path / "runs"
    secs = {}
    for name, lr, seed, t in (("scar_lr5e-4_s0", 0.0005, 0, 1.0), ("scar_lr5e-4_s1", 0.0005, 1, 3.0),
                              ("scar_lr2.5e-4_s0", 0.00025, 0, 20.0)):
        run = copy_run(dash_root["scar"], root / name, {})
        _edit(run, "config.json", variant={"lr": lr}, seed=seed)
        _edit(run, "metrics.json", **{"time/unlearn_s": t})
        secs.setdefault(lr, []).append(t)
    at = _apptest(root, monkeypatch)
    assert set(at.dataframe[0].value["label"]) == {"scar · lr=5e-4", "scar · lr=2.5e-4"}
    at.switch_page("views/compare.py").run()
    _ok(at)
    table = at.dataframe[0].value.set_index("label")
    assert list(table.index) == ["scar · lr=2.5e-4", "scar · lr=5e-4"]  # summary.csv's order
    assert table["runs"].tolist() == ["1", "2"] and table.loc["scar · lr=5e-4", "seeds"] == "0,1"
    time = METRIC["time/unlearn_s"].label
    assert table.loc["scar · lr=5e-4", time] == pm("time/unlearn_s", 2.0, np.std(secs[0.0005], ddof=1)) == "2.00 ± 1.41"
    assert table.loc["scar · lr=2.5e-4", time] == "20.00 ± 0.00"
    (bar, *_) = _chart_specs(at)
    assert bar["data"][0]["x"] == ["scar · lr=2.5e-4", "scar · lr=5e-4"]
    at.switch_page("views/migration.py").run()
    _ok(at)
    assert at.selectbox(key="migration_label").options == ["scar · lr=2.5e-4", "scar · lr=5e-4"]
    at.switch_page("views/curves.py").run()
    at.multiselect(key="curves_runs").set_value(["scar_lr5e-4_s0", "scar_lr5e-4_s1", "scar_lr2.5e-4_s0"]).run()
    _ok(at)
    (spec,) = _chart_specs(at)
    assert {t["name"] for t in spec["data"]} == {"scar · lr=5e-4 · class 0 · s0", "scar · lr=5e-4 · class 0 · s1",
                                                 "scar · lr=2.5e-4 · class 0 · s0"}


def test_forget_set_is_the_recorded_one(tmp_path, dash_root, monkeypatch):
    """A retrained run (and the unlearning run on its split) whose config records forget class 3: every page
    that names forget sets says class 3, none says class 0."""
    root = tmp_path / "runs"
    retr = copy_run(dash_root["retrained"], root / "retrained_cr3")
    scar = copy_run(dash_root["scar"], root / "scar_cr3", {"retrained": retr})
    for run in (retr, scar):
        _edit(run, "config.json", forget_classes=[3], scenario="CR")
    at = _apptest(root, monkeypatch)
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["retrained_cr3", "forget"] == table.loc["scar_cr3", "forget"] == "class 3"
    at.switch_page("views/compare.py").run()
    at.toggle(key="compare_by_forget").set_value(True).run()
    _ok(at)
    assert set(at.dataframe[0].value["forget"]) == {"class 3"}
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        _ok(at)
        shown = _shown(at) + " ".join(" ".join(map(str, df.value.to_numpy().ravel())) for df in at.dataframe)
        assert "class 0" not in shown and "classes 0" not in shown, page
        if page in ("migration", "curves"):
            assert "class 3" in shown, page


def test_tables_and_figures_download(app, dash_root, monkeypatch):
    """Every table has a CSV download and every figure an HTML one; the Migration page's HTML for slides holds
    plotly.js and every step as an animation frame, and does not play on its own."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    made = {}
    add = MediaFileManager.add_deferred

    def spy(self, data, mimetype, coordinates, file_name=None, **kw):
        made[file_name] = data
        return add(self, data, mimetype, coordinates, file_name=file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    for page in PAGES:
        app.switch_page(f"views/{page}.py").run()
        _ok(app)
        buttons = app.get("download_button")
        assert all(b.proto.deferred_file_id for b in buttons), page  # made on click, not on every rerun
        assert sum(b.label == "CSV" for b in buttons) == len(app.dataframe), page
        assert sum(b.label.startswith("HTML") for b in buttons) == len(app.get("plotly_chart")), page
        # dash_root is not audited (Privacy says how to audit) and has no jobs (Run: nothing to download yet)
        assert len(buttons) > 0 or page in ("privacy", "run"), page
    runs_csv = pd.read_csv(io.BytesIO(made["runs.csv"]()))
    assert {"run", "label", "forget", "aus", "mia/svc/chance"} <= set(runs_csv.columns)
    assert set(runs_csv["run"]) >= {"digits_scar_cr0", "digits_negative_gradient_cr0"}

    app.switch_page("views/migration.py").run()
    app.selectbox(key="migration_label").set_value("scar").run()
    _ok(app)
    (button,) = [b for b in app.get("download_button") if b.label.startswith("HTML")]
    assert "slides" in button.label
    (name,) = [n for n in made if n.startswith("feature_migration_scar")]
    html = made[name]().decode("utf-8")
    steps = sorted(pd.read_parquet(dash_root["scar"] / "embedding.parquet")["step"].unique())
    assert "<html>" in html[:100] and html.count("Plotly.addFrames(") == 1
    frames = re.search(r"Plotly\.addFrames\('[^']+',\s*(\[.*\])\);", html, re.S)
    assert [f["name"] for f in json.loads(frames.group(1))] == [str(s) for s in steps]
    assert "Plotly.animate" not in html  # auto_play=False: waits for ▶ Play
    assert not re.search(r"<script[^>]*\bsrc=", html) and len(html) > 3_000_000  # plotly.js inlined: works offline


# ----------------------------------------------------------------------------- plot builders
def _synthetic_embedding(steps=(0, 5, 10), n_forget=20, n_retain=60, n_ft=10, k=5, seed=0):
    rng = np.random.default_rng(seed)
    group = np.r_[np.zeros(n_forget), np.ones(n_retain), np.full(n_ft, 2)].astype(np.int8)
    label = np.r_[np.zeros(n_forget), rng.integers(1, k, n_retain), np.zeros(n_ft)].astype(int)
    target = rng.integers(1, k, len(group))
    rows = []
    for i, s in enumerate(steps):
        rows.append(pd.DataFrame({"step": s, "point": np.arange(len(group)), "group": group,
                                  "index": np.arange(len(group)) + 100, "label": label,
                                  "pred": np.where(group != 1, target if i else label, label), "target": target,
                                  "x": rng.normal(size=len(group)) + i, "y": rng.normal(size=len(group)),
                                  "dist_own": 0.1 + 0.1 * i + rng.random(len(group)) * 0.01,
                                  "dist_target": 0.5 - 0.1 * i + rng.random(len(group)) * 0.01}))
    return pd.concat(rows, ignore_index=True)


def test_migration_figure_counts_frames_and_traces():
    emb = _synthetic_embedding()
    oracle = emb[emb["step"] == 0].assign(step=0)
    fig = P.migration_figure(emb, step=5, oracle=oracle, class_names=[f"c{i}" for i in range(5)], method="scar")
    d = fig.to_plotly_json()
    assert [f["name"] for f in d["frames"]] == ["0", "5", "10"]
    assert P.figure_points(fig) == 3 * 90
    per_panel = len(d["data"]) // 3
    for f in d["frames"]:
        # every trace is listed (plotly.js drops other subplots' points otherwise); only the middle panel moves
        assert f["traces"] == list(range(3 * per_panel)) and len(f["data"]) == 3 * per_panel
        assert [i for i, t in enumerate(f["data"]) if "x" in t] == list(range(per_panel, 2 * per_panel))
        assert sum(len(P.decode_array(t.get("x"))) for t in f["data"]) == 90
    assert d["layout"]["sliders"][0]["active"] == 1
    # the middle panel starts at step 5: its x equals the step-5 frame's x
    mid0 = d["data"][per_panel]
    np.testing.assert_array_equal(P.decode_array(mid0["x"]), P.decode_array(d["frames"][1]["data"][per_panel]["x"]))
    # forget points: coloured by the prediction at that step
    forget = [t for t in d["data"][per_panel:2 * per_panel] if t["name"] == "forget"][0]
    assert (P.decode_array(forget["marker"]["color"]) != 0).all()
    names = [t["name"] for t in d["data"][:per_panel]]
    assert "1 · c1" in names and "forget" in names and "forget, test set" in names
    # without oracle and forget-test points
    fig2 = P.migration_figure(emb, oracle=None, show_forget_test=False)
    assert P.figure_points(fig2) == 2 * 80
    assert fig2.to_plotly_json()["layout"]["sliders"][0]["active"] == 2


def test_migration_figure_many_classes_and_empty():
    emb = _synthetic_embedding(k=40)
    emb.loc[emb["group"] == 1, "label"] = np.arange((emb["group"] == 1).sum()) % 40
    fig = P.migration_figure(emb)
    retain = [t for t in fig.data if t.name == "retain"]
    assert len(retain) == 2  # one shared trace per panel above MAX_CLASS_TRACES classes
    assert P.figure_points(P.migration_figure(emb.iloc[:0])) == 0


def test_typed_array_roundtrip():
    for a in (np.arange(7, dtype=np.int32), np.linspace(0, 1, 5, dtype=np.float32), np.ones((3, 5), np.int32),
              np.array([1, 2], np.int64)):
        spec = P.typed_array(a)
        np.testing.assert_array_equal(P.decode_array(spec), a)


def test_distance_figures():
    emb = _synthetic_embedding()
    mean = P.distance_mean_figure(emb)
    lines = [t for t in mean.data if t.mode == "lines+markers"]
    assert len(lines) == 4  # own/target × forget train/test
    own = [t for t in lines if t.name == "distance to own class (forget train)"][0]
    np.testing.assert_allclose(own.y, emb[emb.group == 0].groupby("step")["dist_own"].mean().to_numpy())
    samples = P.distance_samples_figure(emb, highlight=3, max_lines=5)
    assert any(t.name == "#3 to own class" for t in samples.data)
    scatter = P.distance_scatter_figure(emb, 10)
    assert sum(len(t.x) for t in scatter.data[:2]) == 20
    nodist = emb.assign(dist_own=np.nan, dist_target=np.nan)
    assert P.distance_mean_figure(nodist).layout.annotations  # an explanatory empty figure


def test_assignment_matrix_counts():
    fig = P.assignment_matrix_figure(np.array([0, 0, 0, 1]), np.array([2, 2, 3, 0]), ["a", "b", "c", "d"],
                                     "own", "target", "t")
    z = np.asarray(fig.data[0].z)
    assert z.shape == (2, 4)
    assert z[0].tolist() == [0, 0, 2, 1] and z[1].tolist() == [1, 0, 0, 0]
    assert list(fig.data[0].y) == ["a", "b"]


def test_curves_and_compare_figures():
    s = {"scar s0": pd.DataFrame({"step": [0, 5, 10], "probe/acc/forget_train": [1, .5, 0],
                                  "mia/loss_lr/acc": [.8, np.nan, .5]}),
         "ng s0": pd.DataFrame({"step": [0, 2], "probe/acc/forget_train": [1, .9]})}
    fig = P.curves_figure(s, ["probe/acc/forget_train", "mia/loss_lr/acc", "not/recorded"])
    assert len(fig.data) == 3  # two runs × forget acc, one run × MIA (NaN dropped)
    (mia,) = [t for t in fig.data if t.xaxis == "x2"]
    assert mia.name == "scar s0" and list(mia.y) == [.8, .5]
    assert P.curves_figure(s, ["nothing"]).layout.annotations
    agg = _agg([("scar", 0.9, 1.0), ("scar", 0.8, 3.0), ("ng", 0.5, 2.0)], ["aus", "time/unlearn_s"])
    assert agg.loc["scar", "aus"] == pytest.approx(0.85)
    assert agg.loc["scar", "aus/std"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    bar = P.metric_bar_figure(agg, "aus")
    assert list(bar.data[0].x) == ["scar", "ng"]
    assert P.metric_bar_figure(agg, "time/unlearn_s").layout.yaxis.title.text == "unlearning time s"
    scatter = P.aus_time_figure(agg)
    assert len(scatter.data) == 2 and scatter.layout.xaxis.type == "log"
    heat = P.per_class_heatmap(pd.DataFrame([[0.0, 1.0]], index=["scar"], columns=["0", "1"]), "t")
    assert np.asarray(heat.data[0].z).shape == (1, 2)


def _agg(rows, metrics):
    """scarlab.results.aggregate over runs (label, metric values...) named by label, as the Compare page does."""
    from scarlab import results as R

    df = R.frame([{"label": lbl, "method": lbl, "variant": "", "dataset": "digits", "model": "tinycnn",
                   "scenario": "CR", "forget_classes": "0", "seed": i, "status": "complete", **dict(zip(metrics, v))}
                  for i, (lbl, *v) in enumerate(rows)])
    return R.aggregate(df, R.GROUP_KEYS, tuple(metrics)).set_index("label", drop=False)


def test_attack_chance_is_drawn_next_to_attack_accuracy():
    """The SVC attack's chance (75 % on a 3:1 CR set) as a dashed line on its bars, 50 % on the balanced attacks'
    curves, and a plain chance column in the compare table: 75 % must never read as leakage."""
    from scarlab import results as R

    keys = ["mia/svc/acc", "mia/svc/chance", "mia/loss_lr/acc", "aus"]
    agg = _agg([("original", 0.75, 0.75, 0.6, 0.5), ("scar", 0.74, 0.75, 0.5, 0.9), ("scar", 0.76, 0.75, 0.52, 0.95)],
               keys)
    table = R.pm_table(agg, tuple(keys), ("label",))
    row = table.set_index("label").loc["scar"]
    assert row[R.METRIC["mia/svc/chance"].label] == "75.00"  # a property of the sets: no ± std
    assert row[R.METRIC["mia/svc/acc"].label] == "75.00 ± 1.41"
    for metric, level in (("mia/svc/acc", 75), ("mia/loss_lr/acc", 50)):
        fig = P.metric_bar_figure(agg, metric)
        (line,) = [t for t in fig.data if t.name == "chance"]
        assert line.line.dash == "dash"
        ys = [y for y in line.y if y is not None]
        assert len(ys) == 2 * len(agg) and all(y == pytest.approx(level) for y in ys)
    bar = P.metric_bar_figure(agg, "aus")
    assert [t.name for t in bar.data] == ["aus"]  # no chance for a metric that is no attack
    assert P.chance_levels(agg.drop(columns="mia/svc/chance"), "mia/svc/acc") is None
    s = {"scar": pd.DataFrame({"step": [0, 5], "probe/acc/forget_train": [1, 0], "mia/loss_lr/acc": [.8, .5],
                               "mia/conf_thr/acc": [.9, .55]})}
    fig = P.curves_figure(s, ["probe/acc/forget_train", "mia/loss_lr/acc", "mia/conf_thr/acc"])
    dashed = [sh for sh in fig.layout.shapes if sh.line.dash == "dash"]
    assert sorted(sh.yref for sh in dashed) == ["y2", "y3"] and all(sh.y0 == sh.y1 == 0.5 for sh in dashed)
    assert not P.curves_figure(s, ["probe/acc/forget_train"]).layout.shapes


# ----------------------------------------------------------------------------- safety and malformed runs
def _malformed_root(root: Path, dash_root) -> Path:
    """Empty, partial and malformed run folders next to one good unlearning run."""
    good = copy_run(dash_root["scar"], root / "good_scar")
    (root / "empty_dir").mkdir()
    partial = root / "partial_no_manifest"
    partial.mkdir()
    (partial / "config.json").write_text('{"method": "scar"')
    truncated = root / "truncated_metrics"  # unusable records: listed on the Runs page only
    truncated.mkdir()
    (truncated / "manifest.json").write_text(json.dumps({"stage": "unlearn", "status": "complete"}))
    (truncated / "metrics.json").write_text("{truncated")
    bad = copy_run(dash_root["ng"], root / "bad_ng")  # its records are fine, every other file is broken
    (bad / "history.csv").write_bytes(b"\x00\x01garbage,\n\"unterminated")
    (bad / "embedding.parquet").write_bytes(b"PAR1 not really")
    (bad / "thumbs.parquet").write_text("nope")
    for f in (bad / "features").glob("step_*.npz"):
        f.write_bytes(f.read_bytes()[:40])  # truncated zip
    running = root / "still_running"
    running.mkdir()
    (running / "manifest.json").write_text(json.dumps({"stage": "unlearn", "status": "running"}))
    weird = root / "weird_manifest"
    weird.mkdir()
    (weird / "manifest.json").write_text("[1, 2, 3]")
    (weird / "features").mkdir()
    np.save(weird / "features" / "x.npy", np.zeros(3))
    return good


def test_malformed_runs_never_crash_and_warn(tmp_path, dash_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root = tmp_path / "runs"
    root.mkdir()
    _malformed_root(root, dash_root)
    monkeypatch.setenv("SCARLAB_RUNS", str(root))
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    _ok(at)
    warnings = _shown(at)
    assert "truncated_metrics" in warnings and "weird_manifest" in warnings
    table = at.dataframe[0].value
    assert {"partial_no_manifest", "still_running", "weird_manifest", "bad_ng", "truncated_metrics"} <= set(table["run"])
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        _ok(at)
    # the broken unlearning run selected: a visible warning, no exception
    at.switch_page("views/migration.py").run()
    at.selectbox(key="migration_label").set_value(NG).run()
    _ok(at)
    assert any("embedding\\.parquet" in w.value for w in at.warning)  # Markdown-escaped run text
    at.switch_page("views/distances.py").run()
    at.selectbox(key="distances_label").set_value(NG).run()
    _ok(at)
    assert at.warning
    at.switch_page("views/curves.py").run()
    at.multiselect(key="curves_runs").set_value(["bad_ng", "good_scar"]).run()
    _ok(at)
    assert any("history\\.csv" in w.value for w in at.warning)


@pytest.mark.parametrize("content", [None, "empty"])
def test_missing_or_empty_root(tmp_path, monkeypatch, content):
    from streamlit.testing.v1 import AppTest

    root = tmp_path / "nothing_here"
    if content:
        root.mkdir()
    monkeypatch.setenv("SCARLAB_RUNS", str(root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    _ok(at)
    assert at.error or at.warning
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        _ok(at)
        # an empty root is where the Run page starts: it shows its form; a missing one is an error there too
        assert at.error or at.warning or (page == "run" and content and at.get("text_input")), page


def test_reads_stay_inside_the_root(tmp_path, dash_root):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    copy_run(dash_root["ng"], outside)
    os.symlink(outside, root / "link_out")
    good = copy_run(dash_root["scar"], root / "scar", {"original": tmp_path / "elsewhere" / "digits_original",
                                                        "retrained": outside})
    assert D.inside(root.resolve(), root / "link_out") is None
    assert D.inside(root.resolve(), root / ".." / "outside") is None
    assert D.inside(root.resolve(), good) == good.resolve()
    runs = D.scan(root.resolve()).value
    ids = {r.id for r in runs}
    assert "scar" in ids and not any(i.startswith("link_out") for i in ids)
    scar = D.by_id(runs)["scar"]
    assert scar.parents == {"original": None, "retrained": None}  # recorded parents outside the root: not followed


def test_npz_with_pickled_objects_is_refused(tmp_path):
    f = tmp_path / "features" / "step_000000.npz"
    f.parent.mkdir()
    np.savez(f, labels=np.array([{"evil": 1}], dtype=object), group=np.zeros(1))
    got = D.read_npz(f, tmp_path.resolve(), ("labels", "group"))
    assert got.value is None and "pickle" in got.error.lower()


def test_dashboard_code_never_unpickles():
    pattern = re.compile(r"\b(pickle|joblib|torch\.load|cloudpickle|dill)\b|allow_pickle\s*=\s*True")
    for f in sorted((REPO / "dashboard").rglob("*.py")):
        code = "\n".join(line for line in f.read_text().splitlines() if not line.lstrip().startswith("#"))
        code = re.sub(r'"""[\s\S]*?"""', "", code)  # docstrings may name what is *not* done
        assert not pattern.search(code), f"{f} mentions {pattern.search(code).group(0)}"


def test_runs_root_argument_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SCARLAB_RUNS", str(tmp_path / "env"))
    assert D.runs_root(["--runs", str(tmp_path / "arg")]) == (tmp_path / "arg").resolve()
    assert D.runs_root([f"--runs={tmp_path}"]) == tmp_path.resolve()
    assert D.runs_root([]) == (tmp_path / "env").resolve()
    monkeypatch.delenv("SCARLAB_RUNS")
    assert D.runs_root([]) is None


def test_dashboard_command(tmp_path):
    from scarlab.cli import main
    from scarlab.commands import dashboard as cmd
    from scarlab.errors import ScarlabError

    assert cmd.app_path() == APP
    line = cmd.streamlit_command(tmp_path, 8599)
    assert line[line.index("--server.address") + 1] == "127.0.0.1"
    assert line[-2:] == ["--runs", str(tmp_path)]
    with pytest.raises(ScarlabError, match="does not exist"):
        cmd.serve(tmp_path / "missing", 0, block=False)
    assert main(["dashboard", "--runs", str(tmp_path / "missing")]) == 2


def test_dashboard_command_names_the_real_problem(tmp_path, capsys):
    """--runs a file, an address that is no IP address or does not resolve or is not this machine's, a port in
    use: one line each saying so, exit status 2, before any server starts."""
    import socket

    from scarlab.cli import main

    (tmp_path / "runs.txt").write_text("not a folder")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = str(busy.getsockname()[1])
    cases = [(["--runs", str(tmp_path / "runs.txt")], "is a file, not a folder"),
             (["--address", "999.1.1.1"], "'999.1.1.1' is not a valid IP address"),
             (["--address", "no-such-host.invalid"], "'no-such-host.invalid' does not resolve"),
             (["--address", "192.0.2.1"], "'192.0.2.1' is not an address of this machine"),  # TEST-NET-1
             (["--port", port], f"port {port} on 127.0.0.1 is in use")]
    try:
        for extra, problem in cases:
            assert main(["dashboard", "--runs", str(tmp_path), "--port", "8599", *extra]) == 2, extra
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("scarlab: error: ") and problem in err[0], (extra, err)
            assert "in use" not in err[0] or "--port" in extra
    finally:
        busy.close()


# ----------------------------------------------------------------------------- received run folders
SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- not-for-the-dashboard"


def _apptest(root: Path, monkeypatch, timeout: float = 120):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SCARLAB_RUNS", str(root))
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.run()
    _ok(at)
    return at


def test_file_symlinks_out_of_the_root_are_refused(tmp_path, monkeypatch):
    """A received run whose files are symlinks to private files: nothing outside the root is read or shown."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    run = root / "received"
    (run / "features").mkdir(parents=True)
    outside.mkdir()
    (outside / "id_rsa").write_text(SECRET + "\n")
    (outside / "metrics.json").write_text(json.dumps({"acc/test": 0.123, "note": SECRET}))
    (outside / "config.json").write_text(json.dumps({"method": SECRET, "dataset": "digits"}))
    (outside / "history.csv").write_text(f"step,secret\n0,{SECRET}\n")
    np.savez(outside / "step_000000.npz", labels=np.zeros(3, int), preds=np.zeros(3, int), group=np.zeros(3))
    pd.DataFrame({"step": [0], "secret": [SECRET]}).to_parquet(outside / "embedding.parquet")
    (run / "manifest.json").write_text(json.dumps({"stage": "unlearn", "status": "failed", "error": "boom"}))
    for name, target in (("error.txt", "id_rsa"), ("metrics.json", "metrics.json"), ("config.json", "config.json"),
                         ("history.csv", "history.csv"), ("embedding.parquet", "embedding.parquet"),
                         ("thumbs.parquet", "embedding.parquet"), ("mia_steps.csv", "history.csv"),
                         ("perclass.json", "metrics.json")):
        os.symlink(outside / target, run / name)
    os.symlink(outside / "step_000000.npz", run / "features" / "step_000000.npz")
    # a relative symlink that climbs out of the root, and one that stays inside it (allowed)
    os.symlink("../../outside/id_rsa", run / "notes.txt")
    (root / "shared.json").write_text(json.dumps({"ok": 1}))
    os.symlink("../shared.json", run / "inside_link.json")

    real_root = root.resolve()
    runs = D.scan(real_root).value
    (r,) = runs
    assert r.metrics == {} and r.config == {} and not r.has_embedding and r.n_snapshots == 0
    assert (r.method, r.label, r.status) == ("unlearn", "unlearn", "failed")  # from the manifest's stage alone
    assert any("outside the runs root" in p for p in r.problems)
    for got in (D.error_text(r), D.history(r), D.mia_steps(r), D.embedding(r), D.snapshot_table(r), D.per_class(r),
                D.read_json(run / "metrics.json", real_root), D.read_text_tail(run / "notes.txt", real_root)):
        assert got.value is None or (isinstance(got.value, dict) and not got.value), got
        assert got.error is None or SECRET not in got.error
    assert "outside the runs root" in D.error_text(r).error
    assert D.thumbs(r).value == {}
    assert D.read_json(run / "inside_link.json", real_root).value == {"ok": 1}
    assert D.read_json(run / "metrics.json", None).value is None  # no root: nothing is read

    at = _apptest(root, monkeypatch)
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        _ok(at)
        assert SECRET not in " ".join(_rendered(at)[2]), page
    at.switch_page("views/runs.py").run()
    assert "outside the runs root" in _shown(at)


def _unblock(fifos) -> None:
    """Open each FIFO for writing (non-blocking) and close it: a reader stuck in open() then sees end-of-file."""
    for f in fifos:
        try:
            os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifo_run_files_never_block(tmp_path, monkeypatch):
    """A FIFO named like a run file (manifest.json, error.txt, ...) is refused at once: opening one would block."""
    import threading

    root = tmp_path / "root"
    run = root / "received"
    (run / "features").mkdir(parents=True)
    fifos = [run / n for n in ("manifest.json", "config.json", "metrics.json", "history.csv", "mia_steps.csv",
                               "error.txt", "embedding.parquet", "thumbs.parquet", "perclass.json")]
    fifos.append(run / "features" / "step_000000.npz")
    other = root / "no_manifest"
    other.mkdir()
    fifos.append(other / "config.json")
    for f in fifos:
        os.mkfifo(f)

    result = {}

    def read_everything():
        runs = D.scan(root.resolve()).value
        result["runs"] = runs
        r = D.by_id(runs)["received"]
        result["loaded"] = [D.error_text(r), D.history(r), D.mia_steps(r), D.embedding(r), D.snapshot_table(r),
                            D.per_class(r), D.thumbs(r), D.manifest(r)]

    worker = threading.Thread(target=read_everything, daemon=True)
    worker.start()
    worker.join(20)
    blocked = worker.is_alive()
    _unblock(fifos)
    assert not blocked, "reading a run folder with FIFOs blocked"
    r = D.by_id(result["runs"])["received"]
    assert r.status == "unreadable" and "FIFO" in r.problems[0]
    assert all(got.value is None or not len(got.value) for got in result["loaded"])
    assert "FIFO" in D.error_text(r).error

    at = _apptest(root, monkeypatch, timeout=60)
    try:
        for page in PAGES:
            at.switch_page(f"views/{page}.py").run()
            _ok(at)
        at.switch_page("views/runs.py").run()
        at.selectbox(key="runs_detail").set_value("received").run()
        _ok(at)
        assert "FIFO" in _shown(at)
    finally:
        _unblock(fifos)


def test_run_text_is_shown_as_text_not_markdown(tmp_path, dash_root, monkeypatch):
    """A manifest's error with an image link and a method in Markdown: shown as their characters; no rendered
    Markdown holds an image or link (the viewer's browser would fetch it)."""
    image = "![x](http://example.invalid/leak.png)"
    root = tmp_path / "runs"
    root.mkdir()
    run = copy_run(dash_root["scar"], root / "received")
    m = json.loads((run / "manifest.json").read_text())
    m.update(status="failed", error=image, method="**bold**", parents={})
    (run / "manifest.json").write_text(json.dumps(m))
    cfg = json.loads((run / "config.json").read_text())
    cfg["method"] = "**bold**"
    cfg["dataset"] = "[link](http://example.invalid/d)"
    (run / "config.json").write_text(json.dumps(cfg))

    def check(at, where):
        markdown, plain, _ = _rendered(at)
        for s in markdown:
            assert "![" not in s and "](http" not in s and "**bold**" not in s, (where, s)
        return " ".join(plain)

    at = _apptest(root, monkeypatch)
    at.selectbox(key="runs_detail").set_value("received").run()
    _ok(at)
    plain = check(at, "runs")
    assert image in plain and "**bold**" in plain  # the characters themselves, in text / code elements
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        _ok(at)
        check(at, page)
    # the run's warning on the unlearning pages shows the error as its characters
    at.switch_page("views/migration.py").run()
    assert any(image in w.value.replace("\\", "").replace("\u2060", "") for w in at.warning)


def test_md_escapes_every_markdown_construct():
    from scarlab_dashboard.common import WORD_JOINER, md

    for text in ("![x](http://example.invalid/a.png)", "[a](javascript:alert(1))", "<http://example.invalid>",
                 "<img src=x>", "**b** _i_ `c` ~~s~~", "# h\n---\n| a | b |", ":red[x] $x^2$", "[r]: http://e.invalid",
                 "a\\\\b", "see HTTPS://example.invalid/a, WWW.example.invalid, me@example.invalid, mailto:x"):
        out = md(text)
        # every ASCII punctuation character is escaped: no Markdown construct can start
        assert not re.search(r"[!\[\]()<>*_`~#|:$\\]", re.sub(r"\\.", "", out)), out
        # and GFM's literal autolinks (scheme:, www., e-mail) cannot either: an invisible joiner breaks each
        shown = re.sub(r"\\(.)", r"\1", out)
        assert not re.search(r"[A-Za-z]:|www\.|[\w.+-]@", shown, re.I), out
        assert shown.replace(WORD_JOINER, "") == " ".join(text.split())
    assert "\n" not in md("a\nb\r\nc") and len(md("x" * 5000, 100)) == 100


def test_run_text_in_figures_is_no_link():
    """plotly renders an <a href> tag in any text of a figure as a link: one from a run (a method name in a legend,
    a tick, customdata shown on hover) is escaped and shows as its characters."""
    import plotly.graph_objects as go

    tag = '<a href="http://example.invalid/p">m</a>'
    fig = go.Figure(go.Bar(x=[tag, "b"], y=[1, 2], name=f"x {tag}", customdata=np.array([[tag], ["c"]], object)),
                    layout={"title": {"text": tag}})
    clean = P.without_links(fig)
    shown = '&lt;a href="http://example.invalid/p">m&lt;/a>'  # plotly shows &lt; as <, as text
    trace = clean.data[0]
    assert (trace.x[0], trace.name, trace.customdata[0][0], clean.layout.title.text) == (shown, f"x {shown}", shown,
                                                                                       shown)
    assert trace.x[1] == "b" and list(trace.y) == [1, 2]
    plain = go.Figure(go.Scatter(x=np.arange(3.0), y=np.arange(3.0), name="scar · lr=5e-4 <br>"))
    assert P.without_links(plain) is plain  # scarlab's own markup (<br>, <b>) is left alone


def test_every_read_goes_through_the_gate():
    """Files are opened only by data.open_checked (resolved, inside the root, regular): no page or helper opens a
    path itself, and the parsers only ever get the checked file object ``f``."""
    opener = re.compile(r"\.read_text\(|\.read_bytes\(|(?<![\w.])open\(|\bio\.open\(|Image\.open\(")
    parser = re.compile(r"\b(?:pd\.read_\w+|np\.load|pq\.read_\w+|json\.load)\((\w*)")
    for f in sorted((REPO / "dashboard").rglob("*.py")):
        code = re.sub(r'"""[\s\S]*?"""', "", f.read_text())
        code = "\n".join(line.split("#")[0] for line in code.splitlines())
        assert not opener.search(code), f"{f.name} opens a file itself: {opener.search(code).group(0)}"
        for m in parser.finditer(code):
            assert f.name == "data.py" and m.group(1) == "f", f"{f.name}: {m.group(0)} reads without the gate"
    data = (REPO / "dashboard" / "data.py").read_text()
    assert data.count("os.open(") == 1 and "O_NONBLOCK" in data and "O_NOFOLLOW" in data


# ----------------------------------------------------------------------------- privacy (U-LiRA audit), synthetic
AUDIT_KEYS = ("auc", "tpr@0.01", "tpr@0.001", "bacc", "eps_mean", "eps_median")


def _write_run(path: Path, stage: str, method: str, seed: int = 0, shadow: dict | None = None) -> Path:
    path.mkdir(parents=True)
    manifest = {"stage": stage, "status": "complete", "created": 1.7e9, "files": []}
    if shadow:
        manifest["shadow"] = shadow
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "config.json").write_text(json.dumps({"method": method, "dataset": "digits", "model": "cnn",
                                                  "scenario": "CR", "forget_classes": [0], "seed": seed}))
    return path


def write_audit(run: Path, k: int = 16, n: int = 200, shift: float = 1.0, seed: int = 0, thumbs: bool = False) -> dict:
    """Synthetic but well-formed audit files, as scarlab.audit writes them (audit.json, audit.parquet,
    audit_scores.npz, audit_steps.csv), and the ulira/* metrics merged into metrics.json."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(10 * n, n, replace=False)).astype(np.int64)
    labels = np.zeros(n, np.int64)
    b = rng.normal(0, 1, (k, n))
    a = rng.normal(shift, 1, (k, n))
    target = rng.normal(shift / 2, 1, n)
    lam = target - shift / 4
    grid = np.logspace(-4, 0, 60)
    tpr = np.minimum(1.0, grid ** (1 / (1 + shift)))
    metrics = {}
    for i, key in enumerate(AUDIT_KEYS):
        v = {"auc": 0.5 + shift / 4, "tpr@0.01": 0.01 + shift / 20, "tpr@0.001": 0.001 + shift / 50,
             "bacc": 0.5 + shift / 5, "eps_mean": shift, "eps_median": shift / 2}[key]
        metrics.update({f"ulira/{key}": v, f"ulira/{key}_low": v * 0.8, f"ulira/{key}_high": v * 1.2})
    metrics.update({"ulira/eps_ceiling": 2.5, "ulira/eps_chance": 0.04, "ulira/k": k, "ulira/n_examples": n})
    # the control: the model-level part of the shift (3/4 of it), and forget − control for the membership signal
    for key in ("auc", "tpr@0.01", "eps_mean"):
        v = metrics[f"ulira/{key}"]
        c = 0.5 + (v - 0.5) * 0.75 if key == "auc" else v * 0.75
        metrics.update({f"ulira/control/{key}": c, f"ulira/control/{key}_low": c * 0.8,
                        f"ulira/control/{key}_high": min(c * 1.2, 1.0), f"ulira/membership/{key}": v - c,
                        f"ulira/membership/{key}_low": (v - c) - 0.0421,
                        f"ulira/membership/{key}_high": (v - c) + 0.0421})
    metrics.update({"ulira/member@0.01": 0.01 + shift / 10, "ulira/control/n_examples": n})
    doc = {"run": str(run), "k": k, "metrics": metrics, "roc": {"fpr": grid.tolist(), "tpr": tpr.tolist()},
           "control": {"what": "test images of the forget classes", "n_examples": n,
                       "roc": {"fpr": grid.tolist(), "tpr": np.sqrt(tpr * grid).tolist()}},
           "populations": {"a": "K unlearned shadows", "b": "K retrained shadows"}, "time": {"audit_s": 1.0}}
    (run / "audit.json").write_text(json.dumps(doc))
    pd.DataFrame({"index": idx, "label": labels, "target_score": target, "target_log_lr": lam,
                  "eps": np.abs(rng.normal(shift, 0.5, n)), "example_auc": rng.uniform(0.3, 1, n),
                  "flagged@0.01": lam > 2.0, "member@0.01": lam > 2.5, "mean_a": a.mean(0),
                  "mean_b": b.mean(0)}).to_parquet(
        run / "audit.parquet", index=False)
    np.savez_compressed(run / "audit_scores.npz", scores_a=a, scores_b=b, target=target, index=idx, labels=labels,
                        log_lr_a=a - b, log_lr_b=b - a)
    pd.DataFrame({"step": [0, 5, 10], "ulira/auc": [1.0, 0.8, 0.5 + shift / 4],
                  "ulira/auc_low": [0.99, 0.7, 0.4], "ulira/auc_high": [1.0, 0.9, 0.7],
                  "ulira/tpr@0.01": [1.0, 0.3, 0.05], "ulira/tpr@0.01_low": [0.9, 0.2, 0.0],
                  "ulira/tpr@0.01_high": [1.0, 0.4, 0.1], "ulira/eps_mean": [1.3, 0.5, shift],
                  "ulira/log_lr_mean": [2.0, 1.0, 0.2], "ulira/flagged@0.01": [0.5, 0.2, 0.02],
                  "n_examples": [20, 20, 20], "k": [k, k, k]}).to_csv(run / "audit_steps.csv", index=False)
    # the snapshot points: 20 of the first 21 forget examples, never the one with the largest log-LR (the page's
    # default pick); each drops under the threshold at step 5
    log_lr = np.tile(np.linspace(5.0, -1.0, 20, dtype=np.float32), (3, 1)) * np.array([[1.0], [0.3], [0.1]])
    probe = idx[np.setdiff1d(np.arange(21), [int(np.argmax(lam))])[:20]]
    np.savez_compressed(run / "audit_steps.npz", step=np.array([0, 5, 10]), index=probe, log_lr=log_lr,
                        threshold=np.array([2.0, 2.0, 1.0]))
    merged = {"aus": 0.9, **{k: v for k, v in metrics.items() if k.split("/")[1].split("_low")[0].split("_high")[0]
                             in AUDIT_KEYS or k.startswith(("ulira/control/", "ulira/membership/"))}}
    (run / "metrics.json").write_text(json.dumps(merged))
    if thumbs:
        from PIL import Image
        import base64

        buf = io.BytesIO()
        Image.new("L", (8, 8), 200).save(buf, format="PNG")
        png = base64.b64encode(buf.getvalue()).decode()
        pd.DataFrame({"point": np.arange(n), "group": np.zeros(n, np.int8), "index": idx,
                      "png": [png] * n}).to_parquet(run / "thumbs.parquet", index=False)
    return doc


def write_offline_audit(run: Path, n: int = 200, nc: int = 150, k: int = 8, shift: float = 0.2, seed: int = 0) -> dict:
    """Synthetic but well-formed offline audit files, as scarlab.audit.audit_offline writes them
    (audit_offline.json, audit_offline.parquet), and the ulira/offline/* metrics merged into metrics.json."""
    rng = np.random.default_rng(seed)
    metrics = {}
    for att, base in (("lira", 0.5 + shift / 2), ("rmia", 0.5 + shift / 4)):
        key = f"ulira/offline/{att}"
        metrics.update({f"{key}/auc": base, f"{key}/auc_low": base - 0.05, f"{key}/auc_high": base + 0.05,
                        f"{key}/tpr@0.01": 0.01 + shift / 10, f"{key}/tpr@0.01_low": 0.0,
                        f"{key}/tpr@0.01_high": 0.02 + shift / 5, f"{key}/forget/mean": 1.0 + shift,
                        f"{key}/control/mean": 1.0, f"{key}/forget/flagged@0.01": 0.9,
                        f"{key}/control/flagged@0.01": 0.85})
    metrics.update({"ulira/offline/rmia/a": 1.0, "ulira/offline/k": k, "ulira/offline/n_population": 1000})
    doc = {"mode": "offline", "run": str(run), "kind": "unlearn", "label": "x", "k": k, "alpha": 0.05,
           "n_examples": n, "metrics": metrics, "reference": "retrained shadows",
           "rmia": {"a": 1.0, "a_source": "tuned on the split's original", "a_auc": {"0": 0.5, "1": 0.55}},
           "control": {"what": "test images of the forget classes", "n_examples": nc},
           "shadows": {"k": k, "folder": "shadows__abcd1234", "seeds": list(range(1000, 1000 + k)), "built": [],
                       "reused": k}, "time": {"audit_s": 1.0}}
    (run / "audit_offline.json").write_text(json.dumps(doc))
    pd.DataFrame({"index": np.arange(n + nc), "part": ["forget"] * n + ["control"] * nc,
                  "label": np.zeros(n + nc, np.int64), "target_score": rng.normal(0, 1, n + nc),
                  "ref_mean": np.zeros(n + nc), "lira_z": np.r_[rng.normal(3 + shift, 1, n), rng.normal(3, 1, nc)],
                  "rmia_score": rng.uniform(0, 1, n + nc)}).to_parquet(run / "audit_offline.parquet", index=False)
    path = run / "metrics.json"
    merged = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**merged, **metrics}))
    return doc


@pytest.fixture()
def audit_root(tmp_path):
    """Two audited results (scar, retrained) and an unaudited one on one forget set, plus a shadow folder."""
    root = tmp_path / "runs"
    write_audit(_write_run(root / "scar_cr0", "unlearn", "scar"), shift=1.0, thumbs=True)
    write_audit(_write_run(root / "retrained_cr0", "train_retrained", "retrained"), shift=0.0, seed=1)
    _write_run(root / "ng_cr0", "unlearn", "negative_gradient")
    for role, stage in (("original", "train_original"), ("retrained", "train_retrained")):
        _write_run(root / "shadows__abcd1234" / f"{role}__s0", stage, role,
                   shadow={"role": role, "seed": 0, "fingerprint": "abcd1234"})
    return root


def _privacy(at, label: str = "scar"):
    at.switch_page("views/privacy.py").run()
    at.selectbox(key="privacy_label").set_value(label).run()
    _ok(at)
    return at


def test_privacy_page(audit_root, monkeypatch):
    from scarlab.results import METRIC

    at = _privacy(_apptest(audit_root, monkeypatch))
    table = at.dataframe[0].value.set_index("result")
    assert set(table.index) == {"scar", "retrained"}  # both audited results of this forget set, no shadow
    auc = METRIC["ulira/auc"].label
    assert table.loc["scar", auc] == "0.750 [0.600, 0.900]"
    assert table.loc["retrained", METRIC["ulira/tpr@0.01"].label] == "1.00 [0.80, 1.20]"
    # forget and control side by side, and the membership signal between them
    assert table.loc["scar", METRIC["ulira/control/auc"].label] == "0.688 [0.550, 0.825]"
    assert table.loc["scar", METRIC["ulira/membership/auc"].label] == "0.062 [0.020, 0.105]"
    mem, roc, tpr, eps, emap, dist = _chart_specs(at)
    assert [t["name"] for t in mem["data"] if t["type"] == "bar"] == ["forget", "control", "membership"]
    assert [mem["layout"][a]["title"]["text"] for a in ("yaxis", "yaxis2")] == [
        "AUC (dashed: chance 0.5)", "Δ AUC (dashed: no membership signal 0)"]  # the lines named clear of the bars
    assert [sh["y0"] for sh in mem["layout"]["shapes"]] == [0.5, 0.0]
    assert roc["layout"]["xaxis"]["type"] == "log" and {"scar", "retrained"} <= {t["name"] for t in roc["data"]}
    assert {"scar · control", "retrained · control"} <= {t["name"] for t in roc["data"]}
    assert any("chance" in t["name"] for t in roc["data"])
    assert not tpr["layout"].get("title", {}).get("text")  # only the panels' titles: they overlapped a figure title
    assert sum(t["type"] == "bar" for t in tpr["data"]) == 2 and "error_y" in tpr["data"][0]
    assert any(t.get("name") == "ε ceiling for K" for t in eps["data"])
    assert [t["y"][0] for t in eps["data"] if t.get("name") == "chance (mean ε)"] == [0.04]
    assert sum(_points(t) for t in emap["data"] if t["type"] == "scattergl") == 200
    assert len(at.get("image")) == 1  # the picked example's thumbnail
    # the picked example (the largest log-LR) is no snapshot point here: said, and no curve over steps
    assert any("not among the run's snapshot" in c.value for c in at.caption)
    first = int(np.flatnonzero(at.dataframe[-1].value["index"].isin(
        np.load(audit_root / "scar_cr0" / "audit_steps.npz")["index"]))[0])
    at.selectbox(key="privacy_example_scar_cr0").set_value(first).run()
    _ok(at)
    steps = _chart_specs(at)[-1]
    assert [t["name"] for t in steps["data"]] == ["log-LR", "flag threshold (1 % FPR)"]
    assert any("first drops under the threshold at step 5" in c.value for c in at.caption)
    assert any("K unlearned shadows" in t.value for t in at.text)
    before = _chart_specs(at)[-2]["data"]
    at.selectbox(key="privacy_example_scar_cr0").set_value(first + 1).run()
    _ok(at)
    assert _chart_specs(at)[-2]["data"] != before  # another example, other score distributions
    # the retrained run: no thumbnails, its label and index shown instead
    _privacy(at, "retrained")
    assert not at.get("image") and any("training index" in t.value for t in at.text)


def test_privacy_cells_say_only_what_k_pairs_show(audit_root, monkeypatch):
    """A saturated statistic reads as a one-sided bound, an FPR below one false positive as not resolvable (with the
    K that would resolve it), a membership signal over a control at 1 as not measurable: never a zero-width
    interval."""
    from scarlab.results import METRIC

    path = audit_root / "scar_cr0" / "audit.json"
    doc = json.loads(path.read_text())
    m = doc["metrics"]
    m.update({"ulira/auc": 1.0, "ulira/auc_low": 0.688, "ulira/auc_high": 1.0, "ulira/auc_saturated": 1.0,
              "ulira/tpr@0.001": None, "ulira/tpr@0.001_low": None, "ulira/tpr@0.001_high": None,
              "ulira/tpr@0.001_k_needed": 5.0, "ulira/membership/auc_masked": 1.0})
    path.write_text(json.dumps(doc))
    table = _privacy(_apptest(audit_root, monkeypatch)).dataframe[0].value.set_index("result")
    assert table.loc["scar", METRIC["ulira/auc"].label] == "1.000 (≥ 0.688, one-sided)"
    assert table.loc["scar", METRIC["ulira/tpr@0.001"].label] == "not resolvable with K = 16 (needs K ≥ 5)"
    assert table.loc["scar", METRIC["ulira/membership/auc"].label] == "not measurable: control at 1"


def test_privacy_page_without_audit(audit_root, monkeypatch):
    at = _privacy(_apptest(audit_root, monkeypatch), "negative_gradient")
    assert any("scarlab audit RUN --shadows K" in i.value for i in at.info)
    assert len(at.dataframe) == 1  # the comparable audited results are still shown


OFFLINE_AUC = "offline LiRA AUC forget vs control (none: 0.5)"


def _offline_table(at) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if OFFLINE_AUC in d.value.columns).set_index("result")


def test_privacy_page_shows_offline_audits_labelled(audit_root, monkeypatch):
    """A run with only an offline audit: no "no audit" note; the online table of its peers stays, and an offline
    section (labelled so) lists every offline audit of the set, both attacks' AUC with intervals and chance, and
    the picked run's z of forget and control examples."""
    write_offline_audit(audit_root / "ng_cr0", shift=0.2)
    write_offline_audit(audit_root / "scar_cr0", shift=0.0, seed=1)
    at = _privacy(_apptest(audit_root, monkeypatch), "negative_gradient")
    assert not any("has no audit yet" in i.value for i in at.info)
    heads = [h.value for h in at.subheader]
    assert any(h.startswith("Online audit") for h in heads) and any(h.startswith("Offline audit") for h in heads)
    table = _offline_table(at)
    assert set(table.index) == {"negative_gradient", "scar"}
    assert table.loc["negative_gradient", OFFLINE_AUC] == "0.600 [0.550, 0.650]"
    assert table.loc["scar", "offline RMIA AUC forget vs control (none: 0.5)"] == "0.500 [0.450, 0.550]"
    assert table.loc["negative_gradient", "offline LiRA flagged forget / control (model-level)"] == "0.900 / 0.850"
    assert table.loc["negative_gradient", "control examples"] == "150 (test images of the forget classes)"
    specs = _chart_specs(at)
    auc = next(f for f in specs if any("offline LiRA" in (a.get("text") or "")
                                       for a in f["layout"].get("annotations", [])))
    assert sum(t["type"] == "bar" for t in auc["data"]) == 2
    assert auc["layout"]["yaxis"]["title"]["text"] == "AUC (dashed: no membership 0.5)"  # named clear of the bars
    assert [sh["y0"] for sh in auc["layout"]["shapes"]] == [0.5, 0.5]
    hist = next(f for f in specs if [t.get("type") for t in f["data"]] == ["histogram", "histogram"])
    assert [t["name"] for t in hist["data"]] == ["control (150)", "forget (200)"]
    assert any("Offline: the run's own model" in c.value for c in at.caption)


def test_compare_page_takes_offline_audit_metrics(audit_root, monkeypatch):
    """A run with offline-audit metrics (ulira/offline/*, some with bounds but no METRICS entry) on the Compare page:
    no exception (its bounds once made a second column of the same name), the offline AUC in the table of all
    metrics with its interval."""
    from scarlab.results import METRIC

    write_offline_audit(audit_root / "scar_cr0", shift=0.2)
    at = _apptest(audit_root, monkeypatch)
    at.switch_page("views/compare.py").run()
    _ok(at)
    every = at.dataframe[-1].value.set_index("label")
    assert every.loc["scar", METRIC["ulira/offline/lira/auc"].label] == "0.600 [0.550, 0.650]"
    assert "ulira/offline/lira/tpr@0.01" in every.columns and not every.columns.duplicated().any()


def test_privacy_page_with_offline_audits_only(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    write_offline_audit(_write_run(root / "scar_cr0", "unlearn", "scar"))
    at = _privacy(_apptest(root, monkeypatch))
    assert [h.value for h in at.subheader] == ["Offline audit: each model against the retrained shadows"]
    assert list(_offline_table(at).index) == ["scar"] and len(_chart_specs(at)) == 2
    # a damaged offline file is one warning, the page still stands
    (root / "scar_cr0" / "audit_offline.parquet").write_text("not parquet")
    at = _privacy(_apptest(root, monkeypatch))
    assert len(_chart_specs(at)) == 1 and any("parquet" in w.value and "ArrowInvalid" in w.value for w in at.warning)


def test_shadow_models_hidden_unless_asked(audit_root, monkeypatch):
    at = _apptest(audit_root, monkeypatch)
    assert not any(r.startswith("shadows__") for r in at.dataframe[0].value["run"])
    _privacy(at)
    assert "original" not in at.selectbox(key="privacy_label").options
    at.switch_page("views/runs.py").run()
    at.toggle(key="runs_shadows").set_value(True).run()
    _ok(at)
    assert sum(r.startswith("shadows__") for r in at.dataframe[0].value["run"]) == 2
    at.switch_page("views/privacy.py").run()  # the choice holds on every page
    _ok(at)
    assert "original" in at.selectbox(key="privacy_label").options
    at.switch_page("views/runs.py").run()
    assert at.toggle(key="runs_shadows").value is True


def test_malformed_records_are_listed_and_skipped(audit_root, malformed_runs, monkeypatch):
    """Runs whose records hold a field of the wrong type (parents ["x"] or null, forget_classes [null], a metric in
    words), nest 200,000 levels or exceed the size cap: each is one row with its one-line problem on the Runs page
    and left out of every other page, where the good runs still show."""
    from conftest import MALFORMED

    for name in MALFORMED:
        shutil.move(malformed_runs / name, audit_root / name)
    at = _apptest(audit_root, monkeypatch)
    assert "privacy" in PAGES and len(PAGES) >= 6  # the page list is read from app.py
    table = at.dataframe[0].value.set_index("run")
    for name, (_, problem) in MALFORMED.items():
        assert table.loc[name, "status"] in ("⚠ invalid", "⚠ unreadable"), name
        assert problem in table.loc[name, "problem"] and "\n" not in table.loc[name, "problem"], name
    assert (table.loc[["scar_cr0", "retrained_cr0", "ng_cr0"], "status"] != "⚠ invalid").all()
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        _ok(at)
        if page != "runs":  # every picker, table and chart holds only the good runs
            shown = _shown(at) + " ".join(" ".join(map(str, df.value.to_numpy().ravel())) for df in at.dataframe)
            shown += " ".join(" ".join(map(str, w.options)) for w in [*at.selectbox, *at.multiselect])
            assert not any(name in shown for name in MALFORMED), page
    at.switch_page("views/compare.py").run()
    assert {"scar", "retrained"} <= set(at.dataframe[0].value["label"])
    _privacy(at)
    assert len(at.get("plotly_chart")) >= 3  # the audited run still draws
    at.switch_page("views/curves.py").run()
    titles = at.multiselect(key="curves_runs").options  # the two good unlearning runs, and only they
    assert len(titles) == 2 and {t.split(" · ")[-1] for t in titles} == {"scar_cr0", "ng_cr0"}


def test_privacy_downloads_curves_and_compare(audit_root, monkeypatch):
    from scarlab.results import METRIC

    at = _privacy(_apptest(audit_root, monkeypatch))
    buttons = at.get("download_button")
    assert all(b.proto.deferred_file_id for b in buttons)
    assert sum(b.label == "CSV" for b in buttons) == len(at.dataframe) == 2
    assert sum(b.label.startswith("HTML") for b in buttons) == len(at.get("plotly_chart")) == 6
    at.switch_page("views/curves.py").run()
    at.multiselect(key="curves_runs").set_value(["scar_cr0"]).run()
    _ok(at)
    chosen = at.multiselect(key="curves_metrics")
    assert {"ulira/auc", "ulira/tpr@0.01"} <= set(chosen.value)  # the attack over steps, by default
    assert not any(m.endswith(("_low", "_high")) or m == "k" for m in chosen.options)  # intervals go with their metric
    spec = _chart_specs(at)[0]
    assert any(t.get("fill") == "toself" for t in spec["data"])  # the AUC interval as a band
    at.switch_page("views/compare.py").run()
    _ok(at)
    table = at.dataframe[0].value.set_index("label")
    assert table.loc["scar", METRIC["ulira/auc"].label] == "0.750 [0.600, 0.900]"  # one run: its own interval
    assert table.loc["scar", METRIC["ulira/tpr@0.01"].label] == "6.00 [4.80, 7.20]"


def test_privacy_page_reads_each_file_once(tmp_path, monkeypatch):
    """K = 16 shadow pairs and 2,000 forget examples: picking another example or switching between two runs
    reads no Parquet or npz file again — every interaction after the first view is served from the page's caches (what
    keeps it interactive; a wall-clock limit would depend on the machine)."""
    import pyarrow.parquet as pq

    root = tmp_path / "runs"
    for i, (name, stage, method) in enumerate((("scar", "unlearn", "scar"), ("scar2", "unlearn", "scar"),
                                               ("retrained", "train_retrained", "retrained"))):
        write_audit(_write_run(root / name, stage, method, seed=i), k=16, n=2000, shift=1.0 - i / 3, seed=i,
                    thumbs=True)
    reads = []
    real_table, real_load = pq.read_table, np.load
    monkeypatch.setattr(pq, "read_table", lambda f, *a, **kw: reads.append(f) or real_table(f, *a, **kw))
    monkeypatch.setattr(np, "load", lambda f, *a, **kw: reads.append(f) or real_load(f, *a, **kw))
    at = _privacy(_apptest(root, monkeypatch))
    assert sum(_points(t) for t in _chart_specs(at)[4]["data"] if t["type"] == "scattergl") == 2000
    at.selectbox(key="privacy_run_scar").set_value("scar2").run()  # both runs seen once
    _ok(at)
    seen = len(reads)
    assert seen > 0
    for j in range(6):
        at.selectbox(key=f"privacy_example_{at.selectbox(key='privacy_run_scar').value}").set_value(10 * j + 1).run()
        _ok(at)
        at.selectbox(key="privacy_run_scar").set_value(("scar", "scar2")[j % 2]).run()
        _ok(at)
    assert len(reads) == seen, reads[seen:]
