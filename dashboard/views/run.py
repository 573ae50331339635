"""Run: a pipeline configured in a form generated from the CLI's own declarations, checked and planned by the CLI,
launched as a background job (scarlab.jobs), watched live and stopped. Launching happens in subprocesses
(`python -m scarlab ...`, arguments as a list); this page only reads the job's files under <runs root>/.jobs/."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import streamlit as st
import yaml

from scarlab import jobs as J
from scarlab.errors import ScarlabError
from scarlab_dashboard import common
from scarlab_dashboard import data as D
from scarlab_dashboard import plots as P

common.header("Run experiments",
              "Configure a pipeline (the options of `scarlab pipeline`, with their help and their default on the "
              "chosen data set), check its plan — which stages run, which are reused, about how long — and launch it "
              "as a background job under the runs root. Jobs run one at a time; a second one waits for the first. "
              "A comma list of values for a method parameter is a grid axis (one run per value).")
refusal = D.run_page_refusal()
if refusal:
    st.info(refusal)
    st.stop()
root = D.runs_root()
if root is None or not root.is_dir():
    st.error(common.md(f"No runs root to launch into ({root or 'not set'}): start with `scarlab dashboard --runs "
                       "DIR`."))
    st.stop()
allowed = D.data_folders()
# fields the form asks for in its own widgets; the rest are generated under "More options"
OWN = {"dataset", "model", "scenario", "forget_classes", "forget_size", "methods", "params", "seeds", "shadows",
       "out", "notebooks", "data_root", "surrogate", "epochs", "unlearn_epochs", "original"}


@st.cache_data(show_spinner="Reading the pipeline's options (scarlab pipeline --describe)…", ttl=3600)
def _schema() -> D.Loaded:
    try:
        return D.Loaded(J.describe())
    except ScarlabError as exc:
        return D.Loaded(None, str(exc))


def _text(v) -> str:
    """A default as the form shows it (and as YAML reads it back)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _values(text: str, is_list: bool):
    """A field's text: YAML values; for a one-value parameter a comma list is a grid axis (a list)."""
    if is_list:
        return yaml.safe_load(text)
    parts = [yaml.safe_load(p.strip()) for p in text.split(",") if p.strip()]
    return parts[0] if len(parts) == 1 else parts


def _help(entry: dict) -> str:
    return f"{entry['help']} [default: {entry['shown']}]"


def _originals() -> list[D.Run]:
    """The complete original runs under the root a pipeline may start from (shadow members left out)."""
    runs = D.scan(root).value or []
    return [r for r in runs if r.stage == "train_original" and r.status == "complete" and r.usable and not r.shadow]


def _original_text(r: D.Run) -> str:
    imported = r.config.get("imported")
    how = (f"imported from {Path(str(imported.get('source', '?'))).name}" if isinstance(imported, dict)
           else f"trained, {r.config.get('epochs', '?')} epochs")
    data = r.dataset if not str(r.dataset).startswith("imagefolder:") else Path(r.dataset.split(":", 1)[1]).name
    return f"{r.id} · {r.model} on {data} · {how}"


schema = _schema()
if schema.value is None:
    st.error(common.md(f"The pipeline's options could not be read: {schema.error}"))
    st.stop()
S = schema.value
pipe, methods_schema = S["pipeline"], S["methods"]
folders = J.image_folders(allowed)

# ----------------------------------------------------------------------------- the form
st.subheader("Configure")
originals = {str(r.path): r for r in _originals()}
start = st.selectbox("Original model", [""] + list(originals), key="run_original",
                     format_func=lambda o: "train a new original" if not o else _original_text(originals[o]),
                     help=_help(pipe["original"]) + " Listed: the complete original runs under the runs root "
                     "(`scarlab import` or `scarlab train` made them; an imported one says where its weights came "
                     "from). Its data set and model are the pipeline's.")
given = originals.get(start)
c1, c2, c3 = st.columns(3)
datasets = ["digits"] + folders["datasets"]
if given is not None:
    datasets = [given.dataset]  # validation refuses another one; an image folder must still be an allowed one
dataset = c1.selectbox("Data set", datasets, help=_help(pipe["dataset"]) + " ImageFolder data sets: the folders this "
                       "dashboard was started with (--data DIR, $SCARLAB_SHARED_DATA).",
                       key="run_dataset" if given is None else "run_dataset_given", disabled=given is not None,
                       format_func=lambda d: d if d == "digits" else f"{Path(d.split(':', 1)[1]).name} ({d})")
