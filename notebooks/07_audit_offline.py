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
# # 07 · Offline privacy audit of a run (offline LiRA and RMIA)
# Does **this model** treat its forget examples as trained on, more than images of the same kind it never saw? The
# audited model alone is scored against K **retrained** shadows (none trained on a forget example or a test image),
# made once per split and shared by every method, variant and seed, so auditing one more run trains nothing. Two
# attacks: offline LiRA (a z-score against the shadows' per-example mean, one pooled σ) and offline RMIA (a
# likelihood ratio against a population of test images; its `a` chosen on the split's original by the paper's grid
# search). Each is read as a **membership signal of one model**: forget examples against **control examples** no
# model trained on (CR: the forget classes' test images; HR: test images): AUC 0.5 and TPR 1 % at 1 % FPR mean no
# membership. The *flagged* shares (more confident than a retrained model would be) are **model-level**: in class
# removal forget and control move together. What it cannot say: whether the method's models as a population look
# retrained (the online `07_audit`), nor anything about examples other than these. Writes `audit_offline.json` and
# `audit_offline.parquet` into the run (beside any online audit) and merges `ulira/offline/*` into `metrics.json`.

# %% tags=["parameters"]
run = None  # run directory to audit: unlearn run, retrained run or an evaluated original; required
shadows = 8  # K, retrained shadow models (at least 3)
seed = 1000  # first shadow seed: shadow i trains with seed + i
shadow_dir = None  # folder of the shadow population; None means <run>/../shadows__<fingerprint8>
alpha = 0.05  # every interval has level 1 - alpha
device = "auto"  # auto, cpu, cuda, cuda:N or mps
rmia_a = None  # offline RMIA's a in [0, 1]; None means chosen by the paper's grid search on the split's original
population = 1000  # offline RMIA's population: this many test images, seeded

# %%
import pandas as pd
import plotly.express as px

from scarlab.notebook import FIG, setup_notebook

from pathlib import Path

from scarlab.audit import audit_offline
from scarlab.errors import ScarlabError

setup_notebook()  # figures as plotly's JSON for Lab (HTML: scarlab export); the pipeline's thread count

# %% [markdown]
# ## The audit

# %%
if run is None:
    raise ScarlabError("set run: the run directory to audit")
doc = audit_offline(run, shadows, seed=seed, shadow_dir=shadow_dir, alpha=alpha, device=device, progress=False,
                    rmia_a=rmia_a, population=population)
m, r = doc["metrics"], doc["rmia"]
print(f"{doc['label']} ({doc['kind']}) against K = {doc['k']} retrained shadows in {doc['shadows']['folder']} "
      f"({len(doc['shadows']['built'])} made, {doc['shadows']['reused']} reused); {doc['n_examples']} forget vs "
      f"{doc['control']['n_examples']} control examples ({doc['control']['what']}); RMIA a = {r['a']:g} "
      f"({r['a_source']})")

# %% [markdown]
# ## Membership of this model: forget against control
# Each attack's AUC (P(a forget example scores above a control example); chance 0.5, dotted) and TPR at 1 % FPR of
# the control (chance 0.01), with intervals at level 1 − alpha over the shadows and the examples. A TPR needs at
# least 100 control examples (NaN: not resolvable).

# %%
rows = [{"attack": name, "metric": metric, "value": m.get(f"ulira/offline/{att}/{key}"),
         "low": m.get(f"ulira/offline/{att}/{key}_low"), "high": m.get(f"ulira/offline/{att}/{key}_high"),
         "chance": chance}
        for att, name in (("lira", "offline LiRA"), ("rmia", "offline RMIA"))
        for metric, key, chance in (("AUC forget vs control", "auc", 0.5), ("TPR @ 1 % FPR", "tpr@0.01", 0.01))]
numbers = pd.DataFrame(rows)
fig = px.bar(numbers, x="metric", y="value", color="attack", barmode="group",
             error_y=numbers["high"] - numbers["value"], error_y_minus=numbers["value"] - numbers["low"],
             title=f"membership of this model, K = {doc['k']} ({round(100 * (1 - alpha))} % intervals)")
fig.add_hline(y=0.5, line_dash="dot")
fig.update_layout(**FIG).show()
numbers

# %% [markdown]
# ## Model-level: flagged forget and control examples
# The share of each side scored more confident than a retrained model would be at 1 % (≈ 0.01 for a model like
# the retrained ones). High on both sides: the model differs from retraining on the class as a whole, not on the
# examples it trained on.

# %%
flags = pd.DataFrame([{"attack": name, "side": side, "flagged @ 1 %": m[f"ulira/offline/{att}/{side}/flagged@0.01"]}
                      for att, name in (("lira", "offline LiRA"), ("rmia", "offline RMIA"))
                      for side in ("forget", "control")])
fig = px.bar(flags, x="attack", y="flagged @ 1 %", color="side", barmode="group",
             title="flagged at 1 % against the retrained shadows (≈ 0.01 like a retrained model)")
fig.update_layout(**FIG).show()

# %% [markdown]
# ## The scores per example
# LiRA's z of every forget and control example (the model's φ against the shadows' mean, in pooled standard
# deviations). Membership shows as the forget histogram lying to the right of the control's.

# %%
table = pd.read_parquet(Path(run) / "audit_offline.parquet")
fig = px.histogram(table, x="lira_z", color="part", barmode="overlay", histnorm="probability density", nbins=60,
                   title="offline LiRA z: forget vs control")
fig.update_layout(**FIG).show()
table.sort_values("lira_z", ascending=False).head(10)

# %% [markdown]
# ## RMIA's a
# The AUC of the split's original (which trained on the forget examples) for each a tried; the largest picks a.

# %%
if r["a_auc"]:
    fig = px.line(x=[float(k) for k in r["a_auc"]], y=list(r["a_auc"].values()), markers=True,
                  labels={"x": "a", "y": "AUC of the original"}, title=f"RMIA's a search: a = {r['a']:g}")
    fig.update_layout(**FIG).show()
else:
    print(f"a = {r['a']:g}: {r['a_source']}")
