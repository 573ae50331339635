# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Evaluate a run
# Accuracies, the membership-inference attacks and AUS for an unlearning or retrained run (written into
# its `metrics.json`), or for the **original** model against a split (`out_dir` set: a new evaluation
# run directory, method "original"). Optionally computes the UMAP embedding of its feature snapshots
# for the dashboard.

# %% tags=["parameters"]
run = None  # run directory to evaluate (unlearn or retrained run; the original model with out_dir); required
original = None  # run directory of the original model; None means the run's recorded parent (or the run itself)
retrained = None  # run directory of the retrained oracle (privacy score); None means the run's parent, if any
split = None  # split run directory or split.npz; None means the run's own split.npz
out_dir = None  # set to evaluate the original model against split into a new run directory here
embed = False  # also compute embedding.parquet (UMAP of the feature snapshots) for the dashboard
device = "auto"  # auto, cpu, cuda, cuda:N or mps

# %%
import numpy as np
import pandas as pd
import plotly.express as px

from scarlab.errors import ScarlabError
from scarlab.evaluate import evaluate_run
from scarlab.notebook import FIG, setup_notebook
from scarlab.results import METRICS, chance_of, read_run

setup_notebook()  # figures as plotly's JSON for Lab (HTML: scarlab export); the pipeline's thread count

# %% [markdown]
# ## Metrics

# %%
if run is None:
    raise ScarlabError("set run: the run directory to evaluate")
metrics = evaluate_run(run, original=original, retrained=retrained, split=split, out=out_dir, device=device)
pd.Series(metrics, name="value").to_frame()

# %% [markdown]
# ## Accuracies and AUS

# %%
shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None
         and (k.startswith("acc/") or k == "aus")}
fig = px.bar(x=list(shown), y=list(shown.values()), labels={"x": "", "y": ""},
             title=f"{read_run(out_dir or run)[0].label}: evaluation")
fig.update_layout(**FIG).show()

# %% [markdown]
# ## Attacks against their chance level
# An attack only shows leakage above its **chance** level (dashed), what guessing the larger set scores.
# The paper's SVC attack: its accuracy is the paper's F1 (micro-F1 = accuracy), its chance the majority
# fraction of its evaluation set — 0.75 in CR, where members are up to 3× the non-members, 0.5 in HR (1:1).
# ΔF1 = |F1·100 − 50| is the paper's HR number (≈ 0 without signal). The loss-LR and confidence-threshold
# attacks are balanced: chance 0.5.

# %%
measured = [m for m in METRICS if m.chance is not None and isinstance(metrics.get(m.key), (int, float))]
attacks = pd.DataFrame({"attack": [m.label for m in measured],
                        "accuracy %": [100 * metrics[m.key] for m in measured],
                        "chance %": [100 * (chance_of(m.key, metrics) or np.nan) for m in measured]},
                       index=[m.key for m in measured])
fig = px.bar(attacks, x="attack", y="accuracy %", range_y=[0, 100], title="membership attacks (dashed: chance)")
for i, c in enumerate(attacks["chance %"]):
    fig.add_shape(type="line", x0=i - 0.45, x1=i + 0.45, y0=c, y1=c, line=dict(color="#555", dash="dash"))
fig.update_layout(**FIG).show()
if abs((chance_of("mia/svc/acc", metrics) or 1.0) - 0.5) < 0.05:  # balanced (HR) sets: the paper's ΔF1 applies
    attacks.loc["mia/svc/acc", "ΔF1 (paper, HR)"] = metrics["mia/svc/delta_f1"]
attacks

# %% [markdown]
# ## Embedding (optional)
# One UMAP reducer fitted on the original model's features; every snapshot is transformed with it, so frames share
# axes. The last snapshot is shown, coloured by label.

# %%
if embed:
    from scarlab.embed import run_embed

    path = run_embed(run, original=original, progress=False)
    emb = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.DataFrame()
    xy = [c for c in emb.columns if c.lower() in ("x", "umap_x", "umap_0", "u0")][:1] + \
         [c for c in emb.columns if c.lower() in ("y", "umap_y", "umap_1", "u1")][:1]
    if len(xy) == 2:
        last = emb[emb["step"] == emb["step"].max()] if "step" in emb.columns else emb
        color = next((c for c in ("label", "labels", "class") if c in emb.columns), None)
        fig = px.scatter(last, x=xy[0], y=xy[1], color=last[color].astype(str) if color else None,
                         title="features at the last snapshot (UMAP)", opacity=0.7)
        fig.update_traces(marker_size=4).update_layout(**FIG).show()
    else:
        print(f"embedding written to {path}: columns {list(emb.columns)}")
else:
    print("embedding skipped (embed=False)")