bucket = "digits" if dataset == "digits" else "generic"
if given is None:
    model = c2.selectbox("Model", ["default"] + S["models"], help=_help(pipe["model"]), key="run_model",
                         format_func=lambda m: f"default ({pipe['model']['shown']})" if m == "default" else m)
else:  # the original's own
    c2.selectbox("Model", [given.model], key="run_model_given", disabled=True, help=_help(pipe["model"]))
    model = "default"
scenario = c3.radio("Forget", ["CR", "HR"], horizontal=True, help=_help(pipe["scenario"]), key="run_scenario",
                    format_func=lambda s: {"CR": "classes (CR)", "HR": "random samples (HR)"}[s])
if dataset == "digits":
    n_classes = S["class_counts"]["digits"]
else:
    train = Path(dataset.split(":", 1)[1]) / "train"
    n_classes = sum(1 for p in train.iterdir() if p.is_dir()) if train.is_dir() else 0
config: dict = {"dataset": dataset, "scenario": scenario}
if given is not None:
    config["original"] = start
if model != "default":
    config["model"] = model
c1, c2, c3 = st.columns(3)
if scenario == "CR":
    config["forget_classes"] = c1.multiselect("Forget classes (forgotten together)", list(range(n_classes)),
                                              default=[0] if n_classes else [], help=_help(pipe["forget_classes"]),
                                              key=f"run_classes_{dataset}")
else:
    config["forget_size"] = int(c1.number_input("Forget size (training images)", min_value=1, value=100, step=10,
                                                help=_help(pipe["forget_size"]), key="run_forget_size"))
chosen = c2.multiselect("Methods", list(methods_schema), default=["scar"], help=_help(pipe["methods"]),
                        key="run_methods", format_func=lambda m: m)
config["methods"] = chosen
seeds = c3.text_input("Seeds", "0", help=_help(pipe["seeds"]) + " Several: 0, 1, 2.", key="run_seeds")
c1, c2, c3 = st.columns(3)
epochs = c1.text_input("Training epochs (original and retrained)", "", key="run_epochs",
                       help=_help(pipe["epochs"]) + " Empty: the default (with an original given: its own, which "
                       "the retrained oracle copies).")
u_epochs = c2.text_input("Unlearning epochs (every method)", "", key="run_unlearn_epochs",
                         help=_help(pipe["unlearn_epochs"]) + " Empty: each method's default.")
surrogates = [s for s in S["surrogates"] if not s.startswith("imagefolder:")] + folders["surrogates"]
surrogate = c3.selectbox("Surrogate images (OOD)", surrogates, help=_help(pipe["surrogate"]), key="run_surrogate")
errors = []
try:
    config["seeds"] = _values(seeds, False) if seeds.strip() else []
    if not isinstance(config["seeds"], list):
        config["seeds"] = [config["seeds"]]
    if epochs.strip():
        config["epochs"] = _values(epochs, False)
    if u_epochs.strip():
        config["unlearn_epochs"] = _values(u_epochs, False)
except yaml.YAMLError as exc:
    errors.append(f"seeds / epochs: not readable ({str(exc).splitlines()[0]})")
if surrogate != "auto":
    config["surrogate"] = surrogate

params: dict = {}
for m in chosen:
    spec = methods_schema[m]
    with st.expander(f"{m} parameters — {spec['summary']}", expanded=m == "scar"):
        cols = st.columns(3)
        for i, (name, entry) in enumerate(spec["params"].items()):
            default = _text(entry["defaults"][bucket])
            text = cols[i % 3].text_input(name, default, help=_help(entry), key=f"run_p_{m}_{name}_{bucket}")
            if text.strip() == default:
                continue
            try:
                params.setdefault(m, {})[name] = _values(text, entry["type"] == "list") if text.strip() else None
            except yaml.YAMLError as exc:
                errors.append(f"{m}.{name}: not readable ({str(exc).splitlines()[0]})")
if params:
    config["params"] = params

with st.expander("Privacy audit and more options"):
    audit = st.checkbox("Privacy audit (U-LiRA) of every evaluated run", value=False, key="run_audit",
                        help=_help(pipe["shadows"]))
    if audit:
        config["shadows"] = int(st.number_input("Shadow models K", min_value=3, value=8, key="run_shadows"))
    out = st.text_input("Folder under the runs root", "", key="run_out",
                        help="where the pipeline writes, inside the runs root (empty: the root itself, so its "
                             "completed stages are reused)")
    if out.strip():
        config["out"] = out.strip()
    cols = st.columns(3)
    rest = [(n, e) for n, e in pipe.items() if n not in OWN]
    for i, (name, entry) in enumerate(rest):
        col = cols[i % 3]
        if entry["type"] == "bool":
            value = col.checkbox(name, value=bool(entry["default"]), help=_help(entry), key=f"run_o_{name}")
            if value != bool(entry["default"]):
                config[name] = value
        elif entry["type"] != "dict":
            default = _text(entry["default"])
            text = col.text_input(name, default, help=_help(entry), key=f"run_o_{name}")
            if text.strip() != default:
                try:
                    config[name] = _values(text, entry["type"] == "list") if text.strip() else None
                except yaml.YAMLError as exc:
                    errors.append(f"{name}: not readable ({str(exc).splitlines()[0]})")

