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
# # 07 · Privacy audit of a run (U-LiRA)
# Can the run's kind of model be told from a retrained one, and are its forget examples remembered? A per-example
# likelihood-ratio attack (U-LiRA) fitted on K shadow models per population — unlearned (or original) shadows A
# against retrained shadows B — scores held-out shadow models on the **forget examples** (model-level
# distinguishability) and on **control examples** no model trained on (CR: the forget classes' test images; HR:
# test images). Only their difference, the **membership signal**, speaks of remembered forget examples: models
# that differ as a whole are told apart on the control just as well. Writes `audit.json`, `audit.parquet`,
# `audit_scores.npz` (and `audit_steps.csv`) into the run and merges the `ulira/*` scalars into its
# `metrics.json`. The shadows are made or reused in `<run>/../shadows__<fingerprint8>/` (`06_shadows` makes them
# as pipeline stages).

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

setup_notebook()  # figures as plotly's JSON for Lab (HTML: scarlab export); the pipeline's thread count

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
# ## Forget, control and the membership signal
# Each with its interval at level 1 − alpha. Chance: AUC 0.5, TPR@f = f; membership 0. A statistic on which every
# shadow pair agrees is a one-sided bound (`_saturated`); a TPR below one false positive among K·N is NaN (not
# resolvable); a membership signal over a control already at 1 is not measurable (`_masked`).

# %%
rows = [("AUC", "auc"), ("TPR @ 1 % FPR", "tpr@0.01"), ("ε mean (CP estimate)", "eps_mean")]
numbers = pd.DataFrame([{"metric": name, "set": side, "value": m.get(f"ulira/{pre}{key}"),
                         "low": m.get(f"ulira/{pre}{key}_low"), "high": m.get(f"ulira/{pre}{key}_high"),
                         "one-sided": bool(m.get(f"ulira/{pre}{key}_saturated")),
                         "not measurable": bool(m.get(f"ulira/{pre}{key}_masked"))}
                        for name, key in rows for side, pre in (("forget (model-level)", ""), ("control", "control/"),
                                                                ("membership = forget − control", "membership/"))])
fig = px.bar(numbers, x="metric", y="value", color="set", barmode="group",
             error_y=numbers["high"] - numbers["value"], error_y_minus=numbers["value"] - numbers["low"],
             title=f"U-LiRA, K = {doc['k']}: forget vs control, {round(100 * (1 - alpha))} % intervals")
fig.update_layout(**FIG).show()
print(f"forget examples above the control's 99th percentile: {m['ulira/member@0.01']:.3f} (chance ≈ 0.01)")
numbers

# %% [markdown]
# ## ROC of the held-out attack
# Log-scaled FPR from the smallest FPR the negatives resolve: the low-FPR end is where a confident attack shows;
# forget solid, control dotted; the diagonal is chance.

# %%
fpr, tpr = np.asarray(doc["roc"]["fpr"]), np.asarray(doc["roc"]["tpr"])
cf, ct = np.asarray(doc["control"]["roc"]["fpr"]), np.asarray(doc["control"]["roc"]["tpr"])
fig = go.Figure([go.Scatter(x=fpr, y=tpr, mode="lines", name=f"forget (AUC {m['ulira/auc']:.3f})"),
                 go.Scatter(x=cf, y=ct, mode="lines", line=dict(dash="dot"),
                            name=f"control (AUC {m['ulira/control/auc']:.3f})"),
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
# scarlab's Clopper–Pearson-bounded ε estimate (not a certified bound, not the NeurIPS 2023 competition's) of the
# best held-out threshold attack on each forget example (0: indistinguishable at this K; model-level, like the
# AUC). Even identical populations read a small ε by chance (the best rule is picked on few scores): the dotted
# line; ε cannot exceed its ceiling for K.

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
# retrained shadows (step 0 is the original), over the run's forget probe points: when do the unlearned models
# stop being distinguishable on them? Forget examples only (no control over steps), so this is model-level. And
# this run's own snapshot scored against that step's fit.

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
