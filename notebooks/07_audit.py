# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Privacy audit of a run (U-LiRA)
# Is each forget example of the run's split still recognisable as trained on? A per-example likelihood-ratio
# attack (U-LiRA) fitted on K shadow models per population — unlearned (or original) shadows A against
# retrained shadows B — scores held-out shadow models (the attack's ROC and ε per example) and the audited
# model itself. Writes `audit.json`, `audit.parquet`, `audit_scores.npz` (and `audit_steps.csv`) into the
# run and merges the `ulira/*` scalars into its `metrics.json`. The shadows are made or reused in
# `<run>/../shadows__<fingerprint8>/` (`07_shadows` makes them as pipeline stages).

# %% tags=["parameters"]
run = None  # run directory to audit: unlearn run, retrained run (shadows at least 6) or an evaluated original; required
shadows = 8  # K, shadow models per population (at least 3; 6 for a retrained run)
seed = 1000  # first shadow seed: shadow i trains and unlearns with seed + i
shadow_dir = None  # folder of the shadow population; None means <run>/../shadows__<fingerprint8>
delta = 1e-5  # δ of the per-example (ε, δ) estimate
alpha = 0.05  # every interval has level 1 - alpha
device = "auto"  # auto, cpu, cuda, cuda:N or mps

# %%
import numpy as np
import pandas as pd
import plotly.express as px

from scarlab.notebook import FIG, setup_notebook

from pathlib import Path

import plotly.graph_objects as go

from scarlab.audit import audit_run
from scarlab.errors import ScarlabError

setup_notebook()  # figures for Lab and exported HTML (plotly.js inline once); the pipeline's thread count

# %% [markdown]
# ## The audit

# %%
if run is None:
    raise ScarlabError("set run: the run directory to audit")
doc = audit_run(run, shadows, seed=seed, shadow_dir=shadow_dir, delta=delta, alpha=alpha, device=device,
                progress=False)
m = doc["metrics"]
print(f"{doc['label']} ({doc['kind']}): {doc['populations']['a']} (A) vs {doc['populations']['b']} (B), "
      f"K = {doc['k']}, {doc['n_examples']} forget examples; shadows in {doc['shadows']['folder']}")

# %% [markdown]
# ## The attack: AUC, TPR at low FPR, balanced accuracy, ε
# Each with its interval at level 1 − alpha. Chance: AUC 0.5, TPR@f = f, balanced accuracy 0.5, ε 0.

# %%
rows = [("AUC", "ulira/auc"), ("TPR @ 1 % FPR", "ulira/tpr@0.01"), ("TPR @ 0.1 % FPR", "ulira/tpr@0.001"),
        ("balanced accuracy", "ulira/bacc"), ("ε mean", "ulira/eps_mean"), ("ε median", "ulira/eps_median")]
numbers = pd.DataFrame([{"metric": name, "value": m.get(key), "low": m.get(f"{key}_low"),
                         "high": m.get(f"{key}_high")} for name, key in rows])
fig = go.Figure(go.Bar(x=numbers["metric"], y=numbers["value"],
                       error_y=dict(type="data", symmetric=False, array=numbers["high"] - numbers["value"],
                                    arrayminus=numbers["value"] - numbers["low"])))
fig.update_layout(title=f"U-LiRA, K = {doc['k']}: {round(100 * (1 - alpha))} % intervals", **FIG).show()
numbers

# %% [markdown]
# ## ROC of the held-out attack
# Log-scaled FPR: the low-FPR end is where a confident attack shows; the diagonal is chance.

# %%
fpr, tpr = np.asarray(doc["roc"]["fpr"]), np.asarray(doc["roc"]["tpr"])
fig = go.Figure([go.Scatter(x=fpr, y=tpr, mode="lines", name=f"U-LiRA (AUC {m['ulira/auc']:.3f})"),
                 go.Scatter(x=fpr, y=fpr, mode="lines", name="chance", line=dict(dash="dash", color="gray"))])
fig.update_xaxes(type="log", title="false positive rate")
fig.update_yaxes(type="log", title="true positive rate")
fig.update_layout(title=f"{doc['label']}: ROC", **FIG).show()

# %% [markdown]
# ## The audited model against the two populations
# Per-example log-likelihood ratio Λ (> 0: looks like A) of the audited model, and of the held-out shadows of
# each population. A model that forgot like the retrained ones sits on B's histogram.

# %%
z = np.load(Path(run) / "audit_scores.npz")
hist = pd.concat([pd.DataFrame({"log-LR": z["log_lr_a"].ravel(), "who": f"held-out A: {doc['populations']['a']}"}),
                  pd.DataFrame({"log-LR": z["log_lr_b"].ravel(), "who": f"held-out B: {doc['populations']['b']}"}),
                  pd.read_parquet(Path(run) / "audit.parquet")[["target_log_lr"]]
                  .rename(columns={"target_log_lr": "log-LR"}).assign(who="this model")])
fig = px.histogram(hist, x="log-LR", color="who", barmode="overlay", histnorm="probability density", nbins=60,
                   title="per-example log-LR")
fig.update_layout(**FIG).show()

# %% [markdown]
# ## ε per example
# The (ε, δ) one held-out threshold attack shows for each forget example (0: indistinguishable at this K). Even
# identical populations read a small ε by chance (the best rule is picked on few scores): the dotted line.

# %%
table = pd.read_parquet(Path(run) / "audit.parquet")
fig = px.histogram(table, x="eps", nbins=40, title=f"ε per example (mean {m['ulira/eps_mean']:.3f}; by chance "
                                                   f"{m['ulira/eps_chance']:.3f}; ceiling at K = {doc['k']}: "
                                                   f"{m['ulira/eps_ceiling']:.2f})")
fig.add_vline(x=m["ulira/eps_chance"], line_dash="dot")
fig.update_layout(**FIG).show()
table.sort_values("eps", ascending=False).head(10)

# %% [markdown]
# ## The audit over the unlearning steps
# Unlearn runs: at each feature snapshot the same attack on the unlearned shadows at that step against the
# retrained shadows (step 0 is the original), over the run's forget probe points: when do the forget examples
# stop being distinguishable? And this run's own snapshot scored against that step's fit.

# %%
steps_file = Path(run) / "audit_steps.csv"
if steps_file.is_file():
    steps = pd.read_csv(steps_file)
    fig = px.line(steps, x="step", y="ulira/auc", markers=True, title="U-LiRA AUC over steps (band: its interval; "
                                                                      "dotted: chance 0.5)")
    fig.add_scatter(x=list(steps["step"]) + list(steps["step"][::-1]),
                    y=list(steps["ulira/auc_high"]) + list(steps["ulira/auc_low"][::-1]), fill="toself",
                    line_width=0, opacity=0.2, name="interval", hoverinfo="skip")
    fig.add_hline(y=0.5, line_dash="dot")
    fig.update_layout(**FIG).show()
    fig = px.line(steps, x="step", y=["ulira/tpr@0.01", "ulira/flagged@0.01"], markers=True,
                  title="TPR at 1 % FPR (shadows) and share of this run's forget examples flagged at 1 % FPR")
    fig.update_layout(**FIG).show()
else:
    print("no audit_steps.csv: only unlearn runs with feature snapshots are audited over steps")