key = json.dumps(config, sort_keys=True, default=str)
with st.expander("The configuration (the keys of `scarlab pipeline --config FILE`)"):
    st.code(yaml.safe_dump(config, sort_keys=False), language="yaml")

b1, b2, msg = st.columns([1, 1, 6])
check_clicked = b1.button("Check plan", key="run_check", icon=":material/checklist:")
launch_clicked = b2.button("Launch", key="run_launch", type="primary", icon=":material/play_arrow:")


def _check() -> dict | None:
    """The plan of ``config`` (cached per configuration in the session), or None with the one-line error shown."""
    if errors:
        msg.error(common.md(errors[0]))
        return None
    cached = st.session_state.get("run_plan")
    if cached and cached[0] == key:
        return cached[1]
    try:
        with st.spinner("Checking with the pipeline's own validation…"):
            plan = J.check(config, root, allowed)
    except ScarlabError as exc:
        st.session_state["run_plan"] = None
        msg.error(common.md(str(exc)))
        return None
    st.session_state["run_plan"] = (key, plan)
    return plan


if check_clicked or launch_clicked:
    plan = _check()
    if plan is not None and launch_clicked:
        try:
            job = J.submit(config, root, allowed, plan=plan)
        except ScarlabError as exc:
            msg.error(common.md(str(exc)))
        else:
            st.session_state["run_job"] = job.id
            msg.success(f"Job {job.id} {job.state}.")
cached = st.session_state.get("run_plan")
if cached and cached[0] == key:
    plan = cached[1]
    est = plan["estimate"]
    rows = [{"stage": s["label"], "state": ("given" if s.get("given") else "reuse") if s["state"] == "current"
             else "run",
             "estimate (s)": round(est["per_stage"][s["id"]][0], 1) if s["id"] in est["per_stage"] else 0.0,
             "from": est["per_stage"].get(s["id"], (0, "reused"))[1], "run folder": s["run_dir"]}
            for s in plan["stages"]]
    n_run = sum(r["state"] == "run" for r in rows)
    gave = [r["run folder"] for r in rows if r["state"] == "given"]
    st.markdown(f"**Plan:** {len(rows)} stages, {n_run} to run, {len(rows) - n_run} reused"
                + (f" (the original given, used as it is: {common.md(gave[0])})" if gave else "")
                + f" · about **{est['seconds'] / 60:.1f} min** ({common.md(est['note'])}).")
    common.table(pd.DataFrame(rows), "plan", "run_plan_table", hide_index=True, width="stretch")

# ----------------------------------------------------------------------------- jobs, watched live
st.subheader("Jobs")
MARKS = {"pending": "·", "running": "▶", "complete": "✓", "skipped": "↺", "failed": "✗", "blocked": "–",
         "interrupted": "■"}


def _pick(all_jobs: list[J.Job]) -> J.Job:
    wanted = st.session_state.get("run_job")
    live = [j for j in all_jobs if j.state == "running"]
    ids = [j.id for j in reversed(all_jobs)]
    default = wanted if wanted in ids else (live[0].id if live else ids[0])
    if st.session_state.get("run_watch") not in ids or st.session_state.get("_run_watch_for") != wanted:
        st.session_state["run_watch"] = default  # a new launch is watched at once
        st.session_state["_run_watch_for"] = wanted
    chosen = st.selectbox("Job", ids, key="run_watch")
    return next(j for j in all_jobs if j.id == chosen)


