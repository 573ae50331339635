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
# # 06 · Shadow models for the privacy audit
# Makes (or reuses) the K shadow models a U-LiRA audit (`07_audit`) compares a run with, in the audit's
# folder next to the audited runs, `<split>/../shadows__<fingerprint8>/`, shared with `scarlab audit`:
# K shadow **originals** and their K **retrained** oracles on the same split (given `original` and `split`),
# or the K **unlearned** shadows of one method variant (given an unlearn `run`: its method, resolved
# parameters and surrogate; the originals and retrained oracles are reused). A complete member with the same
# configuration is reused, a damaged one made again, one of another configuration refused. The offline audit
# (`07_audit_offline`) needs only the retrained oracles (`populations = ["retrained"]`).

# %% tags=["parameters"]
run = None  # audited run whose shadows to make (unlearn run: its method's unlearned shadows); or None with original and split
original = None  # run directory of the original model (with split, when run is None)
split = None  # split run directory or split.npz (with original, when run is None)
shadows = 8  # K, shadow models per population (at least 3; 6 for a retrained run)
seed = 1000  # first shadow seed: shadow i trains and unlearns with seed + i
shadow_dir = None  # folder of the shadow population; None means <run>/../shadows__<fingerprint8>
populations = None  # which populations to make (original, retrained, unlearned); None means all the run needs
device = "auto"  # auto, cpu, cuda, cuda:N or mps
jobs = 1  # worker processes making shadow members at once on the CPU (torch's threads shared out among them)
members_file = None  # where to list the member run directories (JSON) for the pipeline's reuse check; None means nowhere

# %%
import pandas as pd
import plotly.express as px

from scarlab.notebook import FIG, setup_notebook

from pathlib import Path

from scarlab.audit import shadow_population, split_target
from scarlab.errors import ScarlabError
from scarlab.runs import RunDir, write_json

setup_notebook()  # figures as plotly's JSON for Lab (HTML: scarlab export); the pipeline's thread count

# %% [markdown]
# ## Make or reuse the members

# %%
if run is None and (original is None or split is None):
    raise ScarlabError("set run (an audited run) or original and split (the shadow originals and oracles of a split)")
target = run if run is not None else split_target(original, split)
pop = shadow_population(target, shadows, seed=seed, shadow_dir=shadow_dir, device=device, progress=False,
                        populations=populations, jobs=jobs)
members = [*pop.originals, *pop.retrained, *pop.unlearned]
if members_file is not None:
    Path(members_file).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(members_file), {"folder": str(pop.folder), "fingerprint": pop.fingerprint,
                                    "members": [str(p) for p in members]})
table = pd.DataFrame([{"member": p.name, "population": "original" if p in pop.originals else
                       "retrained" if p in pop.retrained else "unlearned",
                       "status": "made" if p.name in pop.built else "reused",
                       "status of the run": RunDir(p).status} for p in members])
print(f"{len(pop.built)} made, {len(pop.reused)} reused in {pop.folder}")
table

# %% [markdown]
# ## Time per population

# %%
fig = px.bar(x=list(pop.seconds), y=list(pop.seconds.values()), labels={"x": "population", "y": "seconds"},
             title=f"K = {shadows}: seconds making or checking each population")
fig.update_layout(**FIG).show()
