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
# # 08 · Compare runs
# One row per run (method variant, forget classes, seed) — original, retrained oracle and every method — with
# accuracies, attacks, AUS and unlearning time, and their mean ± std per method variant; written to `summary.csv`,
# `summary_agg.csv` and `summary.md` in `out_dir` (`scarlab.results.summarize`).

# %% tags=["parameters"]
runs = []  # evaluated run directories to compare (original_eval, retrained, unlearn runs)
out_dir = "runs/notebooks"  # where summary.csv and summary.md are written

# %%
import numpy as np
import pandas as pd
import plotly.express as px

from scarlab.notebook import FIG, setup_notebook
from scarlab.results import METRICS, chance_of, pm_table, summarize

setup_notebook()  # figures as plotly's JSON for Lab (HTML: scarlab export); the pipeline's thread count

# %% [markdown]
# ## Summary tables
# Every run, then the mean ± std per method variant as in `summary.md` (accuracies and attacks in %).

# %%
df = summarize(runs, out_dir)  # one row per run: runs that failed or were not evaluated are listed, not plotted
ok = df[df["status"] == "complete"]
agg = df.attrs["aggregate"]  # mean ± std per method variant (label) over forget classes and seeds
display(df)
pm_table(agg)

# %% [markdown]
# ## AUS per method variant
# AUS of the mean accuracies with propagated error (the paper's convention), over seeds and forget classes; two
# variants of a method (e.g. `scar · lr=2.5e-4`) are never averaged together. The retrained oracle scores ≈ 1.

# %%
if "aus" in agg.columns and agg["aus"].notna().any():
    fig = px.bar(agg, x="label", y="aus", error_y="aus/std", labels={"label": "", "aus": "AUS"},
                 title="AUS (higher is better)")
    fig.update_layout(**FIG).show()

# %% [markdown]
# ## Attacks against their chance level
# Mean attack accuracy per method variant, beside its **chance** level (dashed): the SVC attack's is the majority
# fraction of its evaluation set (`mia/svc/chance`: 75 % for the 3:1 CR sets, 50 % in HR), so 75 % there is no
# leakage; the loss-LR and confidence-threshold attacks are balanced (50 %). The SVC accuracy is the paper's F1
# (micro-F1 = accuracy).

# %%
parts = [{"label": r["label"], "attack": m.label, "accuracy %": 100 * r[m.key], "std": 100 * r[f"{m.key}/std"],
          "chance %": 100 * (chance_of(m.key, r) or np.nan)}
         for m in METRICS if m.chance is not None and m.key in agg.columns for _, r in agg.iterrows()
         if pd.notna(r[m.key])]
if parts:
    att = pd.DataFrame(parts)
    order = list(dict.fromkeys(att["attack"]))
    fig = px.bar(att, x="label", y="accuracy %", error_y="std", facet_col="attack", range_y=[0, 100],
                 category_orders={"attack": order}, labels={"label": ""}, title="membership attacks (dashed: chance)")
    for i, a in enumerate(order, start=1):
        level = att.loc[att["attack"] == a, "chance %"].mean()
        if pd.notna(level):
            fig.add_hline(y=level, line_dash="dash", line_color="#555", row=1, col=i,
                          annotation_text=f"chance {level:.0f} %", annotation_position="bottom right")
    fig.for_each_annotation(lambda t: t.update(text=t.text.split("=", 1)[-1]))
    fig.update_layout(**FIG).show()
    display(att)

# %% [markdown]
# ## Forgetting vs keeping
# CR: forget-test accuracy (want ≈ 0) against retain-test accuracy (want ≈ the original's). HR: forget-train
# against test accuracy. One point per run.

# %%
cr = ok["acc/forget_test"].notna().any()
x, y = ("acc/forget_test", "acc/retain_test") if cr else ("acc/forget_train", "acc/test")
if len(ok) and ok[[x, y]].notna().all(axis=1).any():
    fig = px.scatter(ok, x=x, y=y, color="label", symbol="label", hover_data=["seed", "forget_classes"],
                     title="each run")
    fig.update_traces(marker_size=11).update_layout(**FIG).show()

# %% [markdown]
# ## Unlearning time

# %%
if ok["time/unlearn_s"].notna().any():
    fig = px.box(ok.dropna(subset=["time/unlearn_s"]), x="label", y="time/unlearn_s", points="all",
                 labels={"label": ""}, title="wall-clock seconds of the unlearning run")
    fig.update_layout(**FIG).show()
