"""The pipeline: the stage notebooks (``notebooks/0*``) executed by papermill in dependency order.

A pipeline is *planned* first — a list of :class:`StageSpec` with explicit dependencies, every grid point
validated before anything runs — and then executed, each stage by :func:`execute_stage` (a plain function of one
spec, callable in another process: the Ray sweep runs it as a task). :func:`run_pipeline` hands the plan to the
scheduler (:mod:`scarlab.pipeline.schedule`), which runs ``jobs`` independent stages at once in local kernels.

Modules: ``config`` (PipelineConfig, YAML, validation), ``plan`` (grid points, StageSpec, fingerprints),
``stage`` (kernels, one stage's execution, its record and reuse), ``schedule`` (the executors: local threads or
Ray tasks), ``run`` (run_pipeline).

A list given for a method parameter or a training option (``params: {scar: {lr: [0.0005, 0.00025]}}``) is a
grid axis: every point is planned, and the stages points share (same folder) run once.

Layout of a pipeline root ``DIR`` (several pipelines may share one root)::

    DIR/
      pipeline.yaml                          the configuration of the last invocation
      pipeline.json                          the compare stage's record
      summary.csv, summary.md, compare.ipynb 08_compare over that invocation's runs
      <dataset>__<model>/                    e.g. digits__tinycnn, cifar10-mini__smallcnn
        original__<h>/                       01_train_original          (notebook.ipynb inside)
        <split-id>/                          CR-f0__<h>, CR-f0-3__<h>, HR-n300-s0__<h>
          split/                             02_split: split.npz, reused by every stage below
          retrained/                         03_train_retrained         (+ evaluate.ipynb: 05 in place)
          original_eval/                     05_evaluate of the original model against this split ("original")
          <method>__s<seed>__<h>/            04_unlearn                 (+ evaluate.ipynb: 05 in place)
          shadows__<fp8>/                    with --shadows K: the audit's shadow members (scarlab.audit layout,
                                             shared with `scarlab audit`): original__s*, retrained__s*,
                                             <method>__<params8>__s*
          shadow_stages/train/               06_shadows: K shadow originals + retrained oracles of the split
          shadow_stages/<method>__<h>/       06_shadows: K unlearned shadows of one method variant (all seeds)
                                             (each: stage.json record, members.json, notebook.ipynb)

With ``shadows`` K > 0, every evaluated run gets an ``audit`` stage (07_audit, audit.ipynb in the run, in place
after its evaluation; after its shadow stages): original_eval and every unlearn run, and the retrained run from
K = 6 (its shadows are split in halves). audit.json etc. go into the run and the ``ulira/*`` scalars into its
metrics.json; the compare stage waits for the audits. A shadow stage is current only while every member it
listed is complete and intact. With ``audit_mode: offline`` the split's shadow stage makes only the K retrained
oracles, no method gets a shadow stage, and every evaluated run (the retrained one at any K) gets an
``audit_offline`` stage instead (07_audit_offline, audit_offline.ipynb: the run's own model against those shadows;
audit_offline.json, ``ulira/offline/*``).

**A given original.** With ``original: RUN`` (a complete original run, e.g. from `scarlab import`) no
``original__<h>/`` is trained: the plan's first stage is RUN itself (``StageSpec.given``: never executed, reused
while complete and intact), every stage below reads it, the retrained oracle copies its recorded training recipe,
and its fingerprint is the sha256 of RUN's checkpoint and class statistics (:func:`plan.original_identity`).

**Notebooks.** A stage notebook may be a jupytext pair (``04_unlearn.ipynb`` + ``04_unlearn.py``, percent
format): the file saved last is executed, and neither is ever written to.

Each stage has a *fingerprint*: a hash of its kind, its notebook parameters (leaving out the ones that only
say where things are — paths, device), its notebook's code cells (the parameters cell left out) and the
fingerprints of the stages it depends on. ``<h>`` is the start of a fingerprint: the original's folder changes
with its training configuration; the split id with the split, the original and the retrained training
configuration; a method's folder with its hyper-parameters, seed and surrogate; each with its notebook's code.
Changing the configuration or editing a notebook therefore makes new folders and never overwrites other runs.

**Record.** A run's ``manifest.json`` is its one status record: the run's ``status`` and ``error``, and per
stage that wrote to it an entry ``stages: {kind: {status, error, fingerprint, seconds, finished, notebook,
output}}`` written last (``stages.unlearn``, then ``stages.evaluate`` by the in-place evaluation). The compare
stage, whose folder is the root and not a run, keeps the same entry in ``DIR/pipeline.json``.

**Reuse rule.** A stage is skipped when its entry says ``complete`` with the same fingerprint, its run's
manifest says ``complete`` with every listed file intact, and its executed notebook is there. Anything else
(missing, failed, interrupted, changed upstream, edited notebook) is executed again, into a cleared run
directory; a stage whose dependency was just executed runs again too.

**Failure.** A stage whose notebook raises is recorded ``failed`` with the notebook cell's error message (for a
stage that creates its run, in the run's ``status`` and ``error`` too), its executed notebook is kept, the stages
that depend on it are reported ``blocked`` and every independent branch carries on. The final compare stage
(08_compare, ``scarlab.results.summarize``) lists every run of the plan that exists: evaluated ones with their
metrics, failed ones with their status and error.
"""
from .config import (KINDS, NOTEBOOKS, STAGE_NOTEBOOKS, TRAIN_OPTIONS, PipelineConfig,
                     config_from_dict, parse_sets, validate)
from .plan import StageSpec, fingerprint, grid, notebook_hash, notebook_source, plan, plan_points
from .run import run_pipeline
from .stage import StageFailed, effective, ensure_kernel, execute_stage, run_notebook, stage_state

__all__ = ["KINDS", "NOTEBOOKS", "STAGE_NOTEBOOKS", "TRAIN_OPTIONS", "PipelineConfig", "StageFailed", "StageSpec",
           "config_from_dict", "effective", "ensure_kernel", "execute_stage", "fingerprint", "grid",
           "notebook_hash", "notebook_source", "parse_sets", "plan", "plan_points", "run_notebook", "run_pipeline",
           "stage_state", "validate"]
