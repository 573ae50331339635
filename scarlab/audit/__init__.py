"""Per-example privacy audit of a run (U-LiRA) against shadow populations, written into its run directory.

The estimator is :mod:`scarlab.metrics.ulira` (pure functions); this package makes the models it needs and reads
and writes run directories. Its parts, each importing only the ones before it:

* ``targets``  the audited run (:class:`Audited`, :func:`audited`, :func:`split_target`), fingerprints, mark_failed;
* ``members``  one shadow member: its expected identity, the reuse check, making it here or in worker processes;
* ``shadows``  the shadow folder and :func:`shadow_population`;
* ``scoring``  φ on the forget and control examples, the control set, the competition's numbers;
* ``steps``    the audit over steps (:func:`steps_audit`);
* ``online``   the U-LiRA audit of a run (:func:`audit_run`) and what it writes;
* ``offline``  the offline LiRA / RMIA audit (:func:`audit_offline`) and the mode switch (:func:`audit`).

Shadow populations
------------------
For an audited run (an unlearn run, a retrained run, or an original evaluated against a split with
``scarlab evaluate ORIG --split S --out DIR``), :func:`shadow_population` makes or reuses, in one folder
``<run>/../shadows__<fingerprint8>/`` (or ``shadow_dir``):

* ``original__s<seed>/``  K originals, seeds ``seed .. seed+K-1``, with the audited run's training configuration
  (data set, model, epochs, batch size, lr, optimizer, weight decay, augmentation, stats δ, read from the
  original's ``config.json``);
* ``retrained__s<seed>/`` their K retrained oracles on the SAME split (a copy of the audited ``split.npz`` is kept
  in the folder as ``split.npz``; every member reads that one);
* ``<method>__<params8>__s<seed>/`` K unlearned models made by the audited run's method with its resolved
  ``params`` and surrogate options, each from the shadow original of the same seed, unlearning with that seed
  too (the population covers the method's own randomness, not only the training's).

Each member is an ordinary run directory written by ``run_train`` / ``run_unlearn`` (its manifest carries a
``shadow`` entry: role, seed, folder fingerprint). Unlearned members snapshot at the audited run's steps (its
``snapshot_every``) every forget example and no retain-test point (``members.shadow_trace``). The folder's
fingerprint is a hash of the training configuration and the forget set, so every audited run of one split and
training configuration shares the originals and retrained oracles; only the unlearned population is per method
and parameters. ``shadows.json`` in the folder records that fingerprint and the configuration behind it.

Reuse rule, member by member: a complete member whose listed files are intact and whose configuration (compared
key by key with the expected one) is the same is reused; a failed, interrupted or damaged member is made again;
a complete member made with another configuration (another split, data set, training option or method parameter)
is refused with the keys that differ, as is a folder whose fingerprint differs. An unlearned member made from an
earlier version of its shadow original (re-made since) is made again. Members are made one at a time in this
process, or with ``jobs`` > 1 in that many worker processes (not threads: seeding is process-global,
``seed_everything``, so threads would race on the weight initialisation); the checks and records stay here.

What is compared
----------------
Scores are the scaled true-class logits φ (``ulira.scaled_logit``) of every forget example (``split.forget_idx``,
the training images), one per model. The target population A and reference population B:

* unlearn run: A = the K unlearned shadows, B = the K retrained shadows; pair i shares seed i;
* original: A = the K shadow originals, B = the K retrained shadows;
* retrained run: the K retrained shadows are split in halves, A = seeds ``seed .. seed+h-1``, B = the next h
  (h = K // 2; an odd last one is left out), so the audited oracle is compared with retrained models neither
  population's fit has seen, both sides alike: the attack reads chance by construction of the question
  ("unlearned like A or retrained like B?" where both are retrained). This needs h ≥ 3, i.e. K ≥ 6; use K ≥ 16:
  CR oracles differ by model-wide offsets of the forgotten class's logit, and with few pairs the held-out AUC
  scatters widely around 0.5 (digits, 2-epoch models: 0.18-0.59 at h = 3, 0.39-0.56 at h = 8) and its interval
  misses 0.5 more often than alpha says (4 of 8 seed ranges at h = 3, 1 of 9 at h = 8).

A fixed forget set. Every shadow pair forgets the audited run's own forget set (as the NeurIPS 2023 competition
did), so the audit speaks of this split and its examples. U-LiRA as Hayes et al. run it draws a *random* forget set
per shadow pair from a larger pool, so that each example is forgotten by some pairs and kept by others; that answers
"does this algorithm leave traces on the examples it forgets, over forget sets?" and lets the per-example fits see
examples the shadows kept, at the cost of a retrained model per pair and per forget set anyway. scarlab keeps the
fixed set (the audited run's question, and shadows shared by every method on the split); the randomised variant is
not implemented.

Control and membership. The attack asks whether a model looks unlearned or retrained *judged on the forget
examples*. In class removal a model-wide change of the forgotten class's logits answers that on any image of the
class, trained on or not (measured on digits, CR class 0, K = 8: SCAR's AUC 0.976 on the forget images and on the
class's test images alike). So every audit also scores a *control* set with the same shadows and fits
(:func:`control_indices`: CR the forget classes' test images, HR as many test images), and reports
``ulira/control/*`` beside the forget numbers and the *membership signal* ``ulira/membership/*`` = forget −
control (``ulira.membership_signal``). The forget numbers alone are **model-level distinguishability**; only the
membership signal, and per example ``member@0.01`` (Λ above the control examples' 99th percentile), speak of
remembered examples.

``ulira.audit_scores(A, B, target=φ of the audited model)`` gives the held-out attack (ROC, AUC, TPR at 1 % and
0.1 % FPR, balanced accuracy, intervals), per-example ε and the audited model's per-example log-LR.

Files written into the audited run (and added to its manifest's ``files``; the manifest's ``audit`` entry holds the
status, seconds and folder):

* ``audit.json``: ``metrics`` (the ``ulira/*`` scalars plus ``ulira/target_log_lr_mean`` / ``_median``), ``k``,
  ``delta``, ``alpha``, ``populations`` (what A and B are and their member folders), ``roc`` (FPR grid and TPR,
  log axes), ``formulas`` (what each number is), ``shadows`` (folder, fingerprint, seeds), ``time``;
* ``audit.parquet``: one row per forget example: ``index`` (into the training set), ``label``, ``target_score``
  (φ), ``target_log_lr``, ``eps``, ``example_auc``, ``flagged@0.01`` (the audited model's log-LR above the held-out
  threshold of FPR ≤ 1 %: model-level), ``member@0.01`` (its Λ above the control examples' 99th percentile: a
  per-example membership flag), ``eps_competition`` (the NeurIPS 2023 competition's ε), ``mean_a``, ``mean_b``
  (population means of φ);
* ``audit_scores.npz``: the raw arrays: ``scores_a``, ``scores_b`` [K, N], ``target`` [N], ``index``, ``labels``
  [N], ``log_lr_a``, ``log_lr_b`` [K, N] (held-out), and the control's ``control_a``, ``control_b`` [K, N_c],
  ``control_target``, ``control_index``, ``control_log_lr`` [N_c], for score-distribution plots;
* ``metrics.json``: the main scalars (``METRIC_KEYS``: ``ulira/auc``, ``ulira/tpr@0.01``, ``ulira/tpr@0.001``,
  ``ulira/bacc``, ``ulira/eps_mean``, ``ulira/eps_median``, ``ulira/control/*`` and ``ulira/membership/*``
  (AUC, TPR @ 1 % FPR, mean ε), each with ``_low`` / ``_high``, ``ulira/member@0.01``, ``ulira/k`` and the
  competition's ``competition/F``, ``F_control``, ``F_chance`` and ``score``) merged
  into the run's metrics, beside the evaluation's (summary.csv and the dashboard read them there);
* ``audit_steps.csv`` (unlearn runs with ``features/step_*.npz``): the same attack at every snapshot step
  (:func:`steps_audit`): A = the unlearned shadows at that step, B = the retrained shadows, over the run's forget
  probe points: ``step``, ``ulira/auc`` and ``ulira/tpr@0.01`` with ``_low`` / ``_high``, ``ulira/eps_mean``, the
  audited snapshot's ``ulira/log_lr_mean`` and ``ulira/flagged@0.01``, ``n_examples``, ``k``. Step 0 is the
  original; the curve shows when (or whether) the forget examples stop being distinguishable;
* ``audit_steps.npz``: the same per example: ``step`` [S], ``index`` [P] (training indices of the forget probe
  points), ``log_lr`` [S, P] (the audited snapshot's Λ), ``threshold`` [S] (Λ above it: flagged at 1 % FPR).
"""
from ..config import MIN_SHADOWS, AuditConfig
from .offline import MODES, OFFLINE_FILES, OFFLINE_METRIC_KEYS, audit, audit_offline, online_ready
from .online import FILES, FORMULAS, METRIC_KEYS, audit_run
from .scoring import FLAG_FPR, MIN_CONTROL, control_indices, control_scores, forget_scores
from .shadows import POPULATIONS, ShadowPopulation, shadow_population, shadow_seeds
from .steps import STEP_BOOT, STEP_COLUMNS, steps_audit
from .targets import (DEFAULT_SEED, DEFAULT_SHADOWS, TRAIN_KEYS, UNLEARN_KEYS, Audited, audited, folder_identity,
                      mark_failed, method_key, split_target)

__all__ = ["AuditConfig", "Audited", "DEFAULT_SEED", "DEFAULT_SHADOWS", "FILES", "FLAG_FPR", "FORMULAS",
           "METRIC_KEYS", "MIN_CONTROL", "MIN_SHADOWS", "MODES", "OFFLINE_FILES", "OFFLINE_METRIC_KEYS",
           "POPULATIONS", "STEP_BOOT", "STEP_COLUMNS", "ShadowPopulation", "TRAIN_KEYS", "UNLEARN_KEYS", "audit",
           "audit_offline", "audit_run", "audited", "control_indices", "control_scores", "folder_identity",
           "forget_scores", "mark_failed", "method_key", "online_ready", "shadow_population", "shadow_seeds",
           "split_target", "steps_audit"]