def _progress(job: J.Job, stages: list[dict]) -> None:
    """The running stage's history.csv (else the last stage that wrote one), and SCAR's feature migration so far."""
    with_run = [s for s in stages if s.get("run_dir") and s["status"] in ("running", "complete", "interrupted")
                and s["kind"] in ("train_original", "train_retrained", "unlearn")]
    if not with_run:
        return
    now = next((s for s in with_run if s["status"] == "running"), with_run[-1])
    run_dir = D.inside(root, now["run_dir"])
    if run_dir is None:
        return
    hist = D.read_csv(run_dir / "history.csv", root)
    df = hist.value if hist.value is not None else pd.DataFrame()
    x = "step" if "step" in df.columns else "epoch" if "epoch" in df.columns else None
    st.markdown(f"**{common.md(now['label'])}** · {now['status']}")
    if x is not None and len(df):
        last = df.ffill().iloc[-1]
        shown = [(k, name) for k, name in J.HISTORY_KEYS.items() if k in df.columns and df[k].notna().any()]
        cols = st.columns(min(6, max(1, len(shown))))
        for col, (k, name) in zip(cols, shown[:6]):
            v = last[k]
            col.metric(name, "—" if pd.isna(v) else (f"{int(v)}" if k in ("step", "epoch") else f"{v:.3g}"))
        metrics = [k for k in J.HISTORY_KEYS if k in df.columns and k not in ("step", "epoch")
                   and df[k].notna().any()][:4]
        if metrics:
            series = {now["label"]: df.dropna(subset=[x]).rename(columns={x: "step"}) if x != "step" else df}
            common.chart(P.without_links(P.curves_figure(series, metrics, height_per_row=200)),
                         f"progress_{now['label']}", "run_progress_chart")
    elif hist.error:
        common.warn(hist.error)
    else:
        st.caption("No history yet (the stage is starting).")
    unlearn = [s for s in with_run if s["kind"] == "unlearn"]
    if not unlearn:
        return
    cur = next((s for s in unlearn if s["status"] == "running"), unlearn[-1])
    udir = D.inside(root, cur["run_dir"])
    emb = D.live_embedding(udir, root) if udir is not None else D.Loaded(None)
    if emb.value is None:
        st.caption("Feature migration: waiting for the first snapshot.")
        return
    steps = sorted(int(s) for s in emb.value["step"].unique())
    fig = P.migration_figure(emb.value, steps[-1], None, method=f"{cur['label']} · newest: step {steps[-1]}",
                             height=520)
    st.markdown(f"**Feature migration so far** · {len(steps)} snapshot(s), newest step {steps[-1]} shown "
                "(the slider and ▶ Play go through the earlier ones). Axes: PCA of the original's features.")
    common.chart(P.without_links(fig), f"feature_migration_live_{cur['label']}", "run_migration_chart")


LIVE_EVERY_S, IDLE_EVERY_S = 2.0, 10.0
"""how often the job panel below is redrawn: while a job of this runs root is queued or running, and while none is
(a job launched elsewhere, `scarlab jobs` or another tab, shows within IDLE_EVERY_S). Each redraw reads the job's
files and draws its figures again, in the server and in the browser, for as long as the page stays open: with a
finished digits job shown, 3.8 s of CPU per 20 s at 2 s, 1.4 s at 10 s."""
_LIVE = any(j.live for j in J.list_jobs(root))


@st.fragment(run_every=LIVE_EVERY_S if _LIVE else IDLE_EVERY_S)
def watch() -> None:
    all_jobs = J.list_jobs(root)
    if any(j.live for j in all_jobs) != _LIVE:
        st.rerun()  # a job started or ended: the whole page again, at the other pace
    if not all_jobs:
        st.caption("No jobs under this runs root yet.")
        return
    table = pd.DataFrame(J.jobs_table(all_jobs))
    common.table(table, "jobs", "run_jobs_table", hide_index=True, width="stretch",
                 height=min(38 * (len(table) + 1) + 3, 250))
    job = _pick(all_jobs)
    stages = job.stages()
    head, stop_col = st.columns([5, 1])
    head.markdown(f"**Job {job.id}: {job.state}**"
                  + (f" — {common.md(job.error, 300)}" if job.error and not job.live else ""))
    if job.live and stop_col.button("Stop", key=f"run_stop_{job.id}", icon=":material/stop_circle:"):
        job.stop(wait=False)
        if job.pgid:
            threading.Thread(target=J.escalate, args=(int(job.pgid),), daemon=True).start()
        st.toast(f"Stopping job {job.id} (as Ctrl-C twice: the running stage is marked interrupted).")
    lines = [f"{MARKS.get(s['status'], '?')} {s['status']:11s} {s['label']}"
             + (f"  {s['seconds']:.1f}s" if isinstance(s.get("seconds"), (int, float)) and s["status"] != "skipped"
                else "") for s in stages]
    st.text("\n".join(lines) or "(no stages reported yet)")
    # a finished job's runs are on every other page at their next rerun: data.scan lists the folders afresh each
    # time and its cache is keyed by each file's (mtime, size), so nothing needs clearing here
    _progress(job, stages)
    with st.expander("log"):
        st.code(job.log_tail(3000) or "(empty)", language=None)


watch()
